"""Image decoding and the per-image transforms (pure PIL/numpy, no Ray).

The eval-time path mirrors ``mgpt_vision.preprocess`` (EXIF orientation, any mode → RGB with alpha
over white, squash or shorter-side-resize + center crop, ``(x/255 - mean) / std`` in float32), so
pixels from this package equal the encoder's own ``preprocess_images`` — mgpt_data may not import
mgpt_vision, so the spec arrives as ``PreprocessSpec.as_dict()``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from mgpt_data.rejects import RejectReason

RESIZE_MODES = ("squash", "shorter_center_crop")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
_SPEC_KEYS = {"image_size", "mean", "std", "interpolation", "resize_mode"}


class ImageDecodeError(Exception):
    """An image that cannot become pixels; ``reason`` is a :class:`RejectReason` value."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason.value
        self.detail = detail


@dataclass(frozen=True)
class Spec:
    """A validated ``PreprocessSpec.as_dict()``."""

    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    resize_mode: str = "squash"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Spec:
        unknown = set(d) - _SPEC_KEYS
        missing = {"image_size", "mean", "std"} - set(d)
        if unknown or missing:
            raise ValueError(f"preprocess spec: unknown keys {sorted(unknown)}, "
                             f"missing keys {sorted(missing)}")
        spec = cls(int(d["image_size"]), tuple(float(v) for v in d["mean"]),
                   tuple(float(v) for v in d["std"]), str(d.get("interpolation", "bicubic")),
                   str(d.get("resize_mode", "squash")))
        if spec.image_size <= 0 or len(spec.mean) != 3 or len(spec.std) != 3 or min(spec.std) <= 0:
            raise ValueError(f"preprocess spec needs image_size > 0 and 3 means / 3 positive stds, got {d}")
        if spec.interpolation not in INTERPOLATIONS or spec.resize_mode not in RESIZE_MODES:
            raise ValueError(f"preprocess spec: interpolation must be in {INTERPOLATIONS} and resize_mode in "
                             f"{RESIZE_MODES}, got {spec.interpolation!r} / {spec.resize_mode!r}")
        return spec

    @property
    def resample(self) -> Image.Resampling:
        return Image.Resampling[self.interpolation.upper()]


@contextmanager
def _truncated_images_are_errors() -> Iterator[None]:
    prev = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = prev


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode → RGB: EXIF orientation applied, alpha composited over white, 16-bit/float scaled."""
    image = ImageOps.exif_transpose(image)
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(image, dtype=np.float32)
        top = 65535.0 if arr.max(initial=0.0) > 255.0 else 255.0
        arr = np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def decode_image(path: str) -> Image.Image:
    """Open and fully decode an image file (a truncated file is an error) → RGB."""
    try:
        with _truncated_images_are_errors(), Image.open(path) as image:
            image.load()
            return to_rgb(image)
    except FileNotFoundError as e:
        raise ImageDecodeError(RejectReason.MISSING_FILE, f"{path} does not exist") from e
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as e:
        raise ImageDecodeError(RejectReason.UNREADABLE_IMAGE, f"{type(e).__name__}: {e}") from e


def resize_image(image: Image.Image, spec: Spec) -> Image.Image:
    """Eval-time resize to spec.image_size² (squash, or shorter side + center crop)."""
    size = spec.image_size
    if spec.resize_mode == "squash":
        return image.resize((size, size), resample=spec.resample)
    w, h = image.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    image = image.resize((new_w, new_h), resample=spec.resample)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return image.crop((left, top, left + size, top + size))


def random_resized_crop(image: Image.Image, spec: Spec, rng: np.random.Generator,
                        scale: tuple[float, float] = (0.5, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> Image.Image:
    """torchvision's RandomResizedCrop (MiniGPT-4's train transform), drawing from ``rng``."""
    width, height = image.size
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            break
    else:  # fall back to a center crop at the closest allowed aspect ratio
        in_ratio = width / height
        w, h = width, height
        if in_ratio < ratio[0]:
            h = round(w / ratio[0])
        elif in_ratio > ratio[1]:
            w = round(h * ratio[1])
        top, left = (height - h) // 2, (width - w) // 2
    crop = image.crop((left, top, left + w, top + h))
    return crop.resize((spec.image_size, spec.image_size), resample=spec.resample)


def normalize(image: Image.Image, spec: Spec) -> np.ndarray:
    """RGB image of spec.image_size² → float32 [3, S, S], ``(x/255 - mean) / std``."""
    arr = np.asarray(image, dtype=np.uint8).astype(np.float32) / np.float32(255.0)
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    return np.ascontiguousarray(((arr - mean) / std).transpose(2, 0, 1))


def row_rng(seed: int, *keys: str) -> np.random.Generator:
    """A generator that depends only on the seed and the row's keys (not on batch or worker)."""
    return np.random.default_rng([seed % 2**32, *(zlib.crc32(k.encode("utf-8")) for k in keys)])
