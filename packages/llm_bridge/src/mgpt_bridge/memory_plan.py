"""Per-GPU training memory of a model under ``train.parallel`` = ddp or fsdp, from its (meta) parameters.

Counted: weights (as built: their dtypes), gradients of the trainable ones (same dtype) and AdamW's two
moments (torch keeps them in the parameter's dtype). Under ddp every GPU holds all of it. Under fsdp
(`mgpt_train.parallel`) the frozen encoder stays whole on every GPU and everything else is split over the
GPUs, plus the largest unit gathered whole at a time (one decoder layer, or the root: projector,
embeddings, head). Not counted: activations, DDP's gradient buckets, CUDA context and allocator slack,
so real peaks are higher; the numbers compare the strategies, they are not a guarantee.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from mgpt_bridge.model import VisionLanguageModel
    from mgpt_bridge.settings import BridgeSettings
    from mgpt_vision import VisionSettings

TUNINGS = ("frozen", "lora", "full")


def _bytes(params: Any) -> int:
    unique = {id(p): p for p in params}
    return sum(p.numel() * p.element_size() for p in unique.values())


def _layer_units(lm: nn.Module) -> list[nn.Module]:
    names: set[str] = set()
    for module in lm.modules():
        names.update(getattr(module, "_no_split_modules", None) or ())
    return [m for m in lm.modules() if type(m).__name__ in names]


def training_memory(model: VisionLanguageModel, gpus: int) -> dict[str, Any]:
    """Bytes per GPU for ``model`` as it is (its trainability) under ddp and fsdp over ``gpus`` GPUs."""
    if gpus < 1:
        raise ValueError(f"gpus must be >= 1, got {gpus}")
    params = list(model.parameters())
    encoder = list(model.encoder.parameters()) if model.encoder is not None else []
    kept_whole = _bytes(p for p in encoder if not p.requires_grad)
    sharded = _bytes(params) - kept_whole
    trainable = _bytes(p for p in params if p.requires_grad)
    layers = [_bytes(m.parameters()) for m in _layer_units(model.lm)]
    largest_unit = max([*layers, sharded - sum(layers)]) if sharded else 0
    ddp = kept_whole + sharded + 3 * trainable  # + gradients + two AdamW moments
    fsdp = kept_whole + (sharded + 3 * trainable + gpus - 1) // gpus + largest_unit
    return {"weights": kept_whole + sharded, "frozen_encoder": kept_whole, "trainable": trainable,
            "largest_unit": largest_unit, "ddp": ddp, "fsdp": fsdp}


def memory_plan(vision: VisionSettings, bridge: BridgeSettings, gpus: int) -> dict[str, Any]:
    """`training_memory` of meta builds of ``bridge`` with each LM tuning (frozen, LoRA, full)."""
    from mgpt_bridge.inspect import build_for_inspection

    rows = []
    for tuning in TUNINGS:
        if tuning == "full" and bridge.load_in_8bit:
            continue  # int8 weights cannot be fully tuned
        settings = bridge.model_copy(update={"lm_tuning": tuning})
        model = build_for_inspection(vision, settings, meta=True)
        rows.append({"lm_tuning": tuning, **training_memory(model, gpus)})
    return {"gpus": gpus, "rows": rows,
            "counted": "weights + gradients + AdamW moments (parameter dtypes); no activations"}
