"""The preprocessing spec that travels with an encoder (size, mean/std, interpolation, resize mode).

The transform itself (decode → RGB → resize/crop → uint8 → normalise) is implemented once, in
``mgpt_data.images``, which takes this spec as ``PreprocessSpec.as_dict()`` (as timm's
``resolve_model_data_config``: the model tells its preprocessing, the data pipeline applies it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

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
