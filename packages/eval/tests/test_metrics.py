"""score_captions against pycocoevalcap's scorers called directly, pinned values, edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from mgpt_eval import meteor_runner, score_captions
from mgpt_eval.names import DEFAULT_METRICS


@pytest.fixture(scope="module")
def direct(caption_set):
    """The same set scored by calling pycocoevalcap's tokenizer and scorers directly."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    references, candidates = caption_set
    tok = PTBTokenizer()
    gts = tok.tokenize({k: [{"caption": c} for c in v] for k, v in references.items()})
    res = tok.tokenize({k: [{"caption": v}] for k, v in candidates.items()})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    meteor = Meteor()
    try:
        meteor_score, _ = meteor.compute_score(gts, res)
    finally:
        meteor_runner.close_meteor(meteor)
    return {
        **{f"BLEU-{i + 1}": b for i, b in enumerate(bleu)},
        "METEOR": meteor_score,
        "ROUGE-L": Rouge().compute_score(gts, res)[0],
        "CIDEr": Cider().compute_score(gts, res)[0],
        "gts": gts,
        "res": res,
    }


@pytest.mark.java
def test_scores_equal_pycocoevalcap_called_directly(scored, direct):
    report, _, _ = scored
    assert list(report.scores) == list(DEFAULT_METRICS)
    assert report.tokenizer == "ptb"
    for name in DEFAULT_METRICS:
        assert report.scores[name] == pytest.approx(direct[name], abs=1e-12), name


@pytest.mark.java
def test_pinned_values(scored):
    """Literal values (4 decimals) so a change in tokenisation or scorers shows up as a diff."""
    got = {k: round(v, 4) for k, v in scored[0].scores.items()}
    assert got == {
        "BLEU-1": 0.7978,
        "BLEU-2": 0.6858,
        "BLEU-3": 0.5574,
        "BLEU-4": 0.4556,
        "METEOR": 0.2863,
        "ROUGE-L": 0.5476,
        "CIDEr": 1.7350,
    }


@pytest.mark.java
def test_per_image_scores_align_with_ids(scored):
    report, _, _ = scored
    assert report.image_ids == [f"img{i}" for i in range(1, 7)]
    for name, values in report.per_image.items():
        assert len(values) == 6, name
    # ROUGE-L and CIDEr corpus scores are the mean of their per-image scores.
    assert report.scores["ROUGE-L"] == pytest.approx(np.mean(report.per_image["ROUGE-L"]))
    assert report.scores["CIDEr"] == pytest.approx(np.mean(report.per_image["CIDEr"]))
    # img5 is a near-paraphrase, img4 a wrong caption: the ordering must show it.
    assert report.per_image["CIDEr"][4] > report.per_image["CIDEr"][3]


@pytest.mark.java
def test_empty_candidate_is_scored_zero_not_dropped(scored):
    report, _, _ = scored
    empty = report.image_ids.index("img6")
    assert report.n_images == 6
    for name in DEFAULT_METRICS:
        assert report.per_image[name][empty] == pytest.approx(0.0, abs=1e-6), name
    assert any("empty" in note for note in report.notes)


@pytest.mark.java
def test_meteor_java_process_closed_after_run(scored):
    _, closed, leaked = scored
    assert len(closed) == 1, "exactly one METEOR process per run"
    assert closed[0].returncode is not None, "METEOR java process still running"
    assert closed[0].stdin.closed and closed[0].stdout.closed
    assert not leaked, f"java child processes left behind: {leaked}"


@pytest.mark.java
def test_cider_needs_the_whole_corpus(scored, direct):
    """CIDEr's IDF comes from the scored set: halves scored apart do not average to the whole."""
    from pycocoevalcap.cider.cider import Cider

    gts, res = direct["gts"], direct["res"]
    ids = list(gts)
    halves = [ids[:3], ids[3:]]
    half_runs = [Cider().compute_score({k: gts[k] for k in h}, {k: res[k] for k in h}) for h in halves]
    whole, whole_per_image = Cider().compute_score(gts, res)
    assert abs(np.mean([score for score, _ in half_runs]) - whole) > 0.01  # 1.7193 vs 1.7350
    # The same caption gets a different CIDEr inside a different set (IDF from that set's references).
    in_halves = np.concatenate([per_image for _, per_image in half_runs])
    assert np.max(np.abs(in_halves - whole_per_image)) > 0.05
    assert scored[0].scores["CIDEr"] == pytest.approx(whole, abs=1e-12)


@pytest.mark.java
def test_spice_unavailable_without_jars(caption_set, tmp_path):
    references, candidates = caption_set
    report = score_captions(references, candidates, metrics=["bleu_1", "spice"])
    assert "SPICE" not in report.scores
    assert "CoreNLP 3.6.0" in report.unavailable["SPICE"]
    report = score_captions(references, candidates, metrics=["B1", "SPICE"], spice_jars=tmp_path)
    assert "SPICE" not in report.scores
    assert "stanford-corenlp-3.6.0.jar" in report.unavailable["SPICE"]
    assert set(report.scores) == {"BLEU-1"}


def test_without_java_meteor_unavailable_and_tokenizer_flagged(caption_set, no_java):
    references, candidates = caption_set
    report = score_captions(references, candidates)
    assert report.tokenizer == "simple"
    assert "METEOR" not in report.scores and "java" in report.unavailable["METEOR"]
    assert any("fallback" in note for note in report.notes)
    assert set(report.scores) == set(DEFAULT_METRICS) - {"METEOR"}
    assert 0.0 < report.scores["BLEU-1"] <= 1.0


def test_simple_tokenizer_agrees_with_ptb_on_plain_captions(caption_set, no_java):
    from mgpt_eval.tokenize import simple_tokenize

    references, _ = caption_set
    out = simple_tokenize(references)
    assert out["img1"][0] == "a dog runs across the green grass"
    assert out["img2"][2] == "men riding bikes past parked cars"


def test_mismatched_keys_raise_clear_error(caption_set):
    references, candidates = caption_set[0], dict(caption_set[1])  # the fixture is shared: copy
    del candidates["img2"]
    candidates["other"] = "x"
    with pytest.raises(ValueError, match="same image ids.*img2.*other"):
        score_captions(references, candidates)


@pytest.mark.parametrize(
    ("references", "candidates", "match"),
    [
        ({}, {}, "empty"),
        ({"a": []}, {"a": "x"}, "non-empty list"),
        ({"a": "a dog"}, {"a": "x"}, "non-empty list"),
        ({"a": ["  "]}, {"a": "x"}, "empty or non-string"),
        ({"a": ["a dog"]}, {"a": None}, "must be a string"),
    ],
)
def test_bad_inputs_raise(references, candidates, match):
    with pytest.raises((ValueError, TypeError), match=match):
        score_captions(references, candidates)


def test_unknown_metric_name_raises(caption_set):
    with pytest.raises(ValueError, match="unknown metric"):
        score_captions(*caption_set, metrics=["BLEU-5"])
