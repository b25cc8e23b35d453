"""Caption metrics over pycocoevalcap's own scorers (never ``COCOEvalCap.evaluate``, which always
constructs SPICE and so downloads CoreNLP or crashes offline).

Pipeline of ``score_captions``: PTB tokenisation (Java) once for all references and once for all
candidates → BLEU-1..4 → METEOR (one Java process, closed after) → ROUGE-L → CIDEr → SPICE (opt-in).
With a `mgpt_eval.session.ScoringSession`, the METEOR process and the tokenised references are the
session's, shared by every call inside it (same scores, one Java start for the whole evaluation).

CIDEr is pycocoevalcap's ``Cider`` (the CIDEr-D variant of the COCO server: clipped n-gram counts,
Gaussian length penalty σ=6, ×10). It is computed ONCE over the whole evaluated set and must never
be averaged over chunks: its IDF weights are document frequencies over the references of *the set
being scored*, so the same caption scores differently inside different sets, and the mean of chunk
CIDErs is not the CIDEr of the union. Likewise corpus BLEU is a ratio of sums (not a mean of
sentence BLEUs) and corpus METEOR is aggregated by the jar from per-segment statistics.

All scores are raw scale (0–1; CIDEr 0–10). A metric that cannot run (no Java, no SPICE jars) is
absent from ``scores`` and named in ``unavailable`` with the reason — never reported as 0.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mgpt_eval.bleu_stats import bleu_image_stats
from mgpt_eval.meteor_runner import score_meteor
from mgpt_eval.names import BLEU_NAMES, DEFAULT_METRICS, normalise_metric_names
from mgpt_eval.spice_runner import score_spice, spice_unavailable_reason
from mgpt_eval.tokenize import java_available, tokenize

if TYPE_CHECKING:
    from mgpt_eval.session import ScoringSession

logger = logging.getLogger(__name__)


@dataclass
class MetricReport:
    """Result of ``score_captions``: corpus and per-image scores (raw scale), aligned with ``image_ids``."""

    image_ids: list[str]
    scores: dict[str, float]
    per_image: dict[str, np.ndarray]
    unavailable: dict[str, str]
    tokenizer: str  # "ptb" (standard) or "simple" (Java-free fallback, see mgpt_eval.tokenize)
    bleu_stats: np.ndarray | None = None  # [images, 10] sufficient statistics (see bleu_stats)
    notes: list[str] = field(default_factory=list)

    @property
    def n_images(self) -> int:
        return len(self.image_ids)

    def as_dict(self, *, per_image: bool = False) -> dict:
        """JSON-able view (NaN → None); per-image scores only when asked."""
        out: dict = {
            "n_images": self.n_images,
            "scores": {k: _json_float(v) for k, v in self.scores.items()},
            "unavailable": dict(self.unavailable),
            "tokenizer": self.tokenizer,
            "notes": list(self.notes),
        }
        if per_image:
            out["image_ids"] = list(self.image_ids)
            out["per_image"] = {k: [_json_float(x) for x in v] for k, v in self.per_image.items()}
        return out


def _json_float(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def validate_inputs(references: dict[str, list[str]], candidates: dict[str, str]) -> list[str]:
    """Check shapes and key agreement; returns the image ids in the references' order."""
    if not isinstance(references, dict) or not isinstance(candidates, dict):
        raise TypeError("references and candidates must be dicts keyed by image id")
    if not references:
        raise ValueError("nothing to score: references is empty")
    missing = [k for k in references if k not in candidates]
    extra = [k for k in candidates if k not in references]
    if missing or extra:
        raise ValueError(
            f"references and candidates must have the same image ids: {len(missing)} without a candidate "
            f"(e.g. {missing[:5]}), {len(extra)} without references (e.g. {extra[:5]})"
        )
    for key, refs in references.items():
        if isinstance(refs, str) or not isinstance(refs, (list, tuple)) or not refs:
            raise ValueError(f"references[{key!r}] must be a non-empty list of strings")
        if not all(isinstance(r, str) and r.strip() for r in refs):
            raise ValueError(f"references[{key!r}] contains an empty or non-string reference")
        if not isinstance(candidates[key], str):
            raise TypeError(f"candidates[{key!r}] must be a string, got {type(candidates[key]).__name__}")
    return list(references)


def score_captions(
    references: dict[str, list[str]],
    candidates: dict[str, str],
    *,
    metrics: list[str] | tuple[str, ...] | None = None,
    spice_jars: Path | str | None = None,
    session: ScoringSession | None = None,
) -> MetricReport:
    """Score one candidate per image against its references with pycocoevalcap's scorers.

    Empty candidates are scored (they get 0 from every metric), not dropped. Keys must match exactly.
    ``session``: share one METEOR process and the reference tokenisation with other calls.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    wanted = normalise_metric_names(metrics if metrics is not None else DEFAULT_METRICS)
    ids = validate_inputs(references, candidates)
    has_java = session.has_java if session is not None else java_available()
    t0 = time.perf_counter()
    ordered = {k: list(references[k]) for k in ids}
    gts, tokenizer = (session.tokenize_references(ordered, use_java=has_java) if session is not None
                      else tokenize(ordered, use_java=has_java))
    res, _ = tokenize({k: [candidates[k]] for k in ids}, use_java=has_java)
    logger.info("tokenised %d images with %s in %.1fs", len(ids), tokenizer, time.perf_counter() - t0)

    report = MetricReport(image_ids=ids, scores={}, per_image={}, unavailable={}, tokenizer=tokenizer)
    if tokenizer != "ptb":
        report.notes.append("java not on PATH: captions tokenised with the simple fallback, not PTB")
        logger.warning(report.notes[-1])
    n_empty = sum(1 for k in ids if not res[k][0])
    if n_empty:
        report.notes.append(f"{n_empty} candidate(s) empty after tokenisation (scored, not dropped)")

    def timed(name: str, fn):
        start = time.perf_counter()
        out = fn()
        logger.info("%s done in %.1fs", name, time.perf_counter() - start)
        return out

    if any(m in wanted for m in BLEU_NAMES):
        corpus, per_image = timed("BLEU", lambda: Bleu(4).compute_score(gts, res, verbose=0))
        report.bleu_stats = bleu_image_stats(gts, res)
        for i, name in enumerate(BLEU_NAMES):
            if name in wanted:
                report.scores[name] = float(corpus[i])
                report.per_image[name] = np.asarray(per_image[i], dtype=np.float64)
    if "METEOR" in wanted:
        if has_java:
            score, per_image = timed("METEOR", lambda: score_meteor(gts, res, session))
            report.scores["METEOR"], report.per_image["METEOR"] = score, np.asarray(per_image)
        else:
            report.unavailable["METEOR"] = "java is not on PATH (METEOR 1.5 is a Java program)"
    if "ROUGE-L" in wanted:
        score, per_image = timed("ROUGE-L", lambda: Rouge().compute_score(gts, res))
        report.scores["ROUGE-L"], report.per_image["ROUGE-L"] = float(score), np.asarray(per_image, float)
    if "CIDEr" in wanted:
        score, per_image = timed("CIDEr", lambda: Cider().compute_score(gts, res))
        report.scores["CIDEr"], report.per_image["CIDEr"] = float(score), np.asarray(per_image, float)
        if len(ids) < 2:
            report.notes.append("CIDEr over a single image is 0 by construction (IDF of one document)")
    if "SPICE" in wanted:
        reason = spice_unavailable_reason(spice_jars)
        if reason:
            report.unavailable["SPICE"] = reason
        else:
            score, per_image = timed("SPICE", lambda: score_spice(gts, res, spice_jars))
            report.scores["SPICE"], report.per_image["SPICE"] = score, np.asarray(per_image, float)
    # Keep the caller's metric order.
    report.scores = {m: report.scores[m] for m in wanted if m in report.scores}
    return report
