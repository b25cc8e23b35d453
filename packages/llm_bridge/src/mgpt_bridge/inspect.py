"""`inspect_model`: build a model from settings and describe it — parts, shapes, parameters, memory.

``meta=True`` builds on the meta device (shapes only, no weights, no GPU: a 7B recipe in seconds).
Heavy imports happen inside the functions so importing this module stays cheap.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mgpt_vision import count_parameters

if TYPE_CHECKING:
    from torch import nn

    from mgpt_bridge.model import VisionLanguageModel
    from mgpt_bridge.settings import BridgeSettings
    from mgpt_vision import VisionSettings

logger = logging.getLogger(__name__)

#: Bytes per parameter for the weight-memory table; int8 is computed per tensor (see `weight_memory`).
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


def build_for_inspection(
    vision: VisionSettings, bridge: BridgeSettings, *, meta: bool, device: str = "cpu"
) -> VisionLanguageModel:
    """``build_vlm``; on meta the LM is cast to ``bridge.lm_dtype`` too (``load_lm`` leaves meta
    tensors in fp32), so dtypes and memory read as configured."""
    import torch

    from mgpt_bridge.lm_loading import torch_dtype
    from mgpt_bridge.model import build_vlm

    if not meta and device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device}: no CUDA device here (inspect with meta=True for shapes only)")
    try:
        model = build_vlm(vision, bridge, device="meta" if meta else device, meta=meta)
    except FileNotFoundError as err:
        hint = "" if meta else " (a meta build, `inspect --meta`, needs no weights)"
        raise FileNotFoundError(f"cannot build the model: {err}{hint}") from err
    if meta and not bridge.load_in_8bit:
        model.lm.to(dtype=torch_dtype(bridge.lm_dtype))
    return model


def encoder_facts(vision: VisionSettings) -> dict[str, Any]:
    """The vision builder's own facts (tokens, widths, depth, Q-Former) from a meta build of the encoder.

    ``build_vlm`` keeps the encoder module but not ``VisionEncoder.details``; a meta build costs
    well under a second and reads no weights.
    """
    from mgpt_vision import build_encoder

    summary = build_encoder(vision, meta=True).summary()
    keep = {
        k: v for k, v in summary.items() if k not in ("params", "trainable_params", "meta", "tensors_loaded")
    }
    return keep


def _lm_int8_bytes(lm: nn.Module) -> int:
    """bitsandbytes LLM.int8 layout: every ``nn.Linear`` weight but the output head in 1 byte, the rest
    (embeddings, norms, biases, ``lm_head``) in 2 bytes."""
    from torch import nn

    head = lm.get_output_embeddings() if hasattr(lm, "get_output_embeddings") else None
    int8_ids = {
        id(m.weight)
        for m in lm.modules()
        if isinstance(m, nn.Linear) and m is not head and m.weight is not None
    }
    total = 0
    seen: set[int] = set()
    for p in lm.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel() * (1 if id(p) in int8_ids else 2)
    return total


def weight_memory(model: VisionLanguageModel) -> dict[str, dict[str, int]]:
    """Bytes the weights take, per part and in total, for fp32 / bf16 / fp16 / int8 and as configured.

    ``int8`` is the ``load_in_8bit`` layout: LM linear weights (not ``lm_head``) 1 byte, every other
    LM parameter 2 bytes, the encoder and projector in fp16 (as MiniGPT-4's low-resource mode).
    """
    parts = {"encoder": model.encoder, "projector": model.projector, "lm": model.lm}
    table: dict[str, dict[str, int]] = {}
    for name, module in parts.items():
        if module is None:
            continue
        params = list(module.parameters())
        n = count_parameters(params)
        row = {dtype: n * size for dtype, size in BYTES.items()}
        row["int8"] = _lm_int8_bytes(module) if name == "lm" else n * 2
        row["configured"] = sum(p.numel() * p.element_size() for p in {id(p): p for p in params}.values())
        table[name] = row
    table["total"] = {
        k: sum(row[k] for row in table.values()) for k in ("fp32", "bf16", "fp16", "int8", "configured")
    }
    return table


def _dtype(t) -> str:
    return str(t.dtype).removeprefix("torch.")


def _projector_facts(projector: nn.Module) -> dict[str, Any]:
    from torch import nn

    linears = [m for m in projector.modules() if isinstance(m, nn.Linear)]
    return {
        "type": type(projector).__name__,
        "layers": [[m.in_features, m.out_features] for m in linears],
        "in_features": linears[0].in_features if linears else None,
        "out_features": linears[-1].out_features if linears else None,
        "params": count_parameters(projector.parameters()),
        "trainable": any(p.requires_grad for p in projector.parameters()),
        "dtype": _dtype(next(projector.parameters())),
    }


def _lm_facts(model: VisionLanguageModel, bridge: BridgeSettings) -> dict[str, Any]:
    lm = model.lm
    config = lm.config
    params = list(lm.parameters())
    return {
        "name": model.lm_name,
        "model_type": getattr(config, "model_type", None),
        "layers": getattr(config, "num_hidden_layers", None),
        "hidden": getattr(config, "hidden_size", None),
        "intermediate": getattr(config, "intermediate_size", None),
        "heads": getattr(config, "num_attention_heads", None),
        "vocab": getattr(config, "vocab_size", None),
        "params": count_parameters(params),
        "trainable_params": count_parameters(p for p in params if p.requires_grad),
        "dtype": "int8" if bridge.load_in_8bit else _dtype(lm.get_input_embeddings().weight),
        "tuning": bridge.lm_tuning,
        "frozen": not any(p.requires_grad for p in params),
        "path": None if bridge.lm_path is None else str(bridge.lm_path),
        "tokenizer": None if model.tokenizer is None else type(model.tokenizer).__name__,
    }


def _encoder_facts(model: VisionLanguageModel, facts: dict[str, Any]) -> dict[str, Any]:
    params = list(model.encoder.parameters()) if model.encoder is not None else []
    first = next(iter(params), None)
    return {
        "name": model.encoder_name,
        "tokens": model.num_encoder_tokens,
        "width": model.token_dim,
        "params": count_parameters(params),
        "trainable_params": count_parameters(p for p in params if p.requires_grad),
        "frozen": not any(p.requires_grad for p in params),
        "dtype": None if first is None else _dtype(first),
        "details": facts,
    }


def describe(
    model: VisionLanguageModel, vision: VisionSettings, bridge: BridgeSettings, *, preset: str | None,
    meta: bool,
) -> dict[str, Any]:
    """The JSON-able report of ``inspect`` for a built ``model``."""
    trainable = model.trainable_shapes()
    by_part: dict[str, int] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            by_part[name.split(".", 1)[0]] = by_part.get(name.split(".", 1)[0], 0) + p.numel()
    total = count_parameters(model)
    n_trainable = count_parameters(model, trainable_only=True)
    summary = model.summary()
    return {
        "preset": preset,
        "meta": meta,
        "device": str(model.device),
        "encoder": _encoder_facts(model, encoder_facts(vision)),
        "projector": {
            **_projector_facts(model.projector),
            "label": summary["projector"],  # linear, mlp-3, ldp, ldpv2
            "kind": summary["projector_kind"],
            "tokens_in": model.num_encoder_tokens,
            "tokens_out": model.num_image_tokens,
        },
        "lm": _lm_facts(model, bridge),
        "image_tokens": model.num_image_tokens,
        "params": {
            "total": total,
            "trainable": n_trainable,
            "frozen": total - n_trainable,
            "trainable_by_part": by_part,
            "trainable_tensors": {name: list(shape) for name, shape in trainable.items()},
        },
        "memory_bytes": weight_memory(model),
        "template": {
            "style": bridge.template.style,
            "prompt": bridge.template.prompt,
            "end_sym": bridge.template.end_sym,
            "max_txt_len": bridge.template.max_txt_len,
            "instructions": len(bridge.template.instructions),
        },
    }


def inspect_model(
    vision: VisionSettings, bridge: BridgeSettings, *, meta: bool = False, device: str = "cpu",
    preset: str | None = None, plan_gpus: int | None = None,
) -> dict[str, Any]:
    """Build the model of ``vision`` + ``bridge`` (on meta: no weights) and return its JSON-able report;
    ``plan_gpus``: add the per-GPU training memory of each LM tuning under ddp vs fsdp (meta builds)."""
    model = build_for_inspection(vision, bridge, meta=meta, device=device)
    report = describe(model, vision, bridge, preset=preset, meta=meta)
    if plan_gpus is not None:
        from mgpt_bridge.memory_plan import memory_plan

        report["memory_plan"] = memory_plan(vision, bridge, plan_gpus)
    return report
