"""One checkpoint's predictions → one report row: metrics, bootstrap intervals, CHAIR."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from mgpt_eval.bootstrap import ConfidenceInterval, chair_intervals, metric_intervals
from mgpt_eval.chair import chair_with_ground_truth
from mgpt_eval.chair_vocab import ObjectVocabulary, build_vocabulary
from mgpt_eval.metrics import MetricReport, score_captions
from mgpt_eval.predictions import predictions_to_inputs, validate_record
from mgpt_eval.session import ScoringSession
from mgpt_eval.settings import EvalSettings

logger = logging.getLogger(__name__)


def _clean(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def make_row(
    name: str,
    epoch: int | None,
    report: MetricReport,
    *,
    intervals: dict[str, ConfidenceInterval] | None = None,
    chair_result: dict | None = None,
) -> dict:
    """The row ``write_report`` expects (raw scale). ``epoch`` None or -1 marks the untrained baseline."""
    scores: dict[str, float | None] = {k: _clean(v) for k, v in report.scores.items()}
    chair_meta = None
    if chair_result is not None:
        scores["CHAIRi"], scores["CHAIRs"] = _clean(chair_result["CHAIRi"]), _clean(chair_result["CHAIRs"])
        chair_meta = {
            k: chair_result[k]
            for k in (
                "n_captions",
                "n_mentions",
                "n_hallucinated_mentions",
                "n_hallucinated_captions",
                "vocabulary",
            )
        }
        chair_meta["ground_truth_source"] = chair_result.get("ground_truth_source", "given")
    return {
        "name": name,
        "epoch": -1 if epoch is None else int(epoch),
        "n_images": report.n_images,
        "scores": scores,
        "ci": {
            k: {"low": ci.low, "high": ci.high, "method": ci.method} for k, ci in (intervals or {}).items()
        },
        "unavailable": dict(report.unavailable),
        "tokenizer": report.tokenizer,
        "chair": chair_meta,
        "notes": list(report.notes),
    }


def evaluate_predictions(
    records: Sequence[dict],
    *,
    name: str,
    epoch: int | None,
    settings: EvalSettings | None = None,
    vocabulary: ObjectVocabulary | None = None,
    session: ScoringSession | None = None,
) -> dict:
    """Score prediction records (``{"image_id", "candidate", "references"}``) into a report row.

    Uses ``settings`` for metrics, SPICE jars, bootstrap (resamples, confidence, seed), ``max_images``
    (first N records) and CHAIR (vocabularies, extra objects, optional COCO instances JSON).
    ``session``: a `ScoringSession` shared by the rows of one evaluation (one METEOR process).
    """
    settings = settings or EvalSettings()
    records = [validate_record(r, f"record {i}") for i, r in enumerate(records)]
    if settings.max_images is not None and len(records) > settings.max_images:
        logger.info("evaluating the first %d of %d images (max_images)", settings.max_images, len(records))
        records = records[: settings.max_images]
    references, candidates = predictions_to_inputs(records)
    report = score_captions(references, candidates, metrics=settings.metrics, spice_jars=settings.spice_jars,
                            session=session)
    boot = dict(resamples=settings.bootstrap_resamples, confidence=settings.confidence, seed=settings.seed)
    intervals = metric_intervals(report, **boot)
    chair_result = None
    if settings.chair:
        vocab = vocabulary or build_vocabulary(settings.chair_vocabularies, settings.chair_extra_objects)
        chair_result = chair_with_ground_truth(
            candidates, references=references, instances_json=settings.chair_instances, vocabulary=vocab
        )
        intervals.update(chair_intervals(chair_result, **boot))
    return make_row(name, epoch, report, intervals=intervals, chair_result=chair_result)
