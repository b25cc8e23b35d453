"""`train.parallel`: how the Ray Train workers share the model — ``ddp`` or ``fsdp`` (FSDP2 ``fully_shard``).

- ``ddp``: Ray Train's ``prepare_model`` (DistributedDataParallel): every rank holds the whole model,
  gradients are all-reduced. Enough while only the bridge trains.
- ``fsdp``: one ``fully_shard`` unit per LM decoder layer (the classes the LM lists in
  ``_no_split_modules``) and the VisionLanguageModel itself as the root unit (projector, embeddings,
  final norm, head, a trained Q-Former). The frozen encoder's parameters are ``ignored_params``: every
  rank keeps them whole and they are never gathered, sharded or reduced. Weights, gradients and AdamW
  state of everything else are split across the ranks (ZeRO-3-like), which is what lets a fully tuned
  (or big-batch LoRA) 7B LM fit. Works on CPU with gloo as on GPUs with NCCL.

Checkpoints stay the files they were: on save, every rank takes part in gathering the full trainable
tensors and the full optimizer state (torch's own index-keyed layout), and rank 0 writes them. Restore
loads them into the plain model and optimizer before sharding (`prepare_parallel` moves the optimizer
state onto the shards), so an fsdp checkpoint loads for eval and inference like any other, and a run
can resume under either strategy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)

STRATEGIES = ("ddp", "fsdp")


def _dtensor_type() -> type:
    from torch.distributed.tensor import DTensor

    return DTensor


def is_sharded(model: nn.Module) -> bool:
    """Whether ``model`` (or a sub-module) was sharded by ``fully_shard``."""
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(m, FSDPModule) for m in model.modules())


def _layer_classes(lm: nn.Module) -> set[str]:
    """Decoder-layer class names: the ``_no_split_modules`` of the LM's HF models (peft-wrapped too)."""
    names: set[str] = set()
    for module in lm.modules():
        names.update(getattr(module, "_no_split_modules", None) or ())
    return names


def shard_model(model: nn.Module, device_type: str) -> nn.Module:
    """``fully_shard`` ``model`` (a VisionLanguageModel) in place over all ranks; see the module docstring."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    if not dist.is_initialized():
        raise RuntimeError("train.parallel='fsdp' needs torch.distributed (a Ray Train worker group)")
    world = dist.get_world_size()
    mesh = init_device_mesh(device_type, (world,))
    classes = _layer_classes(model.lm)
    layers = [m for m in model.lm.modules() if type(m).__name__ in classes]
    for layer in layers:
        fully_shard(layer, mesh=mesh)
    encoder = getattr(model, "encoder", None)
    ignored = {p for p in encoder.parameters() if not p.requires_grad} if encoder is not None else set()
    fully_shard(model, mesh=mesh, ignored_params=ignored or None)
    dtensor = _dtensor_type()
    loose = [n for n, p in model.named_parameters() if p.requires_grad and not isinstance(p, dtensor)]
    if loose:  # a trainable tensor outside every unit would silently diverge across ranks
        raise RuntimeError(f"fsdp left trainable parameters unsharded: {loose[:3]}")
    logger.info("fsdp over %d ranks: %d decoder-layer units (%s) + the root; %d frozen encoder tensors kept "
                "whole on every rank", world, len(layers), ",".join(sorted(classes)) or "none", len(ignored))
    return model


def _move_optimizer_state(old: torch.optim.Optimizer, new: torch.optim.Optimizer) -> None:
    """Load ``old``'s state (full tensors, e.g. restored from a checkpoint) into ``new``, built over the
    sharded parameters: each full moment is cut to the shard of its parameter."""
    from torch.distributed.tensor import distribute_tensor

    state = old.state_dict()
    if not state["state"]:
        return
    params = [p for group in new.param_groups for p in group["params"]]
    dtensor = _dtensor_type()
    for index, entry in state["state"].items():
        param = params[index]
        for key, value in list(entry.items()):
            if isinstance(param, dtensor) and torch.is_tensor(value) and value.shape == param.shape:
                entry[key] = distribute_tensor(value.to(param.device), param.device_mesh, param.placements)
    new.load_state_dict(state)


def prepare_parallel(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    strategy: str,
    *,
    device: torch.device,
    rebuild_optimizer: Callable[[nn.Module], torch.optim.Optimizer],
) -> tuple[nn.Module, torch.optim.Optimizer]:
    """``(module to call, optimizer to step)`` for ``strategy``. Call after restoring a checkpoint into the
    plain ``model``/``optimizer``; under fsdp the optimizer is rebuilt over the shards (its state moved)."""
    if strategy == "ddp":
        import ray.train.torch

        wrapped = ray.train.torch.prepare_model(model,
                                                parallel_strategy_kwargs={"forward_sync_buffers": False})
        return wrapped, optimizer
    if strategy != "fsdp":
        raise ValueError(f"train.parallel must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    shard_model(model, device.type)
    sharded = rebuild_optimizer(model)
    _move_optimizer_state(optimizer, sharded)
    return model, sharded


@contextmanager
def _fsdp_no_sync(module: nn.Module) -> Iterator[None]:
    module.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        module.set_requires_gradient_sync(True)


def no_sync(module: nn.Module) -> AbstractContextManager:
    """Skip the gradient reduction for the micro-batches before the last one (DDP ``no_sync``; FSDP2
    ``set_requires_gradient_sync(False)``)."""
    from torch.distributed.fsdp import FSDPModule

    if isinstance(module, FSDPModule):
        return _fsdp_no_sync(module)
    return module.no_sync()


def _full(value: Any) -> Any:
    if isinstance(value, _dtensor_type()):
        value = value.full_tensor()
    return value.detach().cpu() if torch.is_tensor(value) else value


def gathered_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, rank: int
) -> tuple[dict[str, torch.Tensor] | None, dict[str, Any] | None]:
    """``(trainable tensors, optimizer state)`` for a checkpoint on rank 0, ``(None, None)`` elsewhere.

    Sharded: a collective (every rank must call it) that gathers each tensor in full, in the same
    order on every rank. Not sharded: rank 0's own tensors, nothing communicated.
    """
    if not is_sharded(model):
        return (model.trainable_state_dict(), optimizer.state_dict()) if rank == 0 else (None, None)
    trainable = {name: _full(p) for name, p in model.named_parameters() if p.requires_grad}
    state = optimizer.state_dict()
    full_state = {index: {key: _full(value) for key, value in entry.items()}
                  for index, entry in sorted(state["state"].items())}
    if rank != 0:
        return None, None
    return trainable, {"state": full_state, "param_groups": state["param_groups"]}
