"""Build the model of a run the same way everywhere (driver, workers, predictor actors)."""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from mgpt_bridge import VisionLanguageModel
    from mgpt_train.run_settings import RunSettings

logger = logging.getLogger(__name__)

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def build_model(
    settings: RunSettings, *, device: str | torch.device = "cpu", checkpoint: Path | str | None = None,
    precision: str | None = None,
) -> VisionLanguageModel:
    """``build_vlm`` under ``torch.manual_seed(train.seed)``: every rank (and the untrained baseline)
    starts from the same projector init. ``checkpoint``: a checkpoint folder or ``.safetensors`` file
    whose trainable parameters are loaded strictly. ``precision`` (resolved: bf16, fp16, fp32): the
    model will run under that autocast, so frozen linear weights are stored in its dtype once
    (`cast_frozen_linears`)."""
    from mgpt_bridge import build_vlm
    from mgpt_train.checkpointing import read_trainable

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.train.seed)
        model = build_vlm(settings.vision, settings.bridge, device=device)
    if checkpoint is not None:
        model.load_trainable_state_dict(read_trainable(checkpoint))
        logger.info("loaded trainable parameters from %s", checkpoint)
    if precision in _AUTOCAST_DTYPES:
        cast_frozen_linears(model, _AUTOCAST_DTYPES[precision])
    return model


def cast_frozen_linears(model: torch.nn.Module, dtype: torch.dtype) -> int:
    """Store the weights of frozen ``nn.Linear`` layers in ``dtype``; returns how many were cast.

    Under autocast a linear casts its weight to the autocast dtype on every call (the cast is
    cached only for weights that require grad), so a frozen LM's weights were converted each step,
    forward and backward; doing it once gives the same bits (the same rounding) for less work. A
    weight shared with another module (a head tied to the input embedding) gets its own copy, so the
    embedding lookup stays in its dtype. Biases and every other module are left as they are. Only
    for a model that then runs under that autocast: outside it a bf16 weight rejects fp32 inputs.
    """
    n = 0
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if not isinstance(module, torch.nn.Linear) or weight is None or weight.requires_grad:
            continue
        if weight.dtype == dtype or not weight.is_floating_point():
            continue
        module.weight = torch.nn.Parameter(weight.detach().to(dtype), requires_grad=False)
        n += 1
    logger.info("stored %d frozen linear weights in %s (autocast)", n, dtype)
    return n


def features_cacheable(settings: RunSettings) -> tuple[bool, str]:
    """Whether training may run from cached encoder features, and why not when it may not."""
    if not settings.train.cache_features:
        return False, "train.cache_features is off"
    if not settings.vision.freeze_vision or (
        settings.vision.encoder == "blip2" and not settings.vision.freeze_qformer
    ):
        return False, "the encoder is trainable"
    if settings.data.augment:
        return False, "data.augment is on (pixels differ every epoch)"
    return True, ""


def autocast(precision: str, device_type: str) -> AbstractContextManager:
    """The autocast context for a resolved precision (fp32 → no autocast)."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device_type, dtype=_AUTOCAST_DTYPES[precision])

