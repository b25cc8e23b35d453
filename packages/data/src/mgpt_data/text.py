"""Caption text normalisation (the training target; references stay verbatim)."""

from __future__ import annotations

import re

# The punctuation MiniGPT-4's BLIP caption processor (`pre_caption`) removes.
_PUNCT = re.compile(r"([.!\"()*#:;~])")
_SPACES = re.compile(r"\s+")


def normalize_caption(
    text: str, *, lowercase: bool = False, strip_punctuation: bool = False, max_words: int | None = None
) -> str:
    """Collapse whitespace; optionally lowercase, strip punctuation, keep the first ``max_words`` words."""
    if lowercase:
        text = text.lower()
    if strip_punctuation:
        text = _PUNCT.sub(" ", text)
    words = _SPACES.sub(" ", text).strip().split(" ")
    if max_words is not None:
        words = words[:max_words]
    return " ".join(words)


def join_captions(captions: list[str]) -> str:
    """The seed's grounded caption: every caption joined into one paragraph with single spaces."""
    return " ".join(captions)
