"""build_encoder: VisionSettings → VisionEncoder (dispatch to the encoder families)."""

from __future__ import annotations

import logging

import torch

from mgpt_vision.settings import BLIP2_ENCODERS, VisionSettings
from mgpt_vision.vision_encoder import VisionEncoder

__all__ = ["VisionEncoder", "build_encoder", "prepare_encoder_weights"]

log = logging.getLogger(__name__)


def build_encoder(
    settings: VisionSettings, *, device: str | torch.device = "cpu", meta: bool = False
) -> VisionEncoder:
    """Build the encoder the settings name. ``meta=True``: modules on the meta device, no weights read.

    Frozen parts (``freeze_vision``, ``freeze_qformer``) are in eval mode (kept under ``.train()``),
    have ``requires_grad=False`` and run under ``torch.no_grad()``.
    """
    s = settings
    common = {"dtype": s.dtype, "device": device, "meta": meta, "resize_mode": s.resize_mode}
    if s.encoder in ("efficientnet_lite0", "efficientnet_lite2"):
        from mgpt_vision.efficientnet import build_efficientnet_lite

        enc = build_efficientnet_lite(
            s.encoder, num_tokens=s.num_tokens, image_size=s.image_size, frozen=s.freeze_vision, **common
        )
    elif s.encoder == "timm":
        from mgpt_vision.timm_encoder import build_timm_encoder

        assert s.timm_name is not None  # guaranteed by VisionSettings
        enc = build_timm_encoder(
            s.timm_name,
            s.weights_path,
            num_tokens=s.num_tokens,
            image_size=s.image_size,
            frozen=s.freeze_vision,
            **common,
        )
    elif s.encoder == "tiny":
        from mgpt_vision.tiny import build_tiny

        enc = build_tiny(num_tokens=s.num_tokens, image_size=s.image_size, frozen=s.freeze_vision, **common)
    elif s.encoder in BLIP2_ENCODERS:
        from mgpt_vision.blip2 import build_blip2

        if s.num_tokens not in (None, 16):
            log.warning("num_tokens=%s is ignored by encoder=%r", s.num_tokens, s.encoder)
        enc = build_blip2(
            s.weights_path,
            with_qformer=s.encoder == "blip2",
            freeze_vision=s.freeze_vision,
            freeze_qformer=s.freeze_qformer,
            **common,
        )
    else:  # pragma: no cover - Literal in VisionSettings prevents it
        raise ValueError(f"unknown encoder {s.encoder!r}")
    enc.details.setdefault("encoder", s.encoder)
    enc.details["meta"] = meta
    log.info("built vision encoder %s: %d tokens × %d", enc.name, enc.num_tokens, enc.token_dim)
    return enc


def prepare_encoder_weights(settings: VisionSettings) -> None:
    """Do one-off weight conversion on the driver (EfficientNet-Lite → cached safetensors) so that
    Ray workers only read the cache. A no-op for encoders that need no conversion."""
    if settings.encoder in ("efficientnet_lite0", "efficientnet_lite2"):
        from mgpt_vision.efficientnet import converted_lite_weights

        converted_lite_weights(settings.encoder)
