"""Wall-clock cost of one ``ray.train.report`` call in a 2-worker TorchTrainer, per controller setting.

    uv run python benchmarks/ray_report_cost.py [--reports 12] [--step-s 0.05] [--workers 2]

Each worker runs ``--reports`` iterations of ``--step-s`` of simulated work (sleep) followed by a
report (metrics only, or metrics + a small checkpoint). The worker times each report call itself,
and the driver times ``trainer.fit``. Variants: Ray Train's default controller poll interval
(``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S`` = 2 s) and the one ``mgpt_data.ray_runtime.PROCESS_ENV`` sets.
Each variant sets the variable explicitly in the driver's environment, which ``trainer.fit`` hands
the controller (the private Ray itself starts with mgpt's value, inherited by every actor).

Why it costs seconds (Ray 2.60, ``ray/train/v2/_internal``): a report puts its result in a
per-worker ``queue.Queue(maxsize=1)`` (``worker_group/worker.py``) that only the controller's
poll drains (``controller.py: _poll_workers``), at most once per health-check interval; a second
report before that poll blocks in ``put``. A report is also a barrier across ranks (the checkpoint
dir name is broadcast through the ``SynchronizationActor``). Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from mgpt_data.ray_runtime import PROCESS_ENV, apply_process_env, start_ray

apply_process_env()  # before Ray is imported

INTERVAL_VAR = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"


def _train_fn(config: dict) -> None:
    import ray.train

    rank = ray.train.get_context().get_world_rank()
    costs = []
    for i in range(config["reports"]):
        time.sleep(config["step_s"])
        t0 = time.perf_counter()
        if config["checkpoint"]:
            with tempfile.TemporaryDirectory() as tmp:
                if rank == 0:
                    Path(tmp, "state.txt").write_text(str(i))
                ckpt = ray.train.Checkpoint.from_directory(tmp) if rank == 0 else None
                ray.train.report({"i": i}, checkpoint=ckpt, checkpoint_dir_name=f"ckpt_{i}")
        else:
            ray.train.report({"i": i})
        costs.append(time.perf_counter() - t0)
    if rank == 0:
        Path(config["out"]).write_text(json.dumps(costs))


def run_variant(name: str, interval: str, *, checkpoint: bool, args: argparse.Namespace,
                storage: Path) -> dict:
    import ray.train
    from ray.train.torch import TorchTrainer

    os.environ[INTERVAL_VAR] = interval  # Ray propagates it from the driver to the controller
    out = storage / f"{name}.json"
    trainer = TorchTrainer(
        _train_fn,
        train_loop_config={"reports": args.reports, "step_s": args.step_s, "checkpoint": checkpoint,
                           "out": str(out)},
        scaling_config=ray.train.ScalingConfig(num_workers=args.workers),
        run_config=ray.train.RunConfig(name=name, storage_path=str(storage)),
    )
    t0 = time.perf_counter()
    trainer.fit()
    fit_s = time.perf_counter() - t0
    costs = json.loads(out.read_text())
    return {"variant": name, "interval_s": float(interval), "checkpoint": checkpoint,
            "fit_s": round(fit_s, 2), "report_median_s": round(statistics.median(costs), 3),
            "report_max_s": round(max(costs), 3), "loop_s": round(args.reports * args.step_s, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=12)
    parser.add_argument("--step-s", type=float, default=0.05, help="simulated work between reports")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import ray
    from ray.train.v2._internal.constants import DEFAULT_HEALTH_CHECK_INTERVAL_S

    start_ray(num_cpus=args.workers, log_to_driver=False)
    ours, ray_default = PROCESS_ENV[INTERVAL_VAR], str(DEFAULT_HEALTH_CHECK_INTERVAL_S)
    rows = []
    with tempfile.TemporaryDirectory(prefix="mgpt-report-bench-") as tmp:
        for checkpoint in (False, True):
            for label, interval in (("ray_default", ray_default), ("mgpt", ours)):
                name = f"{label}_{'ckpt' if checkpoint else 'metrics'}"
                rows.append(run_variant(name, interval, checkpoint=checkpoint, args=args, storage=Path(tmp)))
                print(f"{name:<22} interval {rows[-1]['interval_s']:5.2f} s  report median "
                      f"{rows[-1]['report_median_s']:6.3f} s (max {rows[-1]['report_max_s']:.3f})  fit "
                      f"{rows[-1]['fit_s']:6.2f} s for {rows[-1]['loop_s']:.2f} s of work")
    ray.shutdown()
    by = {r["variant"]: r for r in rows}
    summary = {
        "benchmark": "ray_report_cost", "reports": args.reports, "step_s": args.step_s,
        "workers": args.workers,
        "variants": rows,
        "report_cost_ratio_metrics": round(by["ray_default_metrics"]["report_median_s"]
                                           / max(by["mgpt_metrics"]["report_median_s"], 1e-6), 1),
        "fit_speedup_metrics": round(by["ray_default_metrics"]["fit_s"] / by["mgpt_metrics"]["fit_s"], 2),
        "fit_speedup_ckpt": round(by["ray_default_ckpt"]["fit_s"] / by["mgpt_ckpt"]["fit_s"], 2),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
