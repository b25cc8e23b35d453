"""Build a model from a preset and describe it: parts, shapes, parameter counts, weight memory.

Used by the ``inspect`` and ``convert`` commands. Heavy imports (torch, transformers, the model
packages) happen inside the functions so ``--help`` stays fast.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from mgpt_bridge import VisionLanguageModel
    from mgpt_train.run_settings import RunSettings

logger = logging.getLogger(__name__)

#: Bytes per parameter for the weight-memory table; int8 is computed per tensor (see `weight_memory`).
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


class UserError(Exception):
    """A problem with the user's input (bad preset, file, shapes): printed as one message, no traceback."""


def load_settings(preset: str, sets: list[str] | None = None) -> RunSettings:
    """Preset TOML → env → ``--set section.key=value`` overrides; validation errors become `UserError`."""
    from pydantic import ValidationError

    from mgpt_train.run_settings import load_run_settings, parse_set_options

    try:
        overrides = parse_set_options(list(sets or []))
        return load_run_settings(preset, overrides)
    except ValidationError as err:
        raise UserError(f"preset {preset!r} does not validate:\n{err}") from err
    except (ValueError, FileNotFoundError) as err:
        raise UserError(str(err)) from err


def build_model(settings: RunSettings, *, meta: bool, device: str = "cpu") -> VisionLanguageModel:
    """``build_vlm`` of the settings' vision + bridge; on meta the LM is cast to ``bridge.lm_dtype`` too
    (``load_lm`` leaves meta tensors in fp32), so dtypes and memory read as configured."""
    import torch

    from mgpt_bridge import build_vlm
    from mgpt_bridge.lm_loading import torch_dtype

    if not meta and device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA device here (use --meta to inspect shapes only)")
    try:
        model = build_vlm(settings.vision, settings.bridge, device="meta" if meta else device, meta=meta)
    except (ValueError, FileNotFoundError) as err:
        hint = "" if meta else " (--meta builds the shapes without any weights)"
        raise UserError(f"cannot build the model: {err}{hint}") from err
    if meta and not settings.bridge.load_in_8bit:
        model.lm.to(dtype=torch_dtype(settings.bridge.lm_dtype))
    return model


def trainable_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Name → shape of every parameter that requires grad (what a trainable checkpoint must hold)."""
    return {name: tuple(p.shape) for name, p in model.named_parameters() if p.requires_grad}


def encoder_facts(settings: RunSettings) -> dict[str, Any]:
    """The vision builder's own facts (tokens, widths, depth, Q-Former) from a meta build of the encoder.

    ``build_vlm`` keeps the encoder module but not ``VisionEncoder.details``; a meta build costs
    well under a second and reads no weights.
    """
    from mgpt_vision import build_encoder

    summary = build_encoder(settings.vision, meta=True).summary()
    keep = {
        k: v for k, v in summary.items() if k not in ("params", "trainable_params", "meta", "tensors_loaded")
    }
    return keep


def _count(params) -> int:
    seen: dict[int, int] = {}
    for p in params:
        seen[id(p)] = p.numel()
    return sum(seen.values())


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
        n = _count(params)
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
        "params": _count(projector.parameters()),
        "trainable": any(p.requires_grad for p in projector.parameters()),
        "dtype": _dtype(next(projector.parameters())),
    }


def _lm_facts(model: VisionLanguageModel, settings: RunSettings) -> dict[str, Any]:
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
        "params": _count(params),
        "trainable_params": _count(p for p in params if p.requires_grad),
        "dtype": "int8" if settings.bridge.load_in_8bit else _dtype(lm.get_input_embeddings().weight),
        "tuning": settings.bridge.lm_tuning,
        "frozen": not any(p.requires_grad for p in params),
        "path": None if settings.bridge.lm_path is None else str(settings.bridge.lm_path),
        "tokenizer": None if model.tokenizer is None else type(model.tokenizer).__name__,
    }


def _encoder_facts(model: VisionLanguageModel, facts: dict[str, Any]) -> dict[str, Any]:
    params = list(model.encoder.parameters()) if model.encoder is not None else []
    first = next(iter(params), None)
    return {
        "name": model.encoder_name,
        "tokens": model.num_encoder_tokens,
        "width": model.token_dim,
        "params": _count(params),
        "trainable_params": _count(p for p in params if p.requires_grad),
        "frozen": not any(p.requires_grad for p in params),
        "dtype": None if first is None else _dtype(first),
        "details": facts,
    }


def describe(model: VisionLanguageModel, settings: RunSettings, *, preset: str, meta: bool) -> dict[str, Any]:
    """The JSON-able report of ``inspect``."""
    trainable = trainable_shapes(model)
    by_part: dict[str, int] = {}
    for name, shape in trainable.items():
        numel = 1
        for dim in shape:
            numel *= dim
        by_part[name.split(".", 1)[0]] = by_part.get(name.split(".", 1)[0], 0) + numel
    total = model.num_parameters()
    n_trainable = model.num_parameters(trainable_only=True)
    summary = model.summary()
    return {
        "preset": preset,
        "meta": meta,
        "device": str(model.device),
        "encoder": _encoder_facts(model, encoder_facts(settings)),
        "projector": {
            **_projector_facts(model.projector),
            "label": summary["projector"],  # linear, mlp-3, ldp, ldpv2
            "kind": summary["projector_kind"],
            "tokens_in": model.num_encoder_tokens,
            "tokens_out": model.num_image_tokens,
        },
        "lm": _lm_facts(model, settings),
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
            "style": settings.bridge.template.style,
            "prompt": settings.bridge.template.prompt,
            "end_sym": settings.bridge.template.end_sym,
            "max_txt_len": settings.bridge.template.max_txt_len,
            "instructions": len(settings.bridge.template.instructions),
        },
    }
