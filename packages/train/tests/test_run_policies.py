"""Cheap checks of run policies (no Ray): where runs go inside a Ray job, the best-checkpoint pointer and
its fallbacks, and progress as log lines where stderr is not a terminal."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from mgpt_train.checkpointing import default_checkpoint, read_best, record_best_checkpoint
from mgpt_train.progress import MetricsProgress
from mgpt_train.rundir import make_run_dir, ray_temporary_root, resolve_output_dir

JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def _ray_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "ray" / "session_1" / "runtime_resources" / "working_dir_files" / "_ray_pkg_abc"
    copy.mkdir(parents=True)
    return copy


def test_default_output_dir_outside_and_inside_a_ray_job(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(JOB_ENV, raising=False)
    assert resolve_output_dir(None) == tmp_path / "runs"
    monkeypatch.setenv(JOB_ENV, "{}")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_output_dir(None) == tmp_path / "home" / "mgpt-runs"
    assert resolve_output_dir(tmp_path / "shared") == tmp_path / "shared"


def test_a_run_in_rays_temporary_working_dir_is_refused(tmp_path, monkeypatch) -> None:
    copy = _ray_copy(tmp_path)
    monkeypatch.chdir(copy)
    monkeypatch.setenv(JOB_ENV, "{}")
    assert ray_temporary_root(copy / "runs") == tmp_path / "ray" / "session_1" / "runtime_resources" / \
        "working_dir_files"
    with pytest.raises(ValueError, match="temporary copy of the job's working dir.*--output-dir") as info:
        make_run_dir("runs", "r")  # a relative --output-dir resolves into the copy
    assert "\n" not in str(info.value)
    assert not (copy / "runs").exists()
    assert ray_temporary_root(tmp_path / "elsewhere") is None


def _row(name: str, epoch: int, cider: float | None) -> dict:
    return {"name": name, "epoch": epoch, "n_images": 4, "scores": {"CIDEr": cider, "Bleu_1": 0.5}}


def _run(tmp_path: Path, *epochs: int) -> Path:
    run_dir = tmp_path / "run"
    for k in epochs:
        (run_dir / "checkpoints" / f"epoch_{k}").mkdir(parents=True)
    (run_dir / "summary.json").write_text(json.dumps({"iters_per_epoch": 3}))
    return run_dir


def test_best_is_the_highest_cider_and_survives_a_worse_partial_eval(tmp_path) -> None:
    run_dir = _run(tmp_path, 0, 1, 2)
    ckpts = {f"epoch_{k}": run_dir / "checkpoints" / f"epoch_{k}" for k in range(3)} | {"baseline": None}
    rows = [_row("baseline", -1, 9.0), _row("epoch_0", 0, 0.2), _row("epoch_1", 1, 0.9),
            _row("epoch_2", 2, 0.7)]
    best = record_best_checkpoint(run_dir, rows, ckpts, split="test")
    assert best["name"] == "epoch_1" and best["value"] == 0.9  # the baseline never counts
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary == {"iters_per_epoch": 3, "best_checkpoint": best}
    # `eval --checkpoints last` later scores only epoch_2: the better epoch_1 stays best
    again = record_best_checkpoint(run_dir, [_row("baseline", -1, 0.0), _row("epoch_2", 2, 0.7)], ckpts,
                                   split="test")
    assert again["name"] == "epoch_1"
    assert default_checkpoint(run_dir) == (run_dir / "checkpoints" / "epoch_1").resolve()


def test_default_checkpoint_falls_back_to_the_last_epoch(tmp_path, caplog) -> None:
    run_dir = _run(tmp_path, 0, 1)
    assert default_checkpoint(run_dir) == run_dir / "checkpoints" / "epoch_1"  # no evaluation yet
    (run_dir / "checkpoints" / "best.json").write_text(json.dumps({"checkpoint": "checkpoints/epoch_7"}))
    with caplog.at_level(logging.WARNING):
        assert read_best(run_dir) is None
    assert "no longer exists" in caplog.text
    assert default_checkpoint(run_dir) == run_dir / "checkpoints" / "epoch_1"
    assert default_checkpoint(tmp_path / "empty") is None
    rows = [_row("epoch_0", 0, None)]  # CIDEr unavailable: no best is claimed
    assert record_best_checkpoint(run_dir, rows, {"epoch_0": run_dir}, split="test") is None


def test_progress_without_a_terminal_is_log_lines(tmp_path, caplog) -> None:
    path = tmp_path / "metrics.jsonl"
    with caplog.at_level(logging.INFO, logger="mgpt_train.progress"):
        with MetricsProgress(path, total=4, tty=False, log_seconds=3600, interval=0.05) as progress:
            for step in (1, 2, 3):
                with path.open("a") as f:
                    f.write(json.dumps({"epoch": 0, "global_step": step, "loss": 1.0 / step, "lr": 1e-3,
                                        "sec_per_it": 0.5}) + "\n")
                progress._update()
    lines = [r.getMessage() for r in caplog.records]
    # the first record at once, nothing more within log_seconds, the final state at the end; no bar drawn
    assert lines == ["train: step 1/4 (25%) epoch 0 loss 1.0000 lr 1.00e-03, 0.50 s/it, eta 0m02s",
                     "train: step 3/4 (75%) epoch 0 loss 0.3333 lr 1.00e-03, 0.50 s/it, eta 0m00s"]
    assert progress._bar is None
