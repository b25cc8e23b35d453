"""Canonical metric names and the aliases users may type for them."""

from __future__ import annotations

import re
from collections.abc import Iterable

BLEU_NAMES: tuple[str, ...] = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4")
CAPTION_METRICS: tuple[str, ...] = (*BLEU_NAMES, "METEOR", "ROUGE-L", "CIDEr", "SPICE")
DEFAULT_METRICS: tuple[str, ...] = CAPTION_METRICS[:-1]  # SPICE is opt-in (needs CoreNLP 3.6.0 jars)
CHAIR_METRICS: tuple[str, ...] = ("CHAIRi", "CHAIRs")
# Short column headers for tables and charts.
SHORT_NAMES: dict[str, str] = {
    "BLEU-1": "B1",
    "BLEU-2": "B2",
    "BLEU-3": "B3",
    "BLEU-4": "B4",
    "METEOR": "METEOR",
    "ROUGE-L": "ROUGE-L",
    "CIDEr": "CIDEr",
    "SPICE": "SPICE",
    "CHAIRi": "CHAIRi",
    "CHAIRs": "CHAIRs",
}


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_ALIASES: dict[str, str] = {_key(n): n for n in CAPTION_METRICS}
_ALIASES.update({f"b{i}": f"BLEU-{i}" for i in range(1, 5)})
_ALIASES.update({"rouge": "ROUGE-L", "ciderd": "CIDEr"})


def normalise_metric_names(names: Iterable[str]) -> list[str]:
    """Map user spellings (``bleu_4``, ``B4``, ``rouge_l``, ``cider``) to canonical names, in order.

    Raises ``ValueError`` naming the unknown entries and the accepted names.
    """
    out: list[str] = []
    unknown: list[str] = []
    for name in names:
        canonical = _ALIASES.get(_key(str(name)))
        if canonical is None:
            unknown.append(str(name))
        elif canonical not in out:
            out.append(canonical)
    if unknown:
        raise ValueError(f"unknown metric name(s) {unknown}; choose from {list(CAPTION_METRICS)}")
    if not out:
        raise ValueError(f"no metric selected; choose from {list(CAPTION_METRICS)}")
    return out
