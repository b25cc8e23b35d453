from __future__ import annotations

import json

import pytest

from mgpt_vision import PreprocessSpec

LITE = PreprocessSpec(image_size=8, mean=(127 / 255,) * 3, std=(128 / 255,) * 3)


def test_spec_dict_round_trip_is_json() -> None:
    spec = PreprocessSpec(224, (0.1, 0.2, 0.3), (0.4, 0.5, 0.6), "bilinear", "shorter_center_crop")
    d = json.loads(json.dumps(spec.as_dict()))
    assert d["mean"] == [0.1, 0.2, 0.3]
    assert PreprocessSpec.from_dict(d) == spec


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_size": 0}, "image_size"),
        ({"std": (0.0, 1.0, 1.0)}, "std"),
        ({"mean": (0.5, 0.5)}, "3 values"),
        ({"interpolation": "cubicle"}, "interpolation"),
        ({"resize_mode": "pad"}, "resize_mode"),
    ],
)
def test_spec_validation(kwargs: dict, message: str) -> None:
    base = {"image_size": 8, "mean": (0.5,) * 3, "std": (0.5,) * 3}
    with pytest.raises(ValueError, match=message):
        PreprocessSpec(**{**base, **kwargs})


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match="unknown PreprocessSpec keys"):
        PreprocessSpec.from_dict({**LITE.as_dict(), "crop_pct": 0.9})
