"""Eval-time image preprocessing that travels with an encoder (size, mean/std, resize mode)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

RESIZE_MODES = ("squash", "shorter_center_crop")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")


@dataclass(frozen=True)
class PreprocessSpec:
    """How images become the encoder's normalised pixels (see docs/INTERFACES.md)."""

    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    resize_mode: str = "squash"

    def __post_init__(self) -> None:
        # normalise list inputs (e.g. from JSON) to tuples of floats
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if int(self.image_size) != self.image_size or self.image_size <= 0:
            raise ValueError(f"PreprocessSpec.image_size must be a positive int, got {self.image_size!r}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(f"PreprocessSpec mean/std need 3 values, got {self.mean!r} / {self.std!r}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"PreprocessSpec.std must be positive, got {self.std!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"PreprocessSpec.interpolation {self.interpolation!r} not in {INTERPOLATIONS}")
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"PreprocessSpec.resize_mode {self.resize_mode!r} not in {RESIZE_MODES}")

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (lists, not tuples); mgpt_data takes this, never the class."""
        d = asdict(self)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessSpec:
        """Inverse of :meth:`as_dict`; unknown keys are an error."""
        known = {"image_size", "mean", "std", "interpolation", "resize_mode"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown PreprocessSpec keys: {sorted(unknown)}")
        return cls(**d)


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


def resize_image(image: Image.Image, spec: PreprocessSpec) -> Image.Image:
    """Resize an RGB image to spec.image_size² (squash, or shorter side + center crop)."""
    size = spec.image_size
    resample = Image.Resampling[spec.interpolation.upper()]
    if spec.resize_mode == "squash":
        return image.resize((size, size), resample=resample)
    w, h = image.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    image = image.resize((new_w, new_h), resample=resample)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return image.crop((left, top, left + size, top + size))


def preprocess_images(images: Sequence[Image.Image], spec: PreprocessSpec) -> torch.Tensor:
    """PIL images → normalised float32 tensor [B, 3, S, S] (eval-time, deterministic)."""
    if len(images) == 0:
        raise ValueError("preprocess_images needs at least one image")
    arrays = []
    for i, image in enumerate(images):
        if not isinstance(image, Image.Image):
            raise TypeError(f"image #{i} is {type(image).__name__}, expected PIL.Image.Image")
        arrays.append(np.asarray(resize_image(to_rgb(image), spec), dtype=np.uint8))
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1)
    return batch.sub_(mean).div_(std).contiguous()
