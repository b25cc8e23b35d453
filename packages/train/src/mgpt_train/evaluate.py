"""`evaluate_run`: the untrained baseline and every chosen checkpoint of a run, on the same images.

One pass captions the split with every entry and the real-photo gallery with the baseline and the
last checkpoint (`eval_captioning.caption_with_plans`: one model, only the trainable parameters
swapped, each image decoded and encoded once; in-process or on a Ray actor pool, `choose_engine`).
Each entry's records go to ``eval/predictions/<name>.jsonl`` and `mgpt_eval` scores them into one
row, all rows in one `ScoringSession` (one METEOR process, references tokenised once);
``eval/results.{json,csv,md}`` and ``eval/metrics.png`` hold the table, ``eval/gallery.{md,json}``
the gallery, ``checkpoints/best.json`` the checkpoint with the highest CIDEr (`record_best_checkpoint`).
``EvalResult.timings`` (also ``meta.timings_s`` in results.json) says where the time went.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
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
    """What `evaluate_run` wrote: one report row per model (mgpt_eval's row dicts), the file paths,
    and the seconds each phase took (``timings``)."""

    rows: list[dict[str, Any]]
    paths: dict[str, Path]
    best: dict[str, Any] | None = None  # the best-checkpoint record (`record_best_checkpoint`)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def results_md(self) -> Path:
        return self.paths["results.md"]

    def format(self) -> str:
        """For a terminal: the results table, each file written, and the best checkpoint."""
        lines = [self.results_md.read_text().rstrip()]
        lines += [f"  {name}: {path}" for name, path in sorted(self.paths.items())]
        if self.best is not None:
            lines.append(f"best checkpoint: {self.best['checkpoint']} "
                         f"({self.best['metric']} {self.best['value']:.4f})")
        return "\n".join(lines)


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
    from mgpt_eval import ScoringSession, evaluate_predictions, write_predictions, write_report
    from mgpt_train.checkpointing import record_best_checkpoint
    from mgpt_train.eval_captioning import CaptionPlan, caption_with_plans, choose_engine, prediction_records
    from mgpt_train.gallery_report import GALLERY_SPLIT, gallery_rows, prepare_gallery, write_gallery_report
    from mgpt_train.predict import eval_rows

    started = time.perf_counter()
    run_dir = Path(run_dir)
    settings = (settings or RunSettings.from_run_dir(run_dir)).with_absolute_paths()
    split = split or settings.eval.split
    entries = select_entries(run_dir, checkpoints or settings.eval.checkpoints,
                             baseline=settings.train.init_from)
    eval_dir = run_dir / "eval"
    timings: dict[str, float] = {}
    with ScoringSession(settings.eval.metrics) as session:  # METEOR loads while captions are generated
        clock = time.perf_counter()
        rows = eval_rows(settings, split, settings.eval.max_images)
        photos = prepare_gallery(eval_dir / "gallery", _preprocess_spec(settings)) if gallery else []
        timings["prepare_s"] = time.perf_counter() - clock
        with_gallery = {entries[0].name, entries[-1].name} if photos else set()
        plans = [CaptionPlan(e.name, e.checkpoint, None if e.name in with_gallery else (split,))
                 for e in entries]
        engine, why = choose_engine(settings, len(rows) * len(entries) + len(photos) * len(with_gallery))
        logger.info("eval: %d %s images (+%d gallery photos) x %d models, engine %s (%s)", len(rows), split,
                    len(photos), len(entries), engine, why)
        clock = time.perf_counter()
        run = caption_with_plans(settings, rows + gallery_rows(photos), plans, engine=engine,
                                 batch_size=settings.eval.batch_size)
        timings["caption_s"] = time.perf_counter() - clock
        timings.update({f"caption.{k}": v for k, v in run.timings.items()})
        clock = time.perf_counter()
        report_rows = []
        for entry in entries:
            records = prediction_records(rows, run.captions[entry.name])
            write_predictions(eval_dir / "predictions" / f"{entry.name}.jsonl", records)
            report_rows.append(evaluate_predictions(records, name=entry.name, epoch=entry.epoch,
                                                    settings=settings.eval, session=session))
        gallery_paths = {}
        if photos:
            captions = {name: {i: c for (s, i), c in run.captions[name].items() if s == GALLERY_SPLIT}
                        for name in dict.fromkeys(e.name for e in entries if e.name in with_gallery)}
            gallery_paths = write_gallery_report(eval_dir, photos, captions, metrics=settings.eval.metrics,
                                                 session=session)
        timings["score_s"] = time.perf_counter() - clock
    timings["total_s"] = time.perf_counter() - started
    meta = {
        "run_dir": str(run_dir),
        "split": split,
        "data_dir": str(settings.data.data_dir),
        "n_images": report_rows[0]["n_images"] if report_rows else 0,
        "decoding": settings.bridge.generation.model_dump(mode="json"),
        "template": settings.bridge.template.model_dump(mode="json"),
        "checkpoints": {e.name: str(e.checkpoint) if e.checkpoint else None for e in entries},
        "baseline": "untrained" if entries[0].checkpoint is None else f"init_from {entries[0].checkpoint}",
        "engine": engine,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
    paths = dict(write_report(eval_dir, report_rows, meta=meta, scale_100=settings.eval.scale_100))
    best = record_best_checkpoint(run_dir, report_rows, {e.name: e.checkpoint for e in entries}, split=split)
    logger.info("eval: %.1f s (%s)", timings["total_s"],
                ", ".join(f"{k} {v:.1f}" for k, v in timings.items() if not k.startswith("caption.")))
    return EvalResult(report_rows, {k: Path(v) for k, v in (paths | gallery_paths).items()}, best, timings)


def _preprocess_spec(settings: RunSettings) -> dict[str, Any]:
    """The encoder's eval preprocessing (from a meta build: no weights are read)."""
    from mgpt_vision import build_encoder

    return build_encoder(settings.vision, meta=True).preprocess.as_dict()
