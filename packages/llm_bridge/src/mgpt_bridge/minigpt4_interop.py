"""Upstream MiniGPT-4 ``checkpoint_*.pth`` files, read and written exactly as upstream's runner does.

What such a file holds (read from Vision-CAIR/MiniGPT-4: v1 = first commit f1a33af, 2023-04;
later = HEAD d94738a, 2024-09, which has ``minigpt_base.py``):

- ``minigpt4/runners/runner_base.py::_save_checkpoint`` (l. 575-599, same in v1 and later) saves
  ``{"model", "optimizer", "config", "scaler", "epoch"}``; ``model`` is ``model.state_dict()`` minus
  every *parameter* with ``requires_grad=False``, so persistent *buffers* stay in the file.
- Trainable parameters: ``llama_proj`` (``nn.Linear``, created after the fp16 LLM, so fp32). In
  ``mini_gpt4.py`` (v1, l. 93) and ``minigpt4.py`` (later, l. 67-73) its input is the Q-Former width
  768; with ``has_qformer: False`` (``configs/models/minigpt4_llama2.yaml`` l. 10: the Llama-2
  variant) and in ``minigpt_v2.py`` (l. 66) it is ``visual_encoder.num_features * 4`` = 5632 over 4
  concatenated patch tokens. Output: the LLM width (Vicuna-7B / Llama-2-7B 4096, Vicuna-13B 5120).
  MiniGPT-v2 adds LoRA in the LLM: ``base_model.py::init_llm`` (l. 191-199) wraps ``llama_model`` with
  peft's ``get_peft_model`` (``environment.yml`` pins ``peft==0.2.0``, whose ``tuners/lora.py``
  l. 299-300 makes ``lora_A``/``lora_B`` plain ``nn.Linear``: no adapter name in the key) on
  ``q_proj``/``v_proj``, r 64, alpha 16 (``minigpt_v2.py`` l. 107-108): keys
  ``llama_model.base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight``.
- Buffers kept: ``Qformer.bert.embeddings.position_ids`` (``Qformer.py`` l. 69-71, persistent; the
  Q-Former's word/position embeddings, ``cls`` and text FFNs are set to ``None``, its parameters
  frozen); ``llama_model.[base_model.model.]model.layers.N.self_attn.rotary_emb.inv_freq``: persistent
  in v1's own ``modeling_llama.py`` copy (l. 81, transformers 4.28 code; ``environment.yml`` v1 pins
  4.28.0) and in transformers 4.30 (later pin, which ``modeling_llama.py`` subclasses); transformers
  made it non-persistent in 4.32 (PR huggingface/transformers#24998). EVA ViT-g's
  ``relative_position_index`` buffers exist only with relative position bias, off in
  ``eva_vit.py::create_eva_vit_g`` (l. 415). Frozen ``visual_encoder``, ``ln_vision``,
  ``query_tokens`` and the LLM weights are parameters, so they are not in the file.
- Upstream loads with ``model.load_state_dict(ckpt["model"], strict=False)`` (``minigpt4.py`` /
  ``minigpt_v2.py`` ``from_config``), resumes with ``runner_base.py::_load_checkpoint`` (optimizer,
  scaler, ``epoch + 1``).
"""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .checkpoint import atomic_write

logger = logging.getLogger(__name__)

#: upstream ``llama_proj`` ⇄ our linear projector.
PROJECTOR_NAMES = {"llama_proj.weight": "projector.weight", "llama_proj.bias": "projector.bias"}
_UPSTREAM_LORA = re.compile(r"^llama_model\.(base_model\.model\..+)\.lora_([AB])(?:\.default)?\.weight$")
_OUR_LORA = re.compile(r"^lm\.(base_model\.model\..+)\.lora_([AB])\.default\.weight$")
#: persistent buffers upstream's save keeps (see the module docstring for where each comes from).
_BUFFERS = re.compile(
    r"(^Qformer\.bert\.embeddings\.position_ids|\.rotary_emb\.inv_freq|relative_position_index)$"
)
#: upstream's MiniGPT-v2 LoRA alpha when a file's config does not say (``minigpt_v2.py`` l. 108).
V2_DEFAULT_LORA_ALPHA = 16
#: upstream's AdamW weight decay (every ``train_configs/*.yaml``) when a carried config does not say.
UPSTREAM_WEIGHT_DECAY = 0.05
UPSTREAM_INIT_LR = 3e-5  # stage-2 ``init_lr``; upstream's scheduler sets lr every step anyway


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or converted; the one-line message says why."""


@dataclass(frozen=True)
class Ignored:
    """Part of a source file that was not converted, and why."""

    what: str
    reason: str
    keys: tuple[str, ...] = ()

    def describe(self, examples: int = 2) -> str:
        if not self.keys:
            return f"{self.what}: {self.reason}"
        shown = ", ".join(self.keys[:examples]) + (", ..." if len(self.keys) > examples else "")
        return f"{self.what} ({len(self.keys)}: {shown}): {self.reason}"


@dataclass(frozen=True)
class MiniGPT4Import:
    """An upstream checkpoint read into our names: what was taken, what was ignored (never silently)."""

    state_dict: dict[str, torch.Tensor]
    upstream_names: dict[str, str]  # ours → the key it came from
    ignored: tuple[Ignored, ...]
    config: dict[str, Any] | None
    epoch: int | None
    layout: str
    lora_alpha: int | None = None  # from the file's config (or upstream's v2 default); None: not recorded
    notes: tuple[str, ...] = field(default_factory=tuple)


def examples(keys: Iterable[str], n: int = 1) -> str:
    """``"a, b (+3 more)"``: a few keys, never all of them."""
    keys = list(keys)
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def to_ours(upstream: str) -> str | None:
    """Our name for an upstream trainable key (projector or LoRA), None when we have no place for it."""
    if upstream in PROJECTOR_NAMES:
        return PROJECTOR_NAMES[upstream]
    found = _UPSTREAM_LORA.match(upstream)
    return None if found is None else f"lm.{found.group(1)}.lora_{found.group(2)}.default.weight"


def to_upstream(ours: str) -> str | None:
    """Upstream's name (peft 0.2.0 LoRA names) for one of our trainable tensors, None when it has none."""
    for theirs, mine in PROJECTOR_NAMES.items():
        if ours == mine:
            return theirs
    found = _OUR_LORA.match(ours)
    return None if found is None else f"llama_model.{found.group(1)}.lora_{found.group(2)}.weight"


def is_lora(name: str) -> bool:
    return ".lora_A." in name or ".lora_B." in name


def is_upstream_buffer(name: str) -> bool:
    return _BUFFERS.search(name) is not None


def read_minigpt4_file(path: Path) -> dict[str, Any]:
    """``torch.load(weights_only=True)``: tensors and plain containers only; anything else is refused."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(_unpickling_message(path, str(err))) from err
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f"{path.name} is not a readable torch checkpoint: {_first_line(err)}") from err
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("model"), Mapping):
        raise CheckpointError(
            f"{path.name} is not a MiniGPT-4 checkpoint: expected a dict with a 'model' state dict"
        )
    bad = [k for k, v in checkpoint["model"].items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(
            f"{path.name}: {len(bad)} 'model' entries are not tensors (e.g. {examples(bad)})"
        )
    return dict(checkpoint)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _unpickling_message(path: Path, error: str) -> str:
    """One sentence from torch's long weights_only error (it names the refused global, if any)."""
    found = re.search(r"Unsupported global: GLOBAL (\S+)", error)
    if found:
        return (
            f"refusing to load {path.name}: it holds {found.group(1)}, not only tensors and plain "
            "containers, and torch.load(weights_only=True) will not unpickle it "
            "(no code from the file was run)"
        )
    detail = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n|$)", error)
    reason = detail.group(1) if detail else (error.strip().splitlines() or ["unreadable"])[0]
    return f"{path.name} is not a checkpoint torch.load(weights_only=True) can read: {reason}"


def _layout(config: Mapping[str, Any] | None, model: Mapping[str, torch.Tensor], lora: int) -> str:
    arch = ((config or {}).get("model") or {}).get("arch") if isinstance(config, Mapping) else None
    weight = model.get("llama_proj.weight")
    proj = "no llama_proj" if weight is None else f"llama_proj {weight.shape[1]}→{weight.shape[0]}"
    qformer = "Q-Former" if "Qformer.bert.embeddings.position_ids" in model else "no Q-Former buffer"
    return f"arch {arch or 'unknown'}, {proj}, {qformer}" + (f", {lora} LoRA tensors" if lora else "")


def _lora_alpha(config: Mapping[str, Any] | None) -> int | None:
    model_cfg = (config or {}).get("model") if isinstance(config, Mapping) else None
    if not isinstance(model_cfg, Mapping):
        return None
    if model_cfg.get("lora_alpha") is not None:
        return int(model_cfg["lora_alpha"])
    return V2_DEFAULT_LORA_ALPHA if model_cfg.get("arch") == "minigpt_v2" else None


def _top_level_ignored(checkpoint: Mapping[str, Any]) -> list[Ignored]:
    out = []
    optimizer = checkpoint.get("optimizer")
    if optimizer is not None:
        n = len(optimizer.get("state", {})) if isinstance(optimizer, Mapping) else 0
        out.append(
            Ignored("optimizer", f"upstream AdamW state ({n} parameters' moments); a run here starts its own")
        )
    if checkpoint.get("scaler") is not None:
        out.append(Ignored("scaler", "upstream fp16 GradScaler state; not used here"))
    if "config" in checkpoint:
        out.append(Ignored("config", "upstream run config: not applied, kept in the output's metadata"))
    if "epoch" in checkpoint:
        out.append(Ignored("epoch", f"{checkpoint['epoch']!r}, kept in the output's metadata"))
    other = sorted(set(checkpoint) - {"model", "optimizer", "scaler", "config", "epoch"})
    if other:
        out.append(Ignored("other entries", "not part of upstream's layout", tuple(other)))
    return out


def import_minigpt4(path: str | Path) -> MiniGPT4Import:
    """Read an upstream checkpoint: projector (+ peft LoRA) renamed to ours; buffers and the rest reported.

    Raises :class:`CheckpointError` (short message) when the projector is missing or the file holds
    trainable tensors we have no name for. Shapes are checked by :func:`check_fits` (needs a target model).
    """
    path = Path(path)
    checkpoint = read_minigpt4_file(path)
    model: Mapping[str, torch.Tensor] = checkpoint["model"]
    buffers = tuple(k for k in model if is_upstream_buffer(k))
    trainable = [k for k in model if k not in buffers]
    unplaced = [k for k in trainable if to_ours(k) is None]
    if unplaced:
        raise CheckpointError(
            f"{path.name} holds {len(unplaced)} trainable tensors mgpt has no place for "
            f"(e.g. {examples(unplaced, 2)}); only llama_proj and LoRA on the LLM convert"
        )
    missing = [k for k in PROJECTOR_NAMES if k not in model]
    if missing:
        raise CheckpointError(
            f"{path.name} has no projector: {examples(missing, 2)} missing "
            f"(its 'model' holds {len(model)} tensors, e.g. {examples(model) or 'none'})"
        )
    names = {to_ours(k): k for k in trainable}
    state_dict = {ours: model[theirs] for ours, theirs in names.items()}
    lora = sum(1 for k in trainable if is_lora(k))
    ignored = _top_level_ignored(checkpoint)
    if buffers:
        ignored.insert(0, Ignored("model buffers", "persistent buffers the model recomputes itself", buffers))
    config = checkpoint.get("config") if isinstance(checkpoint.get("config"), Mapping) else None
    epoch = checkpoint.get("epoch")
    result = MiniGPT4Import(
        state_dict=state_dict,
        upstream_names=names,
        ignored=tuple(ignored),
        config=dict(config) if config is not None else None,
        epoch=epoch if isinstance(epoch, int) else None,
        layout=_layout(config, model, lora),
        lora_alpha=_lora_alpha(config) if lora else None,
    )
    logger.info("read MiniGPT-4 checkpoint %s (%s): %d tensors taken", path, result.layout, len(state_dict))
    for item in result.ignored:
        logger.info("ignored %s", item.describe())
    return result


def _upstream_order(ours: str) -> tuple:
    """Upstream's ``named_parameters`` order: LoRA by layer (``llama_model`` comes first), weight, bias."""
    layer = re.search(r"\.layers\.(\d+)\.", ours)
    return (not is_lora(ours), int(layer.group(1)) if layer else -1, ours.endswith("bias"), ours)


def upstream_optimizer_state(model_sd: Mapping[str, torch.Tensor], config: Mapping[str, Any] | None) -> dict:
    """An AdamW ``state_dict()`` with upstream's two groups (``runner_base.py`` ``optimizer``: no decay
    for ``ndim < 2`` or bias/ln/bn names) in ``model_sd``'s order, no moments (a resume restarts them)."""
    run = (config or {}).get("run") if isinstance(config, Mapping) else None
    run = run if isinstance(run, Mapping) else {}
    decay = float(run.get("weight_decay", UPSTREAM_WEIGHT_DECAY))
    wd, no_wd = [], []
    for name, tensor in model_sd.items():
        placeholder = torch.empty(tensor.shape, device="meta", requires_grad=True)
        no_decay = tensor.ndim < 2 or any(s in name for s in ("bias", "ln", "bn"))
        (no_wd if no_decay else wd).append(placeholder)
    groups = [
        g
        for g in ({"params": wd, "weight_decay": decay}, {"params": no_wd, "weight_decay": 0})
        if g["params"]
    ]
    beta2 = float(run.get("beta2", 0.999))
    lr = float(run.get("init_lr", UPSTREAM_INIT_LR))
    return torch.optim.AdamW(groups, lr=lr, weight_decay=decay, betas=(0.9, beta2)).state_dict()


def export_minigpt4(
    state_dict: Mapping[str, torch.Tensor], path: str | Path, config: dict[str, Any], *, epoch: int
) -> dict[str, torch.Tensor]:
    """Write our projector (+ LoRA) as upstream's ``{"model", "optimizer", "config", "scaler", "epoch"}``.

    ``model`` holds upstream's names in fp32 (as upstream's trainable parameters are), no buffers
    (upstream's model computes them; ``strict=False`` leaves them as they are). ``scaler`` is a fresh
    GradScaler state (upstream trains with amp). Returns the ``model`` dict written.
    """
    names = {ours: to_upstream(ours) for ours in state_dict}
    unplaced = [ours for ours, theirs in names.items() if theirs is None]
    if unplaced:
        raise CheckpointError(
            f"{len(unplaced)} trainable tensors have no place in upstream MiniGPT-4 "
            f"(e.g. {examples(unplaced, 2)}); it holds llama_proj (a linear projector) and LoRA on the LLM"
        )
    if not any(ours in PROJECTOR_NAMES.values() for ours in state_dict):
        raise CheckpointError("nothing to export: no linear projector (projector.weight/bias)")
    order = sorted(names, key=_upstream_order)
    model_sd = {names[o]: state_dict[o].detach().to("cpu", torch.float32).contiguous().clone() for o in order}
    payload = {
        "model": model_sd,
        "optimizer": upstream_optimizer_state(model_sd, config),
        "config": config,
        "scaler": torch.amp.GradScaler("cpu").state_dict(),
        "epoch": int(epoch),
    }
    atomic_write(Path(path), lambda tmp: torch.save(payload, tmp))
    return model_sd
