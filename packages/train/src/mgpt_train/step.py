"""One optimizer step, shared by `mgpt_train.loop` and ``benchmarks/train_step_mfu.py``.

``grad_accum_steps`` micro-batches, forward/backward under autocast (DDP/FSDP syncing on the last
micro-batch only), optional clipping, optimizer step. A micro-batch whose rows all failed to load is
run with weight 0 (`mgpt_train.collate.model_inputs`), so every rank still joins the gradient
all-reduce.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from mgpt_train.modeling import autocast
from mgpt_train.parallel import no_sync

#: ``micro`` index → (``VisionLanguageModel.forward`` kwargs, ``empty``), as `model_inputs` returns them.
MicroBatchSource = Callable[[int], tuple[dict[str, Any], bool]]


@dataclass(frozen=True)
class StepResult:
    """This rank's mean micro-batch loss (a detached 0-d CPU tensor) and seconds spent getting batches."""

    loss: torch.Tensor
    data_sec: float


def train_step(
    model: Any,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    micro_batches: MicroBatchSource,
    *,
    grad_accum_steps: int,
    precision: str,
    device: torch.device,
    grad_clip: float | None = None,
    world_size: int = 1,
) -> StepResult:
    """Run one iteration on ``micro_batches(0 .. grad_accum_steps - 1)`` and step the optimizer.

    ``model``: the DDP wrapper / FSDP-sharded model, or the plain model when ``world_size`` is 1;
    ``precision`` is resolved (bf16, fp16, fp32). The caller sets the lr beforehand.
    """
    data_sec = 0.0
    loss_sum = torch.zeros((), dtype=torch.float32)
    for micro in range(grad_accum_steps):
        td = time.perf_counter()
        batch, empty = micro_batches(micro)
        for key in ("features", "pixels"):
            if key in batch:
                batch[key] = batch[key].to(device)
        data_sec += time.perf_counter() - td
        last = micro == grad_accum_steps - 1
        sync = nullcontext() if last or world_size == 1 else no_sync(model)
        with sync:
            with autocast(precision, device.type):
                loss = model(**batch).loss
            weight = 0.0 if empty else 1.0 / grad_accum_steps  # all images failed: a no-op step
            scaler.scale(loss.float() * weight).backward()
        loss_sum += loss.detach().float().cpu()
    if grad_clip is not None:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], grad_clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return StepResult(loss_sum / grad_accum_steps, data_sec)
