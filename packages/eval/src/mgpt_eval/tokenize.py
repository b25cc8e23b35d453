"""Caption tokenisation: pycocoevalcap's PTB tokenizer (Java), or a documented fallback without Java.

The PTB path is the standard one (Stanford CoreNLP 3.4.1 PTBTokenizer, lower-cased, punctuation tokens
removed). The fallback is used only when ``java`` is not on PATH; it lower-cases, splits off
punctuation and clitics with a regular expression and drops pycocoevalcap's own punctuation list, so it
agrees with PTB on plain captions but not on every corner (brackets, quotes, currency). A report that
used it says so (``MetricReport.tokenizer == "simple"``).
"""

from __future__ import annotations

import logging
import re
import shutil

logger = logging.getLogger(__name__)

# Characters Java's line reader treats as line ends; one caption must stay one line.
_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x85\u2028\u2029]+")
_SIMPLE_TOKEN = re.compile(r"[a-z0-9]+(?:[-.][a-z0-9]+)*|n't|'[a-z]+|[^\sa-z0-9]")


def java_available() -> bool:
    """True when a ``java`` executable is on PATH (METEOR, PTB tokenisation and SPICE need it)."""
    return shutil.which("java") is not None


def _clean(caption: str) -> str:
    return _LINE_BREAKS.sub(" ", caption).strip()


def ptb_tokenize(captions: dict[str, list[str]]) -> dict[str, list[str]]:
    """Tokenise with pycocoevalcap's PTBTokenizer in one Java call; keeps keys and caption counts."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    payload = {key: [{"caption": _clean(c)} for c in caps] for key, caps in captions.items()}
    out = PTBTokenizer().tokenize(payload)
    for key, caps in captions.items():
        got = out.get(key, [])
        if len(got) != len(caps):
            raise RuntimeError(
                f"PTB tokenizer returned {len(got)} caption(s) for {key!r}, expected {len(caps)}"
            )
    return {key: out[key] for key in captions}


def simple_tokenize(captions: dict[str, list[str]]) -> dict[str, list[str]]:
    """Java-free fallback: lower-case, regex word split, pycocoevalcap's punctuation removed."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS

    drop = set(PUNCTUATIONS) | {'"'}
    out: dict[str, list[str]] = {}
    for key, caps in captions.items():
        out[key] = [
            " ".join(t for t in _SIMPLE_TOKEN.findall(_clean(c).lower()) if t not in drop) for c in caps
        ]
    return out


def tokenize(captions: dict[str, list[str]], *, use_java: bool | None = None) -> tuple[dict, str]:
    """Tokenise with PTB when Java is available, else the fallback; returns (tokens, tokenizer name)."""
    if use_java is None:
        use_java = java_available()
    if use_java:
        return ptb_tokenize(captions), "ptb"
    logger.debug("java not on PATH: simple fallback tokenizer instead of PTB")
    return simple_tokenize(captions), "simple"
