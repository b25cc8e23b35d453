"""Captioning at scale: inputs (files, folders, globs), CSV/JSONL rows, rejects, and the Ray Data path."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mgpt_train.inference.caption import ROW_FIELDS, caption_files, collect_images
from mgpt_train.inference.loading import resolve_source

SAMPLED = {"do_sample": True, "max_new_tokens": 4}


def _images(folder: Path, n: int) -> list[Path]:
    paths = []
    for i in range(n):
        path = folder / ("sub" if i % 2 else "") / f"im{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    return paths


def test_inputs_are_files_folders_and_globs(tmp_path: Path) -> None:
    paths = _images(tmp_path / "a", 4)
    (tmp_path / "a" / "readme.txt").write_text("skipped in folders: not an image suffix")
    found, rejects = collect_images([tmp_path / "a", str(tmp_path / "a" / "sub" / "*.png"), paths[0],
                                     str(tmp_path / "nothing-*.jpg")])
    assert sorted(found) == sorted([*paths, tmp_path / "a" / "broken.jpg"])  # each file once
    assert [(r["image_id"], r["reason"]) for r in rejects] == [(str(tmp_path / "nothing-*.jpg"),
                                                                "missing_file")]


def test_csv_rows_hold_path_caption_checkpoint_and_decoding(tiny_run_dir: Path, tmp_path: Path) -> None:
    paths = _images(tmp_path / "imgs", 5)
    out = tmp_path / "out.csv"
    summary = caption_files(resolve_source(tiny_run_dir), [tmp_path / "imgs"], output=out, device="cpu",
                            batch_size=2, decoding=SAMPLED, progress=False)
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == ROW_FIELDS and len(rows) == 5 == summary.captioned
    assert sorted(r["image"] for r in rows) == sorted(str(p) for p in paths)
    assert all(r["caption"] and r["checkpoint"].endswith("epoch_1") for r in rows)
    assert {(r["do_sample"], r["max_new_tokens"], r["top_p"]) for r in rows} == {("True", "4", "0.9")}
    assert [r["filename"] for r in summary.rejects] == ["broken.jpg"]
    assert json.loads(summary.rejects_path.read_text())["reason"] == "unreadable_image"


def test_cuda_without_a_gpu_is_a_clear_error(tiny_run_dir: Path, tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: --device cuda is valid here")
    with pytest.raises(ValueError, match="no CUDA device"):
        caption_files(resolve_source(tiny_run_dir), _images(tmp_path, 1), device="cuda", progress=False)


@pytest.mark.ray
def test_the_ray_data_path_gives_the_same_rows_and_rejects(ray_session, tiny_run_dir: Path,
                                                          tmp_path: Path) -> None:
    _images(tmp_path / "imgs", 12)
    inputs = [tmp_path / "imgs", tmp_path / "gone.png"]
    source = resolve_source(tiny_run_dir)
    rows: list[dict] = []
    summary = caption_files(source, inputs, device="cpu", batch_size=4, decoding=SAMPLED, engine="ray",
                            actors=1, progress=False, on_row=rows.append)
    local = caption_files(source, inputs, device="cpu", batch_size=4, decoding=SAMPLED, engine="local",
                          progress=False)
    assert summary.engine == "ray" and summary.captioned == 12 == local.captioned
    in_order = [str(p) for p in collect_images(inputs)[0] if p.name != "broken.jpg"]
    assert [r["image"] for r in rows] == in_order and all(r["caption"] for r in rows)
    expected = [("broken.jpg", "unreadable_image"), ("gone.png", "missing_file")]
    assert sorted((r["filename"], r["reason"]) for r in summary.rejects) == expected
    assert sorted((r["filename"], r["reason"]) for r in local.rejects) == expected
