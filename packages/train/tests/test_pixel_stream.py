"""Training from pixels through the Ray Data pipeline: images are decoded by Ray Data (never on the
training thread), an image that breaks mid-stream is rejected with its reason while the run goes on, and
a stop + resume reproduces the uninterrupted run's losses exactly on this path too."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from mgpt_data.flickr30k import read_local
from mgpt_train.fit import fit
from mgpt_train.metrics_log import read_metrics
from mgpt_train.rundir import read_json

pytestmark = [pytest.mark.ray, pytest.mark.timeout(900)]

PIXELS = {"cache_features": False, "max_epoch": 1, "iters_per_epoch": 4}


@pytest.fixture
def broken_data(tiny_data_dir: Path, tmp_path: Path) -> tuple[Path, str]:
    """A copy of the tiny set whose first train image (in CSV order) is no longer a JPEG."""
    data = shutil.copytree(tiny_data_dir, tmp_path / "data")
    row = read_local(data, split="train").rows[0]
    Path(row["path"]).write_bytes(b"this is not a jpeg any more")
    return data, str(row["image_id"])


def test_a_bad_image_mid_stream_is_rejected_and_the_run_goes_on(ray_session, make_settings, broken_data,
                                                                 tmp_path: Path) -> None:
    data, bad_id = broken_data
    run_dir = tmp_path / "pixels"
    fit(make_settings(tmp_path, train=PIXELS, data={"data_dir": str(data)}), run_dir, progress=False)
    records = read_metrics(run_dir / "metrics.jsonl")
    assert [r["global_step"] for r in records] == [1, 2, 3, 4]
    assert all(math.isfinite(r["loss"]) for r in records)
    rejects = [json.loads(line) for line in (run_dir / "rejects.jsonl").read_text().splitlines()]
    assert [(r["image_id"], r["reason"]) for r in rejects] == [(bad_id, "unreadable_image")]
    summary = read_json(run_dir / "summary.json")
    assert summary["rejected_while_training"] == 1 and summary["features_cache"] is None


@pytest.mark.slow
def test_pixel_path_stop_then_resume_equals_straight(ray_session, make_settings, broken_data,
                                                     tmp_path: Path) -> None:
    data, _ = broken_data
    settings = make_settings(tmp_path, train=PIXELS, data={"data_dir": str(data)})
    fit(settings, tmp_path / "straight", progress=False)
    stopped = make_settings(tmp_path, train={**PIXELS, "stop_at_step": 2}, data={"data_dir": str(data)})
    fit(stopped, tmp_path / "resumed", progress=False)
    fit(settings, tmp_path / "resumed", resume=True, progress=False)
    losses = [[r["loss"] for r in read_metrics(tmp_path / name / "metrics.jsonl")]
              for name in ("straight", "resumed")]
    assert losses[0] == losses[1] and len(losses[0]) == 4
