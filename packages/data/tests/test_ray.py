"""The Ray Data path gives the same rows, pixels, order and rejects as the local path."""

from pathlib import Path

import numpy as np
import pytest

from mgpt_data import DataSettings, add_pixels, check_augmentation
from mgpt_data.batches import batch_to_rows, rows_to_batch
from mgpt_data.check import check_data_dir
from mgpt_data.flickr30k import read_flickr30k, read_local
from mgpt_data.preprocess import ImagePreprocessor
from mgpt_data.rejects import drain_rejects, read_rejects, start_rejects_sink

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
def test_pixel_stage_equals_the_local_preprocessor_with_placeholders(ray_session, clean_dir: Path, spec,
                                                                      compute):
    import ray.data

    rows = read_local(clean_dir, split="train").rows
    broken = rows[5]
    Path(broken["path"]).write_bytes(b"not a jpeg")
    plan = [{**r, "epoch": i % 2} for i, r in enumerate(rows)]
    settings = DataSettings(data_dir=clean_dir, augment=True, seed=3, preprocess_batch_size=3,
                            num_preprocess_workers=2, preprocess_num_cpus=0.5, preprocess_compute=compute)
    sink = start_rejects_sink()
    ds = add_pixels(ray.data.from_items(plan, override_num_blocks=4), spec, settings, augment=True,
                    rejects_sink=sink, placeholders=True)
    got = [r for b in ds.iter_batches(batch_size=4, batch_format="numpy") for r in batch_to_rows(b)]
    local = ImagePreprocessor(spec, augment=True, seed=3, placeholders=True)
    want = batch_to_rows(local(rows_to_batch(plan)))
    assert [(r["image_id"], r["caption"], r["valid"]) for r in got] == [
        (r["image_id"], r["caption"], r["valid"]) for r in want]  # same rows, same order, one placeholder
    assert [r["valid"] for r in got].count(False) == sum(r["image_id"] == broken["image_id"] for r in rows)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a["pixels"], b["pixels"])
    sunk = drain_rejects(sink)
    assert {(r["image_id"], r["reason"]) for r in sunk} == {(broken["image_id"], "unreadable_image")}


def test_hflip_is_refused_on_synthetic_scenes(tmp_path: Path):
    from mgpt_data import write_synthetic_scenes

    d = write_synthetic_scenes(tmp_path / "syn", 4, seed=0, image_size=48, progress=False)
    with pytest.raises(ValueError, match="hflip=True on the synthetic scene set"):
        check_augmentation(DataSettings(data_dir=d, augment=True, hflip=True))
    check_augmentation(DataSettings(data_dir=d, augment=True))  # crops alone are fine


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
