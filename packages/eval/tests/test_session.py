"""ScoringSession: one METEOR process and one reference tokenisation for several score_captions calls,
with scores identical to scoring each call on its own."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest

import mgpt_eval.session
import mgpt_eval.tokenize as tokenize
from mgpt_eval import ScoringSession, evaluate_predictions, score_captions
from mgpt_eval.settings import EvalSettings

# A second candidate set over the same images: what another checkpoint would say.
OTHER_CANDIDATES = {
    "img1": "A dog in a field.",
    "img2": "Two cyclists on a road.",
    "img3": "A person with a red umbrella.",
    "img4": "A pizza on a table.",
    "img5": "A grey kitten on a sofa.",
    "img6": "A bus near buildings.",
}


def _same(a, b) -> None:
    assert a.scores == b.scores and a.tokenizer == b.tokenizer and a.unavailable == b.unavailable
    assert set(a.per_image) == set(b.per_image)
    for name in a.per_image:
        np.testing.assert_array_equal(a.per_image[name], b.per_image[name], err_msg=name)
    np.testing.assert_array_equal(a.bleu_stats, b.bleu_stats)


@pytest.mark.java
def test_session_scores_equal_per_call_scores_with_one_meteor_process(caption_set, scored,
                                                                      find_java_children) -> None:
    references, candidates = caption_set
    per_call_first = scored[0]
    per_call_other = score_captions(references, OTHER_CANDIDATES)
    ptb_calls = []
    original = tokenize.ptb_tokenize

    def counting(captions):
        ptb_calls.append(len(captions))
        return original(captions)

    before = set(find_java_children())
    with mock.patch.object(tokenize, "ptb_tokenize", counting), ScoringSession() as session:
        process = session.meteor().meteor_p
        reports = [score_captions(references, c, session=session)
                   for c in (candidates, OTHER_CANDIDATES, candidates)]
        assert session.meteor().meteor_p is process and session.meteor_starts == 1
    _same(reports[0], per_call_first)
    _same(reports[1], per_call_other)
    _same(reports[2], per_call_first)  # a third EVAL on the same process: nothing carried over
    assert len(ptb_calls) == 1 + 3  # the references once, the candidates once per call
    assert process.returncode is not None and process.stdin.closed  # closed on exit
    assert not set(find_java_children()) - before


@pytest.mark.java
def test_a_dead_meteor_process_is_replaced_and_the_session_closes_on_error(caption_set, scored,
                                                                         find_java_children) -> None:
    references, candidates = caption_set
    before = set(find_java_children())
    with pytest.raises(KeyError, match="boom"), ScoringSession(["METEOR"]) as session:
        session.meteor().meteor_p.kill()
        session.meteor().meteor_p.wait()
        with pytest.raises(RuntimeError, match="METEOR java process failed"):
            score_captions(references, candidates, metrics=["METEOR"], session=session)
        again = score_captions(references, candidates, metrics=["METEOR"], session=session)
        assert session.meteor_starts == 2
        raise KeyError("boom")
    assert again.scores["METEOR"] == scored[0].scores["METEOR"]
    assert session.closed and not set(find_java_children()) - before
    with pytest.raises(RuntimeError, match="closed"):
        session.meteor()


def test_references_are_tokenised_once_per_distinct_input(caption_set, no_java) -> None:
    references, candidates = caption_set
    subset = {k: references[k] for k in ("img2", "img4")}
    calls = []

    def counting(captions, *, use_java):
        calls.append(list(captions))
        return tokenize.tokenize(captions, use_java=use_java)

    with ScoringSession() as session, mock.patch.object(mgpt_eval.session, "tokenize", counting):
        assert session.meteor_starts == 0  # no java: nothing to start, METEOR is unavailable
        first, name = session.tokenize_references(references, use_java=False)
        first["img1"].append("mutated by a caller")
        second, _ = session.tokenize_references(references, use_java=False)
        other, _ = session.tokenize_references(subset, use_java=False)
        assert name == "simple" and second == tokenize.tokenize(references, use_java=False)[0]
        assert other == {k: second[k] for k in subset}
        assert calls == [list(references), list(subset)]
        row = evaluate_predictions(
            [{"image_id": k, "candidate": candidates[k], "references": references[k]} for k in references],
            name="x", epoch=0, settings=EvalSettings(bootstrap_resamples=0, chair=False), session=session)
    assert len(calls) == 2  # the row's references were the first input: no new tokenisation
    assert "METEOR" in row["unavailable"] and row["tokenizer"] == "simple"
