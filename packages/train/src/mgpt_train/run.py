"""`train_run`: the main job as one call — a run directory, `fit`, then `evaluate_run`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mgpt_train.run_settings import RunSettings

if TYPE_CHECKING:
    from mgpt_train.evaluate import EvalResult

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOutcome:
    """What `train_run` did: where, how far, the loss, the last checkpoint and the evaluation."""

    run_dir: Path
    iterations: int
    first_loss: float | None
    last_loss: float | None
    last_checkpoint: Path | None
    evaluation: EvalResult | None

    def summary_line(self) -> str:
        if self.first_loss is None or self.last_loss is None:
            return f"trained 0 iterations into {self.run_dir}"
        return (f"trained {self.iterations} iterations: loss {self.first_loss:.4f} → {self.last_loss:.4f}; "
                f"last checkpoint {self.last_checkpoint}")

    def format(self) -> str:
        """For a terminal: the run folder, `summary_line`, then the evaluation (`EvalResult.format`)."""
        lines = [f"run directory: {self.run_dir}", self.summary_line()]
        return "\n".join(lines + ([self.evaluation.format()] if self.evaluation is not None else []))


def resume_settings(run_dir: Path | str, overrides: Any = None) -> RunSettings:
    """A run's own settings for ``--resume``: a run stopped with ``train.stop_at_step`` continues to its
    end unless ``overrides`` ask for a stop again."""
    from mgpt_train.run_settings import as_overrides, deep_merge

    return RunSettings.from_run_dir(run_dir, deep_merge({"train": {"stop_at_step": None}},
                                                        as_overrides(overrides)))


def train_run(
    settings: RunSettings, *, resume_dir: Path | str | None = None, evaluate: bool = True,
    progress: bool = True,
) -> TrainOutcome:
    """Train ``settings`` into a new run directory (or continue ``resume_dir``), then evaluate it.

    The run directory is ``settings.train.output_dir / (run_name or a timestamp)``
    (`mgpt_train.rundir.resolve_output_dir`: never inside Ray's temporary copy of a job's working dir).
    ``settings.train.tracker`` logs the run from here (`mgpt_train.tracking`).
    """
    from mgpt_train.evaluate import evaluate_run
    from mgpt_train.fit import fit
    from mgpt_train.metrics_log import read_metrics
    from mgpt_train.rundir import METRICS_FILE, check_persistent, make_run_dir, resolve_output_dir
    from mgpt_train.tracking import open_tracker

    t = settings.train
    if resume_dir is not None:
        run_dir = check_persistent(resume_dir)
    else:
        settings = settings.model_copy(update={"train": t.model_copy(
            update={"output_dir": resolve_output_dir(t.output_dir)})})
        run_dir = make_run_dir(settings.train.output_dir, t.run_name)
    logger.info("run directory: %s", run_dir)
    tracker = open_tracker(settings, run_dir, resume=resume_dir is not None)
    failed = True
    try:
        tracker.log_settings(settings.with_absolute_paths().to_json_dict())
        with tracker.following(run_dir / METRICS_FILE):
            result = fit(settings, run_dir, resume=resume_dir is not None, progress=progress)
        records = read_metrics(run_dir / METRICS_FILE)
        checkpoint = Path(result.checkpoint.path) if result.checkpoint is not None else None
        evaluation = evaluate_run(run_dir, settings) if evaluate else None
        if evaluation is not None:
            tracker.log_evaluation(evaluation, run_dir)
        failed = False
    finally:
        tracker.close(failed=failed)
    return TrainOutcome(run_dir, records[-1]["global_step"] if records else 0,
                        records[0]["loss"] if records else None, records[-1]["loss"] if records else None,
                        checkpoint, evaluation)
