"""A read-only or full output folder (a small tmpfs, mounted by the ``tmpfs`` fixture): ``train`` stops
with one clear error line before Ray starts, and whatever the folder held before is left as it was.
A disk too small for the run's checkpoints is refused before training too. (A disk that fills up
*during* training, and the estimate against a real checkpoint: tests/test_hard_faults.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mgpt_train.modeling import build_model
from mgpt_train.output_checks import check_room_for_checkpoints
from mgpt_train.run import train_run
from mgpt_train.run_settings import RunSettings
from mgpt_train.rundir import OutputNotWritableError

ROOT = Path(__file__).resolve().parents[1]


def _tiny(output_dir: Path, data_dir: Path) -> RunSettings:
    return RunSettings.load("tiny", {"data": {"data_dir": str(data_dir)},
                                     "train": {"output_dir": str(output_dir), "run_name": "run"}})


def test_cli_train_into_a_read_only_folder_is_one_error_line_before_ray(tmpfs, tmp_path: Path) -> None:
    read_only = tmpfs("ro", "1m", read_only=True)
    proc = subprocess.run(
        [sys.executable, "apps/cli", "train", "--preset", "tiny", "--data-dir", str(tmp_path / "data"),
         "--output-dir", str(read_only), "--run-name", "run", "--no-eval"],
        cwd=ROOT, env={**os.environ, "MGPT_LOG_LEVEL": "WARNING"}, capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: cannot write to the output folder {read_only / 'run'}: Read-only file system"]
    assert "Traceback" not in proc.stderr and "Started a local Ray" not in proc.stderr


def test_a_full_folder_is_refused_before_training_and_keeps_what_it_held(tmpfs, tmp_path: Path) -> None:
    full = tmpfs("full", "1m")
    earlier = full / "earlier-run.txt"
    earlier.write_bytes(b"x" * 200_000)
    with pytest.raises(OutputNotWritableError, match=r"the output folder .*/full/run has 0\.\d\d MiB free, "
                                                     r"the run's settings and logs need about 4\.00 MiB"):
        train_run(_tiny(full, tmp_path / "data"), evaluate=False)
    assert earlier.read_bytes() == b"x" * 200_000
    assert sorted(p.name for p in (full / "run").iterdir()) == []  # not even settings.json was started


def test_the_checkpoint_room_check_refuses_a_disk_too_small_for_the_run(tiny_run_dir: Path, tmpfs) -> None:
    settings = RunSettings.from_run_dir(tiny_run_dir)
    n_trainable = sum(t.numel() for t in build_model(settings).trainable_state_dict().values())
    small = tmpfs("small", "8m")
    check_room_for_checkpoints(settings, small, n_trainable, n_rows=20)  # tiny: 3 x 0.16 MiB fit
    with pytest.raises(OutputNotWritableError,
                       match=r"has [78]\.\d\d MiB free, 2 checkpoints of ~15\.38 MiB need about 46\.15 MiB"):
        check_room_for_checkpoints(settings, small, 1_000_000, n_rows=20)


def test_a_full_disk_inside_ray_trains_checkpoint_copy_becomes_one_line(tmp_path: Path) -> None:
    """Ray Train uploads a checkpoint with ``shutil.copytree``: a full disk reaches the driver as a
    `shutil.Error` listing ``(src, dst, why)`` strings, not as an OSError with an errno."""
    import shutil

    from mgpt_train.output_checks import output_write_error

    dst = str(tmp_path / "checkpoints" / ".epoch_1.tmp-x" / "train_state.pt")
    copy = shutil.Error([("/tmp/a/settings.json", dst + "x", "ok"),
                         ("/tmp/a/train_state.pt", dst, f"[Errno 28] No space left on device: '{dst}'")])
    wrapped = RuntimeError("worker failed")
    wrapped.__cause__ = copy
    error = output_write_error(wrapped, tmp_path)
    assert str(error) == (f"training stopped: writing {dst} failed: No space left on device; no checkpoint "
                          "was written")
    assert output_write_error(shutil.Error([("a", "b", "[Errno 2] No such file")]), tmp_path) is None
