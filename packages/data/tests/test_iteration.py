"""Deterministic per-worker shards and the local (no-cluster) iterator."""

from pathlib import Path

import numpy as np
import pytest

from mgpt_data.flickr30k import read_rows
from mgpt_data.iteration import LocalBatches, epoch_permutation, pipeline_kwargs, shard_rows
from mgpt_data.settings import DataSettings
from mgpt_data.synthetic import write_synthetic_scenes


def ids(rows):
    return [r["image_id"] + "/" + r["caption"] for r in rows]


def test_shards_are_disjoint_equal_and_seeded():
    rows = [{"image_id": str(i), "caption": "c"} for i in range(23)]
    shards = [shard_rows(rows, rank=r, world_size=3, seed=5, epoch=2) for r in range(3)]
    assert [len(s) for s in shards] == [7, 7, 7]
    flat = [x for s in shards for x in ids(s)]
    assert len(set(flat)) == 21  # disjoint; 2 rows cut this epoch so every worker takes 7 steps
    assert shards[1] == shard_rows(rows, rank=1, world_size=3, seed=5, epoch=2)
    assert shards[1] != shard_rows(rows, rank=1, world_size=3, seed=5, epoch=3)
    np.testing.assert_array_equal(
        epoch_permutation(23, seed=5, epoch=2), epoch_permutation(23, seed=6, epoch=1)
    )
    assert ids(shard_rows(rows, shuffle=False)) == ids(rows)
    with pytest.raises(ValueError, match="rank"):
        shard_rows(rows, rank=3, world_size=3)
    with pytest.raises(ValueError, match="cannot feed"):
        shard_rows(rows[:2], world_size=3)


def test_local_batches_rebatch_after_rejects(clean_dir: Path, spec):
    rows = read_rows(clean_dir, split="train")  # 6 images × 5 captions
    Path(rows[0]["path"]).write_bytes(b"broken")  # image 100: its 5 rows are dropped
    loader = LocalBatches(rows, spec, batch_size=4, seed=1, epoch=0)
    batches = list(loader)
    sizes = [len(b["image_id"]) for b in batches]
    assert sizes == [4] * 6 + [1] and all(b["pixels"].shape[1:] == (3, 32, 32) for b in batches)
    got = [i + "/" + c for b in batches for i, c in zip(b["image_id"], b["caption"], strict=True)]
    expected = [x for x in ids(shard_rows(rows, seed=1, epoch=0)) if not x.startswith("100/")]
    assert got == expected  # the epoch's order, minus the rejected rows
    assert {r["image_id"] for r in loader.rejects} == {"100"} and len(loader.rejects) == 5
    again = list(LocalBatches(rows, spec, batch_size=4, seed=1, epoch=0, augment=True))
    twice = list(LocalBatches(rows, spec, batch_size=4, seed=1, epoch=0, augment=True))
    assert all(np.array_equal(a["pixels"], b["pixels"]) for a, b in zip(again, twice, strict=True))
    assert len(list(LocalBatches(rows, spec, batch_size=4, drop_last=True))) == 6


def test_pipeline_kwargs_refuse_hflip_on_synthetic_scenes(tmp_path: Path):
    syn = write_synthetic_scenes(tmp_path / "syn", 3, progress=False)
    with pytest.raises(ValueError, match="captions false"):
        pipeline_kwargs(DataSettings(data_dir=syn, augment=True, hflip=True))
    kw = pipeline_kwargs(DataSettings(data_dir=syn, augment=True, seed=9))
    assert kw == {
        "seed": 9,
        "augment": True,
        "hflip": False,
        "crop_scale": (0.5, 1.0),
        "batch_size": 32,
        "concurrency": 1,
        "num_cpus": 1.0,
        "compute": "tasks",
    }
