"""Hard-fault scenarios for tests/test_hard_faults.py, each run in its own process with its own Ray:

    python tests/fault_scenarios.py SCENARIO ROOT OVERRIDES_JSON

``ROOT/data`` holds the data set, the run goes to ``ROOT/runs/SCENARIO``; the last stdout line is
``RESULT {json}``. Every scenario trains with ``train.hang_at_step`` (or a kill inside a checkpoint
write) so the fault lands at a known step, never by racing the run (`mgpt_train.fault_injection`).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from mgpt_data.ray_runtime import apply_process_env

apply_process_env()

HANG_STEP = 3  # tiny: 2 epochs x 2 iterations; epoch_0 is checkpointed after step 2, so step 3 is redone


def _settings(root: Path, overrides: dict[str, Any], **train: Any):
    from mgpt_train.run_settings import RunSettings, deep_merge

    layer = {"data": {"data_dir": str(root / "data")}, "train": {"output_dir": str(root / "runs"), **train}}
    return RunSettings.load("tiny", deep_merge(overrides, layer))


def _wait_for(path: Path, timeout: float = 1200) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.2)


def _wait_for_record(run: Path, name: str, timeout: float = 600) -> None:
    """Until Ray has *recorded* checkpoint ``name`` (a reported one counts only then)."""
    from mgpt_train.checkpointing import latest_checkpoint_dir

    deadline = time.monotonic() + timeout
    while (latest_checkpoint_dir(run) or Path()).name != name:
        if time.monotonic() > deadline:
            raise TimeoutError(f"Ray never recorded {name} for {run}")
        time.sleep(0.2)


def _steps(run: Path) -> list[int]:
    from mgpt_train.metrics_log import read_metrics

    return [r["global_step"] for r in read_metrics(run / "metrics.jsonl")]


def _in_thread(fn) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out.update(fn())
        except BaseException:  # report it and end: the main thread's fit() would wait for ever
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(3)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def worker_kill(root: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """SIGKILL one Ray Train worker (its pid from Ray's state API) mid-epoch; max_failures=1 restarts."""
    from mgpt_data.ray_runtime import start_ray
    from mgpt_train.fit import fit, local_cpus

    settings = _settings(root, overrides, hang_at_step=HANG_STEP, max_failures=1)
    run = root / "runs" / "worker-kill"
    # the state API needs the dashboard; its URL is passed on, never auto-detected (that could find
    # another Ray on this machine)
    dashboard = start_ray(num_cpus=local_cpus(settings), include_dashboard=True, log_to_driver=False)

    def kill() -> dict[str, Any]:
        from ray.util.state import list_actors

        marker = run / f".injected_hang_at_step_{HANG_STEP}"
        _wait_for(marker)
        _wait_for_record(run, "epoch_0")
        hanging = int(marker.read_text())  # rank 0's pid, hanging after step 3
        actors = list_actors(address=dashboard, detail=True,
                             filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")])
        pids = sorted(a.pid for a in actors)
        victim = next(p for p in pids if p != hanging)  # the other rank: inside step 4
        steps_before = _steps(run)
        os.kill(victim, signal.SIGKILL)
        return {"worker_pids": pids, "rank0_pid": hanging, "killed_pid": victim, "t_kill": time.time(),
                "steps_at_kill": steps_before}

    thread, out = _in_thread(kill)
    fit(settings, run, progress=False)
    thread.join()
    return out


def node_loss(root: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """Three 1-CPU nodes, two 0.75-CPU workers (so one per node): remove a worker's (non-head) node
    mid-epoch; the two nodes left still hold both workers, so max_failures=1 restarts the group there."""
    import ray
    from ray.cluster_utils import Cluster

    from mgpt_train.fit import fit
    from mgpt_train.rundir import read_json

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1",
                                                           "include_dashboard": False})
    nodes = [cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1") for _ in range(2)]
    run = root / "runs" / "node-loss"
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        settings = _settings(root, overrides, hang_at_step=HANG_STEP, max_failures=1, workers=2,
                             cpus_per_worker=0.75, address=cluster.address)

        def remove() -> dict[str, Any]:
            _wait_for(run / f".injected_hang_at_step_{HANG_STEP}")
            _wait_for_record(run, "epoch_0")
            before = read_json(run / "summary.json")["worker_nodes"]
            victim = next(n for n in nodes if n.node_id in before)
            steps_before = _steps(run)
            cluster.remove_node(victim, allow_graceful=False)  # SIGKILL of the node's raylet and workers
            return {"worker_nodes_before": before, "removed_node": victim.node_id, "t_kill": time.time(),
                    "steps_at_kill": steps_before,
                    "head_node": cluster.head_node.node_id}

        thread, out = _in_thread(remove)
        fit(settings, run, progress=False)
        thread.join()
        out["worker_nodes_after"] = read_json(run / "summary.json")["worker_nodes"]
        out["alive_nodes"] = sum(n["Alive"] for n in ray.nodes())
        return out
    finally:
        ray.shutdown()
        cluster.shutdown()


def checkpoint_write_kill(root: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """SIGKILL the worker copying epoch_1 into the run dir after its first file (max_failures=0, so the
    run stops there); inspect what is on disk, then resume."""
    import ray.train

    from mgpt_data.ray_runtime import start_ray
    from mgpt_train.checkpointing import check_checkpoint_dir, latest_checkpoint_dir, list_checkpoints
    from mgpt_train.fault_injection import KILL_IN_CHECKPOINT_WRITE_ENV
    from mgpt_train.fit import fit, local_cpus

    os.environ[KILL_IN_CHECKPOINT_WRITE_ENV] = "epoch_1:1"  # before Ray starts: its workers inherit it
    settings = _settings(root, overrides, max_failures=0)
    run = root / "runs" / "checkpoint-write-kill"
    start_ray(num_cpus=local_cpus(settings), log_to_driver=False)
    out: dict[str, Any] = {}
    try:
        fit(settings, run, progress=False)
        out["first_run"] = "finished (the kill did not happen)"
    except ray.train.TrainingFailedError as e:
        out["first_run"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
    ckpts = run / "checkpoints"
    out["t_kill"] = (ckpts / ".injected_kill_writing_epoch_1").stat().st_mtime
    out["files_before_kill"] = (ckpts / ".injected_kill_writing_epoch_1").read_text().split()
    out["partial_dirs"] = {p.name: sorted(f.name for f in p.iterdir()) for p in ckpts.glob(".epoch_1.tmp-*")}
    out["latest_after_kill"] = latest_checkpoint_dir(run).name
    out["listed_after_kill"] = [p.name for p in list_checkpoints(run)]
    check_checkpoint_dir(latest_checkpoint_dir(run))  # the previous checkpoint reads back
    out["steps_after_kill"] = _steps(run)
    fit(settings, run, resume=True, progress=False)
    out["partial_dirs_after_resume"] = [p.name for p in ckpts.glob(".*.tmp-*")]
    out["listed_after_resume"] = [p.name for p in list_checkpoints(run)]
    return out


SCENARIOS = {"worker-kill": worker_kill, "node-loss": node_loss,
             "checkpoint-write-kill": checkpoint_write_kill}


def main() -> None:
    scenario, root, overrides = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
    t0 = time.time()
    out = SCENARIOS[scenario](root, overrides)
    out.update({"t_start": t0, "t_end": time.time(), "run_dir": str(root / "runs" / scenario)})
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
