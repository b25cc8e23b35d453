"""Per-image BLEU sufficient statistics, so corpus BLEU can be recomputed on any image subset.

pycocoevalcap's corpus BLEU (``BleuScorer.compute_score(option="closest")``) is a function of sums
over images of: hypothesis length, closest reference length, and per n the number of hypothesis
n-grams (``guess``) and of clipped matches (``correct``). We cook each image with pycocoevalcap's own
``cook_refs``/``cook_test`` and keep those numbers; ``bleu_from_sums`` repeats its formula (same
``tiny``/``small`` guards), so on the full set it equals ``Bleu().compute_score`` to float precision.
"""

from __future__ import annotations

import numpy as np

TINY = 1e-15
SMALL = 1e-9


def bleu_image_stats(gts: dict[str, list[str]], res: dict[str, list[str]], n: int = 4) -> np.ndarray:
    """Array [images, 2 + 2n]: testlen, closest reflen, guess_1..n, correct_1..n (image order of gts)."""
    from pycocoevalcap.bleu.bleu_scorer import cook_refs, cook_test

    rows = []
    for key, refs in gts.items():
        cooked = cook_test(res[key][0], cook_refs(refs, n=n), eff="closest", n=n)
        rows.append([cooked["testlen"], cooked["reflen"], *cooked["guess"], *cooked["correct"]])
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), 2 + 2 * n)


def bleu_from_sums(sums: np.ndarray, n: int = 4) -> np.ndarray:
    """Corpus BLEU-1..n from summed statistics; ``sums`` is [..., 2 + 2n], result [..., n]."""
    sums = np.asarray(sums, dtype=np.float64)
    testlen, reflen = sums[..., 0], sums[..., 1]
    guess, correct = sums[..., 2 : 2 + n], sums[..., 2 + n : 2 + 2 * n]
    precisions = (correct + TINY) / (guess + SMALL)
    orders = np.arange(1, n + 1, dtype=np.float64)
    bleu = np.cumprod(precisions, axis=-1) ** (1.0 / orders)
    ratio = (testlen + TINY) / (reflen + SMALL)
    brevity = np.where(ratio < 1, np.exp(1 - 1 / ratio), 1.0)
    return bleu * brevity[..., None]
