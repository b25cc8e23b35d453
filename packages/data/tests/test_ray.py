"""The Ray Data path gives the same rows, pixels, order and rejects as the local path."""

from pathlib import Path

import numpy as np
import pytest

from mgpt_data.batches import batch_to_rows
from mgpt_data.check import check_data_dir
from mgpt_data.flickr30k import read_flickr30k, read_local
from mgpt_data.iteration import LocalBatches, shard_rows, train_dataset, worker_dataset
from mgpt_data.rejects import drain_rejects, read_rejects, start_rejects_sink, unique_rejects

pytestmark = pytest.mark.ray


def plain(row):
    return {k: (list(v) if k == "captions" else v) for k, v in row.items()}


def test_read_flickr30k_dataset_equals_local_rows(ray_session, clean_dir: Path):
    read = read_flickr30k(clean_dir, split="train", block_rows=7)
    assert read.dataset.num_blocks() == 5
    assert (
        [plain(r) for r in read.dataset.take_all()] == read.rows == read_local(clean_dir, split="train").rows
    )
    assert read.summary["samples"] == 30 and read.rejects == []


@pytest.mark.parametrize("compute", ["tasks", "actors"])
def test_worker_dataset_matches_local_batches_and_rejects(ray_session, clean_dir: Path, spec, compute):
    rows = read_local(clean_dir, split="train").rows
    kw = {"rank": 1, "world_size": 2, "seed": 3, "epoch": 1, "augment": True}
    shard = shard_rows(rows, **{k: kw[k] for k in ("rank", "world_size", "seed", "epoch")})
    broken = shard[2]
    Path(broken["path"]).write_bytes(b"not a jpeg")
    sink = start_rejects_sink()
    ds = worker_dataset(
        rows, spec, **kw, batch_size=3, concurrency=2, num_cpus=0.5, rejects_sink=sink, block_rows=4,
        compute=compute,
    )
    ray_rows = [r for b in ds.iter_batches(batch_size=4, batch_format="numpy") for r in batch_to_rows(b)]
    local = LocalBatches(rows, spec, batch_size=4, **kw)
    local_rows = [r for b in local for r in batch_to_rows(b)]
    assert len(ray_rows) == len(local_rows) == sum(r["image_id"] != broken["image_id"] for r in shard) > 0
    assert broken["image_id"] not in {r["image_id"] for r in ray_rows}
    for a, b in zip(ray_rows, local_rows, strict=True):
        keys = ("image_id", "caption", "captions", "row")
        assert [a[k] for k in keys] == [b[k] for k in keys]
        np.testing.assert_array_equal(a["pixels"], b["pixels"])
    sunk = drain_rejects(sink)
    assert sunk == unique_rejects(local.rejects) and {r["reason"] for r in sunk} == {"unreadable_image"}
    assert {r["image_id"] for r in sunk} == {broken["image_id"]}
    assert drain_rejects(sink) == []  # drained


def test_train_dataset_shuffle_is_seeded_per_epoch(ray_session, clean_dir: Path, spec):
    rows = (
        read_local(clean_dir, split="train", sample_mode="grounded").rows
        + read_local(clean_dir, split="val").rows
    )

    def order(epoch):
        ds = train_dataset(rows, spec, seed=11, epoch=epoch, batch_size=4, block_rows=4)
        return [
            r["image_id"] + "/" + r["caption"] for r in ds.select_columns(["image_id", "caption"]).iter_rows()
        ]

    first, again, other = order(0), order(0), order(1)
    assert first == again
    assert first != other and sorted(first) == sorted(other) == sorted(
        r["image_id"] + "/" + r["caption"] for r in rows
    )


def test_check_on_ray_equals_check_local(ray_session, clean_dir: Path):
    images = clean_dir / "flickr30k-images"
    jpeg = (images / "103.jpg").read_bytes()
    (images / "103.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (images / "105.jpg").unlink()
    local = check_data_dir(clean_dir, engine="local", progress=False)
    local_rejects = read_rejects(clean_dir / "rejects.jsonl")
    on_ray = check_data_dir(clean_dir, engine="ray", workers=2, batch_size=4)
    assert read_rejects(clean_dir / "rejects.jsonl") == local_rejects
    assert [(r["image_id"], r["reason"]) for r in local_rejects] == [
        ("103", "unreadable_image"),
        ("105", "missing_file"),
    ]
    for key in ("kept", "rejected", "rejected_total", "per_split", "csv_rows"):
        assert on_ray[key] == local[key]
    assert on_ray["kept"] == 8
