"""Batcher: micro-batches from cached features or pixels, deterministic instructions."""

from __future__ import annotations

import pytest
import torch

from mgpt_train.collate import Batcher

INSTRUCTIONS = ["<ImageHere> a", "<ImageHere> b", "<ImageHere> c"]


def _rows(n: int) -> list[dict]:
    return [{"row": i, "image_id": f"img{i % 4}", "caption": f"caption {i}", "path": f"/nowhere/{i}.jpg"}
            for i in range(n)]


def _features() -> dict[str, torch.Tensor]:
    return {f"img{i}": torch.full((2, 3), float(i)) for i in range(4)}


def test_feature_batches_are_deterministic_and_rank_disjoint() -> None:
    kw = dict(seed=1, batch_size=3, world_size=2, features=_features())
    b0 = Batcher(_rows(12), INSTRUCTIONS, rank=0, **kw)
    b1 = Batcher(list(reversed(_rows(12))), INSTRUCTIONS, rank=1, **kw)  # delivery order does not matter
    m0 = b0.micro_batch(epoch=0, micro_step=1, global_step=2)
    m1 = b1.micro_batch(epoch=0, micro_step=1, global_step=2)
    assert m0["features"].shape == (3, 2, 3)
    assert not set(m0["answers"]) & set(m1["answers"])
    again = Batcher(_rows(12), INSTRUCTIONS, rank=0, **kw).micro_batch(epoch=0, micro_step=1, global_step=2)
    assert again["answers"] == m0["answers"] and again["instructions"] == m0["instructions"]
    assert again["features"].equal(m0["features"])
    assert set(m0["instructions"]) <= set(INSTRUCTIONS)
    # the feature row belongs to the caption's image
    for caption, feat in zip(m0["answers"], m0["features"], strict=True):
        assert float(feat[0, 0]) == int(caption.split()[1]) % 4


def test_pixels_come_from_the_preprocessor_per_epoch() -> None:
    made = []

    def factory(epoch: int):
        made.append(epoch)

        def pre(batch):
            return {**batch, "pixels": torch.full((len(batch["path"]), 3, 4, 4), float(epoch)).numpy()}

        return pre

    b = Batcher(_rows(8), INSTRUCTIONS, seed=0, batch_size=2, world_size=1, rank=0,
                preprocessor_factory=factory)
    assert b.micro_batch(epoch=1, micro_step=0, global_step=1)["pixels"].flatten().unique().tolist() == [1.0]
    b.micro_batch(epoch=1, micro_step=1, global_step=2)
    b.micro_batch(epoch=2, micro_step=0, global_step=3)
    assert made == [1, 2]


def test_bad_construction_raises() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Batcher(_rows(4), INSTRUCTIONS, seed=0, batch_size=2, world_size=1, rank=0)
    with pytest.raises(KeyError, match="no cached features"):
        Batcher(_rows(4), INSTRUCTIONS, seed=0, batch_size=2, world_size=1, rank=0, features={})
