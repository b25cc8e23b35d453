"""Bootstrap intervals: exact recomputation identities, containment, determinism under a seed."""

from __future__ import annotations

import numpy as np
import pytest

from mgpt_eval import MetricReport, chair, metric_intervals, score_captions
from mgpt_eval.bleu_stats import bleu_from_sums, bleu_image_stats
from mgpt_eval.bootstrap import chair_intervals, percentile_interval, resample_statistic
from mgpt_eval.tokenize import simple_tokenize


@pytest.fixture
def java_free_report(caption_set, no_java) -> MetricReport:
    """BLEU, ROUGE-L and CIDEr on the fixed set (fallback tokenizer: fast, no JVM)."""
    return score_captions(*caption_set, metrics=["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr"])


def test_bleu_from_cached_stats_equals_pycocoevalcap(caption_set):
    from pycocoevalcap.bleu.bleu import Bleu

    references, candidates = caption_set
    gts = simple_tokenize(references)
    res = simple_tokenize({k: [v] for k, v in candidates.items()})
    stats = bleu_image_stats(gts, res)
    expected, _ = Bleu(4).compute_score(gts, res, verbose=0)
    np.testing.assert_allclose(bleu_from_sums(stats.sum(axis=0)), expected, rtol=1e-12, atol=1e-15)
    # A subset: the statistic recomputed from its rows equals a fresh pycocoevalcap run on that subset.
    subset = ["img1", "img3", "img4"]
    rows = [list(gts).index(k) for k in subset]
    sub_expected, _ = Bleu(4).compute_score(
        {k: gts[k] for k in subset}, {k: res[k] for k in subset}, verbose=0
    )
    np.testing.assert_allclose(bleu_from_sums(stats[rows].sum(axis=0)), sub_expected, rtol=1e-12, atol=1e-15)


def test_intervals_contain_point_and_are_deterministic(java_free_report):
    first = metric_intervals(java_free_report, resamples=400, seed=7)
    again = metric_intervals(java_free_report, resamples=400, seed=7)
    other = metric_intervals(java_free_report, resamples=400, seed=8)
    assert set(first) == set(java_free_report.scores)
    for name, ci in first.items():
        assert ci.low <= ci.point <= ci.high, name
        assert ci.point == java_free_report.scores[name]
        assert (again[name].low, again[name].high) == (ci.low, ci.high), name
    assert any((other[n].low, other[n].high) != (first[n].low, first[n].high) for n in first)
    assert first["BLEU-1"].method == "exact" and "IDF" in first["CIDEr"].method


def test_zero_resamples_turns_intervals_off(java_free_report):
    assert metric_intervals(java_free_report, resamples=0) == {}


def test_meteor_interval_is_centred_on_the_corpus_score():
    per_image = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    report = MetricReport(
        image_ids=[str(i) for i in range(8)],
        scores={"METEOR": 0.30},
        per_image={"METEOR": per_image},
        unavailable={},
        tokenizer="ptb",
    )
    ci = metric_intervals(report, resamples=500, seed=0)["METEOR"]
    assert ci.low < 0.30 < ci.high
    # Shifted from the per-image mean (0.45) onto the corpus value: centred near 0.30, not 0.45.
    assert abs((ci.low + ci.high) / 2 - 0.30) < 0.05
    assert "shifted" in ci.method


def test_resample_statistic_of_a_mean_matches_theory():
    values = np.random.default_rng(0).normal(size=200)
    stats = np.stack([values, np.ones_like(values)], axis=1)
    samples = resample_statistic(stats, lambda s: s[:, 0] / s[:, 1], resamples=2000, seed=0)
    assert samples.std() == pytest.approx(values.std() / np.sqrt(len(values)), rel=0.1)
    low, high = percentile_interval(samples, 0.95)
    assert low < values.mean() < high


def test_bad_bootstrap_arguments():
    with pytest.raises(ValueError, match="non-empty"):
        resample_statistic(np.zeros((0, 2)), lambda s: s[:, 0], resamples=10, seed=0)
    with pytest.raises(ValueError, match="confidence"):
        percentile_interval(np.arange(10.0), 1.5)


def test_chair_intervals_exact_and_seeded():
    candidates = {str(i): ("a dog and a cat" if i % 2 else "a dog") for i in range(20)}
    truth = {str(i): {"dog"} for i in range(20)}
    result = chair(candidates, truth)
    assert result["CHAIRs"] == 0.5 and result["CHAIRi"] == pytest.approx(10 / 30)
    cis = chair_intervals(result, resamples=300, seed=3)
    assert cis == chair_intervals(result, resamples=300, seed=3)
    for name in ("CHAIRi", "CHAIRs"):
        assert cis[name].low <= result[name] <= cis[name].high
        assert cis[name].high > cis[name].low
