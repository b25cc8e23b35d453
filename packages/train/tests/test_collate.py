"""model_inputs: a planned micro-batch → the model's keyword arguments (features or pixels, instructions)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mgpt_train.collate import model_inputs, sort_rows

INSTRUCTIONS = ["<ImageHere> a", "<ImageHere> b", "<ImageHere> c"]
SPEC = {"image_size": 4, "mean": [0.5] * 3, "std": [0.5] * 3}


def _batch(n: int, **extra: np.ndarray) -> dict[str, np.ndarray]:
    return {"caption": np.asarray([f"caption {i}" for i in range(n)], dtype=object),
            "instruction": np.arange(n) % 3,
            "content_hash": np.asarray([f"h{i % 2}" for i in range(n)], dtype=object),
            **extra}


def test_features_follow_each_row_and_instructions_come_from_the_plan() -> None:
    features = {"h0": torch.zeros(2, 3), "h1": torch.ones(2, 3)}
    kwargs, empty = model_inputs(_batch(3), instructions=INSTRUCTIONS, spec=None, features=features)
    assert not empty and kwargs["answers"] == ["caption 0", "caption 1", "caption 2"]
    assert kwargs["instructions"] == INSTRUCTIONS[:3]
    assert kwargs["features"].shape == (3, 2, 3) and kwargs["features"][:, 0, 0].tolist() == [0.0, 1.0, 0.0]


def test_pixels_are_normalised_and_placeholders_left_out() -> None:
    pixels = np.full((3, 3, 4, 4), 255, np.uint8)
    batch = _batch(3, pixels=pixels, valid=np.asarray([True, False, True]))
    kwargs, empty = model_inputs(batch, instructions=INSTRUCTIONS, spec=SPEC)
    assert not empty and kwargs["answers"] == ["caption 0", "caption 2"]
    assert kwargs["pixels"].dtype == torch.float32
    assert torch.allclose(kwargs["pixels"], torch.ones(2, 3, 4, 4))
    only_bad = _batch(2, pixels=pixels[:2], valid=np.asarray([False, False]))
    kwargs, empty = model_inputs(only_bad, instructions=INSTRUCTIONS, spec=SPEC)
    assert empty and len(kwargs["answers"]) == 1  # one placeholder row for a zero-weighted step
    with pytest.raises(ValueError, match="preprocessing spec"):
        model_inputs(_batch(1, pixels=pixels[:1]), instructions=INSTRUCTIONS, spec=None)


def test_sort_rows_is_independent_of_delivery_order() -> None:
    rows = [{"row": i, "image_id": f"img{i % 4}", "caption": f"c{i}"} for i in range(8)]
    assert sort_rows(rows) == sort_rows(list(reversed(rows)))
