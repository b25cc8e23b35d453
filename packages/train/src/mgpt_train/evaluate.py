"""`evaluate_run`: the untrained baseline and every chosen checkpoint of a run, on the same images.

For each entry, `mgpt_train.predict` generates captions (batched, decoding settings from the run),
the records go to ``eval/predictions/<name>.jsonl``, and `mgpt_eval` scores them into one row;
``eval/results.{json,csv,md}`` and ``eval/metrics.png`` hold the table, and
``checkpoints/best.json`` names the checkpoint with the highest CIDEr (`record_best_checkpoint`). The
real-photo gallery of `mgpt_eval` is captioned by the baseline and the last checkpoint into
``eval/gallery.{md,json}``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mgpt_train.run_settings import RunSettings

logger = logging.getLogger(__name__)

BASELINE = "baseline"


@dataclass(frozen=True)
class EvalEntry:
    """One model to score: ``checkpoint`` None is the untrained bridge (epoch -1)."""

    name: str
    epoch: int
    checkpoint: Path | None


def run_checkpoints(run_dir: Path) -> dict[str, EvalEntry]:
    """``epoch_k`` checkpoint folders of a run, by name, in epoch order."""
    from mgpt_train.checkpointing import list_checkpoints

    return {p.name: EvalEntry(p.name, int(p.name.split("_", 1)[1]), p) for p in list_checkpoints(run_dir)}


def select_entries(run_dir: Path, spec: list[str], *, baseline: Path | None = None) -> list[EvalEntry]:
    """Baseline first, then the checkpoints ``spec`` names: ``all``, ``last``, names, or paths.

    The baseline is where training started: the untrained bridge, or ``baseline`` (the run's
    ``train.init_from`` checkpoint, e.g. stage 1's bridge for a stage-2 run)."""
    from mgpt_eval.settings import select_checkpoints

    found = run_checkpoints(run_dir)
    entries = [EvalEntry(BASELINE, -1, None if baseline is None else Path(baseline))]
    for item in spec:
        path = Path(item).expanduser()
        if path.exists():
            epoch = int(path.name.split("_", 1)[1]) if path.name.split("_", 1)[-1].isdigit() else 0
            entries.append(EvalEntry(path.name, epoch, path.resolve()))
            continue
        for name in select_checkpoints([item], list(found)):
            if name != BASELINE:
                entries.append(found[name])
    unique: dict[str, EvalEntry] = {}
    for entry in entries:
        unique.setdefault(entry.name, entry)
    return list(unique.values())


@dataclass(frozen=True)
class EvalResult:
    """What `evaluate_run` wrote: one report row per model (mgpt_eval's row dicts) and the file paths."""

    rows: list[dict[str, Any]]
    paths: dict[str, Path]
    best: dict[str, Any] | None = None  # the best-checkpoint record (`record_best_checkpoint`)

    @property
    def results_md(self) -> Path:
        return self.paths["results.md"]


def evaluate_run(
    run_dir: Path | str,
    settings: RunSettings | None = None,
    *,
    checkpoints: list[str] | None = None,
    split: str | None = None,
    gallery: bool = True,
) -> EvalResult:
    """Score baseline + checkpoints of ``run_dir`` on ``split`` and write ``run_dir/eval``.

    ``settings`` default to the run's own (``RunSettings.from_run_dir``); ``checkpoints`` to
    ``settings.eval.checkpoints`` (``["all"]``: every epoch).
    """
    from mgpt_eval import evaluate_predictions, write_predictions, write_report
    from mgpt_train.checkpointing import record_best_checkpoint
    from mgpt_train.predict import predict

    run_dir = Path(run_dir)
    settings = settings or RunSettings.from_run_dir(run_dir)
    split = split or settings.eval.split
    entries = select_entries(run_dir, checkpoints or settings.eval.checkpoints,
                             baseline=settings.train.init_from)
    eval_dir = run_dir / "eval"
    rows = []
    for entry in entries:
        logger.info("eval: captioning the %s split with %s", split, entry.name)
        records = predict(settings, entry.checkpoint, split, max_images=settings.eval.max_images)
        write_predictions(eval_dir / "predictions" / f"{entry.name}.jsonl", records)
        rows.append(evaluate_predictions(records, name=entry.name, epoch=entry.epoch, settings=settings.eval))
    meta = {
        "run_dir": str(run_dir),
        "split": split,
        "data_dir": str(settings.data.data_dir),
        "n_images": rows[0]["n_images"] if rows else 0,
        "decoding": settings.bridge.generation.model_dump(mode="json"),
        "template": settings.bridge.template.model_dump(mode="json"),
        "checkpoints": {e.name: str(e.checkpoint) if e.checkpoint else None for e in entries},
        "baseline": "untrained" if entries[0].checkpoint is None else f"init_from {entries[0].checkpoint}",
    }
    paths = write_report(eval_dir, rows, meta=meta, scale_100=settings.eval.scale_100)
    best = record_best_checkpoint(run_dir, rows, {e.name: e.checkpoint for e in entries}, split=split)
    if gallery:
        from mgpt_train.gallery_report import write_gallery_report

        with_gallery = [entries[0]] + ([entries[-1]] if len(entries) > 1 else [])
        paths = dict(paths) | write_gallery_report(eval_dir, settings, with_gallery)
    return EvalResult(rows, {k: Path(v) for k, v in paths.items()}, best)
