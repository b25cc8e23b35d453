"""Any timm model as a token encoder, weights from a local file, loaded strictly."""

from __future__ import annotations

import difflib
import logging
from pathlib import Path
from typing import Any

import timm
import torch
from timm.data import resolve_model_data_config
from torch import nn

from mgpt_vision.freeze import Freezable
from mgpt_vision.params import count_parameters
from mgpt_vision.preprocess import PreprocessSpec
from mgpt_vision.tokens import BackboneTokens, TokenPool
from mgpt_vision.vision_encoder import VisionEncoder
from mgpt_vision.weights import load_strict, read_weights_file

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def check_timm_name(name: str) -> None:
    """Raise a clear error (with close matches) for an unknown timm architecture."""
    if name not in timm.list_models():
        close = difflib.get_close_matches(name, timm.list_models(), n=5)
        raise ValueError(f"unknown timm model {name!r}" + (f"; did you mean {close}?" if close else ""))


def timm_preprocess(
    model: nn.Module, *, image_size: int | None = None, resize_mode: str | None = None
) -> PreprocessSpec:
    """PreprocessSpec from ``timm.data.resolve_model_data_config`` (size/mean/std/interpolation)."""
    cfg = resolve_model_data_config(model)
    interpolation = cfg.get("interpolation") or "bicubic"
    if interpolation == "random":
        interpolation = "bicubic"
    default_mode = "squash" if cfg.get("crop_mode") == "squash" else "shorter_center_crop"
    return PreprocessSpec(
        image_size=image_size or int(cfg["input_size"][-1]),
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
        interpolation=interpolation,
        resize_mode=resize_mode or default_mode,
    )


def probe_feature_shape(tokens: BackboneTokens, image_size: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Run one zero image (meta tensors on meta modules) → (feature shape, token shape)."""
    p = next(tokens.parameters())
    x = torch.zeros(1, 3, image_size, image_size, device=p.device, dtype=p.dtype)
    was_training = tokens.training
    tokens.eval()
    try:
        with torch.no_grad():
            feats = tokens.backbone(x)
            out = tokens.pool(feats)
    except Exception as e:  # e.g. a ViT with a fixed input size given another image_size
        raise ValueError(f"the backbone does not accept {image_size}px input: {e}") from e
    finally:
        tokens.train(was_training)
    return tuple(feats.shape), tuple(out.shape)


def wrap_timm_model(
    model: nn.Module,
    *,
    name: str,
    preprocess: PreprocessSpec,
    num_tokens: int | None,
    frozen: bool,
    details: dict[str, Any] | None = None,
) -> VisionEncoder:
    """timm model → Freezable(forward_features) → TokenPool, with token count found by a probe."""
    channels_last = "NHWC" in str(getattr(model, "output_fmt", "NCHW"))
    pool = TokenPool(
        num_tokens, num_prefix_tokens=int(getattr(model, "num_prefix_tokens", 0)), channels_last=channels_last
    )
    module = BackboneTokens(Freezable(model, frozen=frozen, method="forward_features"), pool)
    feat_shape, tok_shape = probe_feature_shape(module, preprocess.image_size)
    if num_tokens is not None:
        if len(feat_shape) == 4:
            h, w = (feat_shape[1], feat_shape[2]) if channels_last else (feat_shape[2], feat_shape[3])
        else:
            h = w = int((feat_shape[1] - pool.num_prefix_tokens) ** 0.5)
        if num_tokens > h * w:
            raise ValueError(
                f"num_tokens={num_tokens} exceeds the {h}×{w} feature grid of {name} at "
                f"{preprocess.image_size}px; use at most {h * w} (or num_tokens=None)"
            )
    info = {
        "feature_shape": list(feat_shape[1:]),
        "frozen": frozen,
        "backbone_params": count_parameters(model),
        **(details or {}),
    }
    return VisionEncoder(
        module=module,
        preprocess=preprocess,
        num_tokens=tok_shape[1],
        token_dim=tok_shape[2],
        name=name,
        details=info,
    )


def _classifier_classes(model: nn.Module, sd: dict[str, torch.Tensor]) -> int:
    """How many classes the weights file's classifier has (0 when it has none)."""
    clf = model.pretrained_cfg.get("classifier") or "head"
    for c in (clf,) if isinstance(clf, str) else tuple(clf):
        if f"{c}.weight" in sd:
            return int(sd[f"{c}.weight"].shape[0])
    return 0


def build_timm_encoder(
    timm_name: str,
    weights_path: Path | None,
    *,
    num_tokens: int | None,
    image_size: int | None = None,
    resize_mode: str | None = None,
    frozen: bool = True,
    dtype: str = "float32",
    device: str | torch.device = "cpu",
    meta: bool = False,
) -> VisionEncoder:
    """Build ``timm_name``; load ``weights_path`` (safetensors or torch file) strictly unless ``meta``."""
    check_timm_name(timm_name)
    if meta:
        with torch.device("meta"):
            model = timm.create_model(timm_name, pretrained=False).to(dtype=DTYPES[dtype])
        weights = None
    else:
        if weights_path is None:
            raise ValueError(f"encoder='timm' ({timm_name}) needs weights_path: a local weights file")
        sd = read_weights_file(Path(weights_path))
        with torch.device("meta"):
            shape_model = timm.create_model(timm_name, pretrained=False)
        model = timm.create_model(
            timm_name, pretrained=False, num_classes=_classifier_classes(shape_model, sd)
        )
        load_strict(model, sd, f"timm {timm_name} from {weights_path}")
        log.info("loaded %d tensors into timm %s from %s", len(sd), timm_name, weights_path)
        weights = str(weights_path)
        model = model.to(device=device, dtype=DTYPES[dtype])
    spec = timm_preprocess(model, image_size=image_size, resize_mode=resize_mode)
    return wrap_timm_model(
        model,
        name=timm_name,
        preprocess=spec,
        num_tokens=num_tokens,
        frozen=frozen,
        details={"weights": weights, "dtype": dtype},
    )
