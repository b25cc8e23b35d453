"""Experiment tracking from the driver (``train.tracker = none | mlflow | wandb | tensorboard``).

The workers' loop is untouched: the driver follows ``metrics.jsonl`` while they train (the file rank 0
appends every iteration) and logs each new record, then logs the evaluation `evaluate_run` wrote.
What is logged, under the same names in every tracker:

* the resolved settings (MLflow params + ``settings.json``, W&B config, a TensorBoard text);
* per iteration, at ``global_step``: ``train/loss``, ``train/lr``, ``train/sec_per_it``,
  ``train/data_sec``, ``train/samples_per_sec`` (all workers together);
* per evaluated model, at the global step it was trained to (baseline: 0): ``eval/<metric>`` and its
  bootstrap interval ``eval/<metric>_ci_low`` / ``_ci_high`` (raw scale, as in ``results.json``);
* the chart ``eval/metrics.png`` and a table ``eval/sample_captions`` (references and each model's
  caption for the first few test images).

``RUN_DIR/tracking.json`` records the tracked run's id, so ``--resume`` continues the same run.
Tracking never stops training: a failed log call is reported once as a warning.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mgpt_train.rundir import EVAL_DIR, METRICS_FILE, read_json, write_json

if TYPE_CHECKING:
    from mgpt_train.evaluate import EvalResult
    from mgpt_train.run_settings import RunSettings
    from mgpt_train.trackers import TrackerBackend

logger = logging.getLogger(__name__)

TRACKING_FILE = "tracking.json"
SAMPLE_CAPTIONS = 8
STEP_KEYS = ("loss", "lr", "sec_per_it", "data_sec")


def open_backend(settings: RunSettings, run_dir: Path, run_id: str | None = None) -> TrackerBackend | None:
    """The adapter for ``settings.train.tracker`` (None for ``none``)."""
    from mgpt_train import trackers

    t = settings.train
    if t.tracker == "mlflow":
        return trackers.MlflowBackend(run_dir, uri=t.tracking_uri, project=t.tracking_project,
                                      run_name=run_dir.name, run_id=run_id)
    if t.tracker == "wandb":
        return trackers.WandbBackend(run_dir, project=t.tracking_project, run_name=run_dir.name,
                                     run_id=run_id)
    if t.tracker == "tensorboard":
        return trackers.TensorBoardBackend(run_dir, log_dir=t.tracking_uri)
    return None


class RunTracker:
    """Logs one run into ``backend`` (None: logs nothing); see the module docstring for what."""

    def __init__(self, backend: TrackerBackend | None, settings: RunSettings) -> None:
        self.backend = backend
        t = settings.train
        self._samples_per_it = t.batch_size * t.grad_accum_steps * t.workers
        self._last_step = 0
        self._lock = threading.Lock()
        self._warned = False

    def _safely(self, what: str, call: Any, *args: Any, **kwargs: Any) -> None:
        if self.backend is None:
            return
        try:
            with self._lock:
                call(*args, **kwargs)
        except Exception as e:  # tracking must never stop a run
            if not self._warned:
                logger.warning("tracking: could not log %s (%s: %s); training goes on", what,
                               type(e).__name__, e)
                self._warned = True

    def log_settings(self, settings: dict[str, Any]) -> None:
        if self.backend is not None:
            self._safely("the settings", self.backend.log_settings, settings)

    def skip_through(self, global_step: int) -> None:
        """Consider records up to ``global_step`` logged already."""
        self._last_step = global_step

    def log_step_records(self, records: list[dict[str, Any]]) -> None:
        """Log ``metrics.jsonl`` records not logged before (a resumed run re-reads its file)."""
        for record in records:
            step = int(record["global_step"])
            if step <= self._last_step:
                continue
            metrics = {f"train/{k}": float(record[k]) for k in STEP_KEYS if record.get(k) is not None}
            if record.get("sec_per_it"):
                metrics["train/samples_per_sec"] = self._samples_per_it / float(record["sec_per_it"])
            if self.backend is not None:
                self._safely("step metrics", self.backend.log_metrics, metrics, step)
            self._last_step = step

    @contextmanager
    def following(self, metrics_path: Path, *, interval: float = 2.0) -> Iterator[None]:
        """While the block runs, log new records of ``metrics_path`` every ``interval`` seconds."""
        if self.backend is None:
            yield
            return
        follower = JsonlFollower(metrics_path)
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(interval):
                self.log_step_records(follower.new_records())

        thread = threading.Thread(target=run, name="mgpt-tracking", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=30)
            self.log_step_records(follower.new_records())

    def log_evaluation(self, evaluation: EvalResult, run_dir: Path) -> None:
        """Eval metrics with CIs at each model's step, the chart, and the sample-captions table."""
        if self.backend is None:
            return
        from mgpt_train.rundir import SUMMARY_FILE

        summary = run_dir / SUMMARY_FILE
        iters = read_json(summary).get("iters_per_epoch") if summary.is_file() else None
        steps: dict[str, int] = {}
        for row in evaluation.rows:
            step = step_of(row, iters)
            if step is None:
                logger.info("tracking: %s is not an epoch checkpoint; its metrics are in results.json only",
                            row["name"])
                continue
            steps[row["name"]] = step
            self._safely("eval metrics", self.backend.log_metrics, eval_metrics(row), step)
        chart = evaluation.paths.get("metrics.png")
        if chart is not None and chart.is_file():
            last_step = max(steps.values(), default=0)
            self._safely("the chart", self.backend.log_image, "eval/metrics", chart, last_step)
        names = [r["name"] for r in evaluation.rows]
        columns, rows = sample_captions(run_dir / EVAL_DIR / "predictions", names)
        if rows:
            self._safely("sample captions", self.backend.log_table, "eval/sample_captions", columns, rows)

    def close(self, *, failed: bool = False) -> None:
        if self.backend is not None:
            self._safely("the end of the run", self.backend.close, failed=failed)


def step_of(row: dict[str, Any], iters_per_epoch: int | None) -> int | None:
    """The global step a report row's model was trained to: 0 for the baseline, (k+1) x iters for epoch_k."""
    if int(row["epoch"]) < 0:
        return 0
    name = str(row["name"])
    if name.startswith("epoch_") and name[6:].isdigit() and iters_per_epoch:
        return (int(name[6:]) + 1) * int(iters_per_epoch)
    return None


def eval_metrics(row: dict[str, Any]) -> dict[str, float]:
    """One report row as ``eval/<metric>`` plus ``eval/<metric>_ci_low`` / ``_ci_high``."""
    out: dict[str, float] = {}
    for metric, value in row.get("scores", {}).items():
        if value is None:
            continue
        out[f"eval/{metric}"] = float(value)
        ci = row.get("ci", {}).get(metric)
        if ci and ci.get("low") is not None and ci.get("high") is not None:
            out[f"eval/{metric}_ci_low"], out[f"eval/{metric}_ci_high"] = float(ci["low"]), float(ci["high"])
    return out


def sample_captions(predictions_dir: Path, names: list[str],
                    n: int = SAMPLE_CAPTIONS) -> tuple[list[str], list[list[str]]]:
    """``(columns, rows)``: image id, first reference, then each model's caption, first ``n`` images."""
    by_model: dict[str, dict[str, dict[str, Any]]] = {}
    for name in names:
        path = predictions_dir / f"{name}.jsonl"
        if path.is_file():
            records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            by_model[name] = {str(r["image_id"]): r for r in records}
    if not by_model:
        return [], []
    first = next(iter(by_model.values()))
    ids = list(first)[:n]
    columns = ["image_id", "reference", *by_model]
    rows = [[i, str(first[i]["references"][0]),
             *(str(m.get(i, {}).get("candidate", "")) for m in by_model.values())] for i in ids]
    return columns, rows


class JsonlFollower:
    """Reads the complete lines appended to a JSON-lines file since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def new_records(self) -> list[dict[str, Any]]:
        try:
            size = self.path.stat().st_size
            if size < self.offset:  # rewritten shorter (a resumed run drops redone iterations)
                self.offset = 0
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        records = []
        for line in data[:end + 1].splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records


def _last_global_step(path: Path) -> int:
    records = JsonlFollower(path).new_records()
    return int(records[-1]["global_step"]) if records else 0


def open_tracker(settings: RunSettings, run_dir: Path, *, resume: bool = False) -> RunTracker:
    """A `RunTracker` for the run in ``run_dir`` (on resume: the tracked run ``tracking.json`` names)."""
    state_path = run_dir / TRACKING_FILE
    previous = read_json(state_path) if resume and state_path.is_file() else {}
    run_id = previous.get("run_id") if previous.get("tracker") == settings.train.tracker else None
    backend = open_backend(settings, run_dir, run_id)
    tracker = RunTracker(backend, settings)
    if backend is not None:
        write_json(state_path, {"tracker": settings.train.tracker, "run_id": backend.run_id,
                                "where": backend.where})
        logger.info("tracking with %s: %s", settings.train.tracker, backend.where)
        if run_id is not None:  # the tracked run goes on: what metrics.jsonl held was logged the first time
            tracker.skip_through(_last_global_step(run_dir / METRICS_FILE))
    return tracker
