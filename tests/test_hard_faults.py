"""Hard faults on the tiny preset (2 workers, 2 epochs x 2 iterations, epoch_k checkpointed after
global step 2(k+1)): each run finishes, or resumes, with no step lost beyond the last checkpoint and
``metrics.jsonl`` losses ``==`` those of one uninterrupted run (the ``straight`` fixture).

The faults land at a known point, never by racing the run (`mgpt_train.fault_injection`): rank 0
hangs after global step 3 (``train.hang_at_step``) until the test kills a worker (pid from Ray's
state API), a node (``ray.cluster_utils.Cluster``) or the driver; a checkpoint copy SIGKILLs its own
process after its first file (``MGPT_TEST_KILL_IN_CHECKPOINT_WRITE``). Kills wait until Ray has
*recorded* epoch_0 in ``checkpoint_manager_snapshot.json``: a checkpoint reported but not yet recorded
by Ray Train's controller when the fault strikes does not count, and the run goes back to the one
before (seen on this machine: a node removed 0.1 s after the report restarted the run from step 0).
Scenarios that need a Ray of their own (a dashboard for the state API, a multi-node cluster, an
environment variable the workers inherit) run in a subprocess (tests/fault_scenarios.py);
the others use the session's Ray.

All are ``slow``: each trains at least twice (the straight run and the faulty one) and most start a
Ray of their own — minutes each on 2 cores. The cheap checks behind them stay in the default suite:
tests/test_resume_checks.py (damaged checkpoints, --resume-from, partial writes) and
tests/test_output_dir_faults.py (read-only or full output folder, before Ray starts).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from mgpt_train.checkpointing import (
    DamagedCheckpointError,
    check_checkpoint_dir,
    latest_checkpoint_dir,
    read_checkpoint_dir,
)
from mgpt_train.metrics_log import read_metrics
from mgpt_train.run_settings import RunSettings, parse_set_options

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.timeout(2400)]
SETS = ["train.threads_per_worker=1"]  # the same matmul threads in every run: losses compare with ==
HANG = 3


def _settings(root: Path, name: str, **train) -> RunSettings:
    overrides = parse_set_options(SETS)
    overrides["data"] = {"data_dir": str(root / "data")}
    overrides["train"] = {**overrides["train"], "output_dir": str(root / "runs"), "run_name": name, **train}
    return RunSettings.load("tiny", overrides)


@pytest.fixture(scope="module")
def straight(ray_session, tmp_path_factory) -> tuple[Path, Path]:
    """``(root, run_dir)`` of one uninterrupted run; ``root/data`` is the data set every scenario uses."""
    from mgpt_train.fit import fit

    root = tmp_path_factory.mktemp("faults")
    fit(_settings(root, "straight"), root / "runs" / "straight", progress=False)
    return root, root / "runs" / "straight"


def _records(run_dir: Path) -> list[dict]:
    return read_metrics(run_dir / "metrics.jsonl")


def _losses(run_dir: Path) -> list[float]:
    return [r["loss"] for r in _records(run_dir)]


def _assert_same_as_straight(run_dir: Path, straight_dir: Path) -> None:
    assert [r["global_step"] for r in _records(run_dir)] == [1, 2, 3, 4]  # every step once, none lost
    assert _losses(run_dir) == _losses(straight_dir)
    final, _ = read_checkpoint_dir(run_dir / "checkpoints" / "epoch_1")
    reference, _ = read_checkpoint_dir(straight_dir / "checkpoints" / "epoch_1")
    assert all(final[k].equal(reference[k]) for k in reference)


def _recovered_at(run_dir: Path, t_kill: float) -> float:
    """Seconds from the kill to the first step trained after it."""
    return min(r["time"] for r in _records(run_dir) if r["time"] > t_kill) - t_kill


def _scenario(name: str, root: Path) -> dict:
    env = {**os.environ, "MGPT_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "tests/fault_scenarios.py", name, str(root),
                           json.dumps(parse_set_options(SETS))], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=2000)
    assert proc.returncode == 0, f"STDOUT\n{proc.stdout[-3000:]}\nSTDERR\n{proc.stderr[-8000:]}"
    line = next(x for x in reversed(proc.stdout.splitlines()) if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def test_sigkill_of_a_worker_mid_epoch_restarts_from_the_last_checkpoint(straight) -> None:
    root, straight_dir = straight
    out = _scenario("worker-kill", root)
    run_dir = Path(out["run_dir"])
    assert len(out["worker_pids"]) == 2 and out["rank0_pid"] in out["worker_pids"]  # state API == marker
    assert out["killed_pid"] != out["rank0_pid"] and not psutil.pid_exists(out["killed_pid"])
    assert out["steps_at_kill"] == [1, 2, 3]  # killed in step 4; epoch_0 (step 2) is the last checkpoint
    _assert_same_as_straight(run_dir, straight_dir)
    print(f"worker SIGKILL after step 3: resumed from epoch_0, 1 step redone, training again "
          f"{_recovered_at(run_dir, out['t_kill']):.1f} s after the kill; "
          f"{out['t_end'] - out['t_start']:.0f} s in all")


def test_losing_a_node_mid_epoch_restarts_on_the_nodes_left(straight) -> None:
    root, straight_dir = straight
    out = _scenario("node-loss", root)
    run_dir = Path(out["run_dir"])
    assert out["removed_node"] in out["worker_nodes_before"] and out["removed_node"] != out["head_node"]
    assert out["removed_node"] not in out["worker_nodes_after"] and len(out["worker_nodes_after"]) == 2
    assert len(set(out["worker_nodes_after"])) == 2 and out["alive_nodes"] == 2
    assert out["steps_at_kill"] == [1, 2, 3]
    _assert_same_as_straight(run_dir, straight_dir)
    print(f"node removed after step 3: workers restarted on the 2 nodes left, 1 step redone, training "
          f"again {_recovered_at(run_dir, out['t_kill']):.1f} s after the loss")


def test_a_kill_inside_a_checkpoint_write_never_leaves_a_checkpoint_half_written(straight) -> None:
    root, straight_dir = straight
    out = _scenario("checkpoint-write-kill", root)
    run_dir = Path(out["run_dir"])
    assert out["first_run"].startswith("WorkerGroupError"), out["first_run"]
    assert len(out["files_before_kill"]) == 1  # killed after the first file of epoch_1
    [(partial, files)] = out["partial_dirs"].items()  # the copy that never finished is still there ...
    assert partial.startswith(".epoch_1.tmp-") and len(files) == 1
    assert out["latest_after_kill"] == "epoch_0" and out["listed_after_kill"] == ["epoch_0"]  # ... unused
    assert out["steps_after_kill"] == [1, 2, 3, 4]
    assert out["partial_dirs_after_resume"] == [] and out["listed_after_resume"] == ["epoch_0", "epoch_1"]
    _assert_same_as_straight(run_dir, straight_dir)
    print(f"SIGKILL after 1 file of epoch_1: epoch_0 stayed the latest and read back; resume redid "
          f"steps 3-4 (2 steps since the last checkpoint); {out['t_end'] - out['t_start']:.0f} s in all")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "apps/cli", "train", *args, "--no-eval", *[a for s in SETS for a in ("--set", s)]]


def test_sigkill_of_the_driver_then_resume_continues_exactly(straight) -> None:
    root, straight_dir = straight
    run_dir = root / "runs" / "driver-kill"
    env = {**os.environ, "MGPT_LOG_LEVEL": "WARNING"}
    driver = subprocess.Popen(_cli("--preset", "tiny", "--data-dir", str(root / "data"), "--output-dir",
                                   str(root / "runs"), "--run-name", "driver-kill", "--set",
                                   f"train.hang_at_step={HANG}"),
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = run_dir / f".injected_hang_at_step_{HANG}"
    deadline = time.monotonic() + 1200
    while not marker.exists() or (latest_checkpoint_dir(run_dir) or Path()).name != "epoch_0":
        assert driver.poll() is None and time.monotonic() < deadline, "the driver ended before the fault"
        time.sleep(0.5)
    family = psutil.Process(driver.pid).children(recursive=True)  # its Ray: GCS, raylet, workers, ...
    steps_at_kill = [r["global_step"] for r in _records(run_dir)]
    driver.send_signal(signal.SIGKILL)
    t_kill = time.time()
    driver.wait()
    _, alive = psutil.wait_procs(family, timeout=60)
    survivors = sorted({p.name() for p in alive if p.is_running()})
    for p in alive:  # ours: never leave them behind (they die with the driver when Ray cleans up)
        p.kill()
    proc = subprocess.run(_cli("--resume", str(run_dir)), cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1500)
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert steps_at_kill == [1, 2, 3]
    _assert_same_as_straight(run_dir, straight_dir)
    print(f"driver SIGKILL after step 3 ({len(family)} Ray processes; still alive 60 s later: "
          f"{survivors or 'none'}): --resume redid 1 step, took {time.time() - t_kill:.0f} s with CLI start")


def test_a_truncated_checkpoint_is_refused_and_resume_from_falls_back(straight) -> None:
    from mgpt_train.fit import fit

    root, straight_dir = straight
    run_dir = root / "runs" / "truncated"
    shutil.copytree(straight_dir, run_dir)  # a finished run: epoch_0 and epoch_1 recorded
    bad = run_dir / "checkpoints" / "epoch_1" / "trainable.safetensors"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    settings = RunSettings.from_run_dir(run_dir)
    with pytest.raises(DamagedCheckpointError) as refused:
        fit(settings, run_dir, resume=True, progress=False)
    assert "\n" not in str(refused.value) and str(bad) in str(refused.value)
    assert "--resume-from NAME (train.resume_from), recorded: epoch_0" in str(refused.value)
    t0 = time.perf_counter()
    fit(RunSettings.from_run_dir(run_dir, {"train": {"resume_from": "epoch_0"}}), run_dir, resume=True,
        progress=False)
    _assert_same_as_straight(run_dir, straight_dir)
    assert latest_checkpoint_dir(run_dir).name == "epoch_1" and check_checkpoint_dir(run_dir / "checkpoints"
                                                                                     / "epoch_1") is None
    assert RunSettings.from_run_dir(run_dir).train.resume_from is None  # used once, not kept
    print(f"truncated epoch_1/trainable.safetensors: refused ({refused.value}); --resume-from epoch_0 "
          f"retrained epoch 1 (2 steps) in {time.perf_counter() - t0:.0f} s")


def test_a_disk_filling_up_mid_run_stops_it_in_one_line_and_loses_nothing(straight, tmpfs) -> None:
    """A 6 MiB tmpfs output folder (room for the run, checked before training); while rank 0 hangs after
    step 3 the test fills it to the last byte and releases the hang: the epoch_1 write fails."""
    import threading

    from mgpt_train.checkpointing import estimate_checkpoint_bytes
    from mgpt_train.fit import fit
    from mgpt_train.rundir import OutputNotWritableError

    root, straight_dir = straight
    real = sum(f.stat().st_size for f in (straight_dir / "checkpoints" / "epoch_1").rglob("*") if f.is_file())
    n_trainable = json.loads((straight_dir / "summary.json").read_text())["trainable_params"]
    estimate = estimate_checkpoint_bytes(n_trainable, 2)
    assert real <= estimate <= 10 * real, (real, estimate)
    out = tmpfs("full", "6m")
    run_dir, filler = out / "full", out / "filler"
    marker = run_dir / f".injected_hang_at_step_{HANG}"

    def fill_then_release() -> None:  # once Ray has recorded epoch_0 (its record is written there too)
        while not marker.exists() or (latest_checkpoint_dir(run_dir) or Path()).name != "epoch_0":
            time.sleep(0.2)
        with filler.open("wb", buffering=0) as f:  # unbuffered: closing it has nothing left to flush
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        with marker.open("r+") as m:  # rewritten in place: a full disk has no page for a new file
            m.write("release\n")

    helper = threading.Thread(target=fill_then_release, daemon=True)
    helper.start()
    settings = _settings(root, "full", hang_at_step=HANG, max_failures=0)
    with pytest.raises(OutputNotWritableError) as stopped:
        fit(settings, run_dir, progress=False)
    helper.join()
    message = str(stopped.value)
    assert "\n" not in message and "No space left on device" in message, message
    assert message.endswith(f"the last checkpoint, epoch_0, is intact: make room and continue with "
                            f"--resume {run_dir}")
    check_checkpoint_dir(latest_checkpoint_dir(run_dir))  # nothing earlier lost
    assert latest_checkpoint_dir(run_dir).name == "epoch_0"
    steps_when_stopped = [r["global_step"] for r in _records(run_dir)]
    assert steps_when_stopped[:3] == [1, 2, 3]
    filler.unlink()
    fit(settings, run_dir, resume=True, progress=False)
    _assert_same_as_straight(run_dir, straight_dir)
    print(f"disk full before the epoch_1 write ({real} B checkpoints, estimated {estimate} B): {message}; "
          f"metrics kept {steps_when_stopped}; after freeing space --resume finished equal")
