"""What a resume checks before any worker starts (`mgpt_train.resume_point`), without Ray: a damaged
checkpoint is refused in one line naming its file, ``--resume-from NAME`` rewinds Ray's record so the
workers' restore and the training plan both start at NAME, and half-written checkpoint folders left by
a killed writer are cleaned up. The same paths under real Ray Train runs: tests/test_hard_faults.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mgpt_train.checkpointing import (
    DamagedCheckpointError,
    check_checkpoint_dir,
    latest_checkpoint_dir,
    list_checkpoints,
    remove_partial_writes,
)
from mgpt_train.ingest import latest_position
from mgpt_train.resume_point import check_resumable, prepare_resume, recorded_checkpoints, rewind_to
from mgpt_train.run_settings import RunSettings
from mgpt_train.rundir import SNAPSHOT_FILE
from mgpt_train.train_state import Position

ROOT = Path(__file__).resolve().parents[1]
ITERS = 2  # tiny_run_dir: epoch_k holds global step 2 (k + 1), i.e. 2 iterations an epoch


def write_ray_snapshot(run_dir: Path, names: list[str]) -> Path:
    """Ray Train V2's record of ``names`` (reported in that order), built with Ray's own schema."""
    from ray.train.v2._internal.execution.checkpoint.checkpoint_manager import (
        _CheckpointManagerState,
        _TrainingResultState,
    )

    results = [_TrainingResultState(checkpoint_dir_name=n, metrics={"global_step": 2 * (i + 1)})
               for i, n in enumerate(names)]
    state = _CheckpointManagerState(
        checkpoint_results=results, checkpoint_report_indices=[2 * i + 1 for i in range(len(names))],
        latest_checkpoint_result=results[-1], pending_training_results=[], pending_validation_specs=[],
        current_report_index=2 * len(names), validated_checkpoint_dir_names=[],
        timed_out_validation_checkpoint_dir_names=[], failed_validation_checkpoint_dir_names=[])
    path = run_dir / "checkpoints" / SNAPSHOT_FILE
    path.write_text(state.json())
    return path


@pytest.fixture
def run_dir(tiny_run_dir: Path, tmp_path: Path) -> Path:
    """A copy of the tiny run (epoch_0, epoch_1) with Ray's record of both."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run)
    write_ray_snapshot(run, ["epoch_0", "epoch_1"])
    return run


def _truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


@pytest.mark.parametrize("name", ["trainable.safetensors", "train_state.pt", "settings.json"])
def test_a_truncated_checkpoint_file_is_named(run_dir: Path, name: str) -> None:
    ckpt = run_dir / "checkpoints" / "epoch_1"
    check_checkpoint_dir(ckpt)  # intact: reads back
    _truncate(ckpt / name)
    with pytest.raises(DamagedCheckpointError, match=f"checkpoint file {ckpt / name} cannot be read back"):
        check_checkpoint_dir(ckpt)
    (ckpt / name).unlink()
    with pytest.raises(DamagedCheckpointError, match=f"{ckpt / name} is missing"):
        check_checkpoint_dir(ckpt)


def test_resume_refuses_a_damaged_latest_checkpoint_and_names_the_fallback(run_dir: Path) -> None:
    _truncate(run_dir / "checkpoints" / "epoch_1" / "trainable.safetensors")
    with pytest.raises(DamagedCheckpointError) as caught:
        check_resumable(run_dir)
    message = str(caught.value)
    assert "\n" not in message
    assert str(run_dir / "checkpoints" / "epoch_1" / "trainable.safetensors") in message
    assert message.endswith("--resume-from NAME (train.resume_from), recorded: epoch_0")


def test_rewind_makes_the_workers_restore_and_the_plan_start_agree(run_dir: Path) -> None:
    from ray.train.v2._internal.execution.checkpoint.checkpoint_manager import _CheckpointManagerState

    _truncate(run_dir / "checkpoints" / "epoch_1" / "train_state.pt")
    assert recorded_checkpoints(run_dir) == ["epoch_0", "epoch_1"]
    assert rewind_to(run_dir, "epoch_0") == ["epoch_1"]
    snapshot = run_dir / "checkpoints" / SNAPSHOT_FILE
    state = _CheckpointManagerState.parse_obj(json.loads(snapshot.read_text()))  # Ray reads it back
    assert state.latest_checkpoint_result.checkpoint_dir_name == "epoch_0"  # what workers restore
    assert [r.checkpoint_dir_name for r in state.checkpoint_results] == ["epoch_0"]
    assert latest_checkpoint_dir(run_dir) == run_dir / "checkpoints" / "epoch_0"
    assert latest_position(run_dir, ITERS) == Position(1, 0, 2)  # where the plan starts
    assert list_checkpoints(run_dir) == [run_dir / "checkpoints" / "epoch_0"]  # the damaged one is aside
    assert (run_dir / "checkpoints" / ".epoch_1.superseded-epoch_0" / "train_state.pt").is_file()
    assert (run_dir / "checkpoints" / f"{SNAPSHOT_FILE}.before-epoch_0").is_file()
    assert check_resumable(run_dir) == run_dir / "checkpoints" / "epoch_0"


def test_resume_from_must_name_a_recorded_readable_checkpoint(run_dir: Path) -> None:
    before = (run_dir / "checkpoints" / SNAPSHOT_FILE).read_text()
    with pytest.raises(ValueError, match=r"'epoch_7' is not a checkpoint recorded .* \(recorded: epoch_0, "
                                         r"epoch_1\)"):
        rewind_to(run_dir, "epoch_7")
    _truncate(run_dir / "checkpoints" / "epoch_0" / "trainable.safetensors")
    with pytest.raises(DamagedCheckpointError, match="epoch_0/trainable.safetensors cannot be read back"):
        rewind_to(run_dir, "epoch_0")
    assert (run_dir / "checkpoints" / SNAPSHOT_FILE).read_text() == before  # refused: record untouched


def test_prepare_resume_cleans_partial_writes_and_forgets_resume_from(run_dir: Path) -> None:
    ckpts = run_dir / "checkpoints"
    partial = ckpts / ".epoch_1.tmp-abc123"
    partial.mkdir()
    (partial / "trainable.safetensors").write_bytes(b"half")
    swapped = ckpts / ".epoch_0.old-def456"  # killed between the two moves of a redone epoch_0
    swapped.mkdir()
    os.replace(ckpts / "epoch_0", swapped / "epoch_0")
    settings = RunSettings.from_run_dir(run_dir, {"train": {"resume_from": "epoch_0"}})
    resumed = prepare_resume(run_dir, settings)
    assert resumed.train.resume_from is None
    assert not partial.exists() and not swapped.exists()
    assert latest_checkpoint_dir(run_dir) == ckpts / "epoch_0"
    check_checkpoint_dir(ckpts / "epoch_0")  # moved back whole: reads back
    assert remove_partial_writes(run_dir) == []


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MGPT_LOG_LEVEL": "WARNING"}
    return subprocess.run([sys.executable, "apps/cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


def test_cli_resume_of_a_damaged_checkpoint_is_one_error_line_before_ray_starts(run_dir: Path) -> None:
    bad = run_dir / "checkpoints" / "epoch_1" / "trainable.safetensors"
    _truncate(bad)
    proc = _cli("train", "--resume", str(run_dir), "--no-eval")
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and str(bad) in errors[0] and "--resume-from NAME" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr and "Started a local Ray" not in proc.stderr
    proc = _cli("train", "--preset", "tiny", "--resume-from", "epoch_0", "--output-dir", str(run_dir.parent),
                "--no-eval")
    assert proc.returncode == 2 and "error: train.resume_from (--resume-from) needs resume" in proc.stderr


def test_rank_0_waits_until_ray_has_recorded_the_checkpoint_it_reported(tmp_path: Path) -> None:
    """`save_and_report` returns on rank 0 only once Ray's record names the new checkpoint (the
    controller writes it on its next poll), so a kill right after cannot make Ray forget it."""
    import threading

    from mgpt_train.checkpointing import wait_until_recorded

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    write_ray_snapshot(run, ["epoch_0"])
    assert not wait_until_recorded(run, "epoch_1", timeout_s=0.2)  # not recorded yet: gives up, says so
    (run / "checkpoints" / SNAPSHOT_FILE).write_text("{")  # a record being rewritten is read again
    later = threading.Timer(0.3, write_ray_snapshot, (run, ["epoch_0", "epoch_1"]))
    later.start()
    try:
        assert wait_until_recorded(run, "epoch_1", timeout_s=10.0)
    finally:
        later.join()
    assert latest_checkpoint_dir(run).name == "epoch_1"
