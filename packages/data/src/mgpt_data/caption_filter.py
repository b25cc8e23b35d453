"""Rule-based post-filter for generated image descriptions (`mgpt curate`): keep, lightly fix, or reject.

MiniGPT-4 had ChatGPT fix its stage-1 model's descriptions ("remove any repeating sentences,
meaningless characters, not English sentences ... rewrite any incomplete sentences") and then removed
by hand the ones that were still wrong or held error phrases ("I'm sorry I made a mistake ...").
These rules do that without a second model. Checked in this order, the first failing rule names the
reason:

- ``empty``: no letter at all;
- ``refusal``: a refusal or error phrase ("I'm sorry", "as an AI", "I cannot see the image", ...);
- ``non_english``: mostly non-Latin letters or symbols, or too few English function words;
- ``repetition``: a sentence said twice, a word run ("the the the"), or few distinct word trigrams;
- ``fragment``: after cutting an unfinished last sentence, no complete sentence or too few words left;
- ``too_long``: more than ``max_words`` words.

The one fix applied is that cut of a trailing unfinished sentence (generation stopped mid-sentence),
plus whitespace normalisation; a kept text says which fixes it got. Pure Python: no model, no I/O.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

REASONS: tuple[str, ...] = ("empty", "refusal", "non_english", "repetition", "fragment", "too_long")

#: lower-cased phrases that mark a refusal or an error instead of a description
REFUSAL_PHRASES: tuple[str, ...] = (
    "i'm sorry", "i am sorry", "sorry, i", "i apologize", "i apologise", "my apologies", "as an ai",
    "language model", "i cannot", "i can't", "i can not", "i am unable", "i'm unable", "unable to see",
    "unable to view", "unable to provide", "i don't see", "i do not see", "no image", "not able to see",
    "made a mistake", "there is no picture", "there is no image", "error:", "an error occurred",
)

#: English function words: a real English description of 8+ words has several of them
_FUNCTION_WORDS = frozenset(
    "a an the of in on at to with and or but is are was were be been it its this that these those there "
    "as by for from into onto over under which who while has have had some their his her".split()
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


@dataclass(frozen=True)
class FilterRules:
    """Thresholds of `filter_caption` (defaults fit descriptions of 1–8 sentences)."""

    min_words: int = 8
    max_words: int = 200
    min_latin_share: float = 0.9  # Latin letters among all letters
    min_letter_share: float = 0.6  # letters among non-space characters (the rest: digits, punctuation)
    min_function_share: float = 0.15  # English function words among words (texts of 8+ words)
    max_run: int = 3  # the same word this many times in a row is repetition
    min_distinct_trigrams: float = 0.6  # distinct / all word trigrams (texts of 12+ words)


@dataclass(frozen=True)
class FilterVerdict:
    """``text``: the kept (fixed) text, or None when rejected with ``reason`` + ``detail``; ``fixes``: what
    was changed in a kept text."""

    text: str | None
    reason: str | None = None
    detail: str = ""
    fixes: tuple[str, ...] = ()

    @property
    def kept(self) -> bool:
        return self.reason is None


def _reject(reason: str, detail: str) -> FilterVerdict:
    return FilterVerdict(None, reason, detail)


def sentences(text: str) -> list[str]:
    """Split on ``.``, ``!`` or ``?`` followed by white space."""
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def words(text: str) -> list[str]:
    """Lower-cased words (letters, with an inner apostrophe)."""
    return [w.lower() for w in _WORD.findall(text)]


def _language_problem(text: str, found: list[str], rules: FilterRules) -> str | None:
    letters = [c for c in text if c.isalpha()]
    latin = sum(1 for c in letters if "LATIN" in unicodedata.name(c, ""))
    if latin < rules.min_latin_share * len(letters):
        return f"{len(letters) - latin} of {len(letters)} letters are not Latin"
    visible = [c for c in text if not c.isspace()]
    if len(letters) < rules.min_letter_share * len(visible):
        return f"only {len(letters)} of {len(visible)} characters are letters (meaningless characters)"
    if len(found) >= rules.min_words:
        share = sum(1 for w in found if w in _FUNCTION_WORDS) / len(found)
        if share < rules.min_function_share:
            return f"{share:.0%} English function words (the, of, ...), under {rules.min_function_share:.0%}"
    return None


def _repetition_problem(text: str, found: list[str], rules: FilterRules) -> str | None:
    said = Counter(" ".join(words(s)) for s in sentences(text))
    twice = [s for s, n in said.items() if s and n > 1]
    if twice:
        return f"sentence repeated {said[twice[0]]} times: {twice[0][:60]!r}"
    run = 1
    for previous, word in itertools.pairwise(found):
        run = run + 1 if word == previous else 1
        if run >= rules.max_run:
            return f"{word!r} {run} times in a row"
    trigrams = [tuple(found[i:i + 3]) for i in range(len(found) - 2)]
    if len(found) >= 12 and len(set(trigrams)) < rules.min_distinct_trigrams * len(trigrams):
        return f"{len(set(trigrams))} distinct word trigrams of {len(trigrams)}"
    return None


def filter_caption(text: str, rules: FilterRules | None = None) -> FilterVerdict:
    """Keep (possibly fixed), or reject ``text`` with the first failing rule's reason (see the module)."""
    rules = rules or FilterRules()
    clean = " ".join(str(text).split())
    found = words(clean)
    if not found:
        return _reject("empty", "no words" if not clean else f"no letters in {clean[:40]!r}")
    lowered = clean.lower().replace("’", "'")
    hit = next((p for p in REFUSAL_PHRASES if p in lowered), None)
    if hit is not None:
        return _reject("refusal", f"contains {hit!r}")
    problem = _language_problem(clean, found, rules)
    if problem:
        return _reject("non_english", problem)
    problem = _repetition_problem(clean, found, rules)
    if problem:
        return _reject("repetition", problem)
    fixes: list[str] = []
    parts = sentences(clean)
    if not parts[-1].endswith((".", "!", "?")):
        parts = parts[:-1]
        fixes.append("cut an unfinished last sentence")
    kept = " ".join(parts)
    n_words = len(words(kept))
    if not parts or n_words < rules.min_words:
        return _reject("fragment", f"{n_words} words in complete sentences, under {rules.min_words}")
    if n_words > rules.max_words:
        return _reject("too_long", f"{n_words} words, over {rules.max_words}")
    return FilterVerdict(kept, fixes=tuple(fixes))
