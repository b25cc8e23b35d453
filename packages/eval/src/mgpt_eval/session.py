"""`ScoringSession`: what several `score_captions` calls of one evaluation share.

An evaluation scores the baseline and every checkpoint on the same images, and the gallery too. Two
costs repeat for nothing when each call starts from scratch:

- the METEOR jar: ``java -jar meteor-1.5.jar -stdio`` loads its paraphrase tables for ~6 s (20 s on
  a loaded 2-core box) before the first answer; a later ``EVAL`` on the same process takes < 1 s;
- the PTB tokenisation of the references (one Java start each, ~0.4 s), whose input and output are
  the same for every checkpoint.

A session owns ONE pycocoevalcap ``Meteor`` (started when the session opens, so the jar loads while
the caller is still generating captions; closed with `meteor_runner.close_meteor` on exit, even on
error) and keeps the tokenised references by their exact content. Scores are identical to per-call
scoring: each ``EVAL`` line of the METEOR protocol aggregates only the segments scored since the
previous one, and PTB output depends only on its input (the cache key is the whole input).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from mgpt_eval.names import DEFAULT_METRICS, normalise_metric_names
from mgpt_eval.tokenize import java_available, tokenize

logger = logging.getLogger(__name__)

_References = tuple[tuple[str, tuple[str, ...]], ...]


class ScoringSession:
    """One METEOR Java process and the tokenised references for every `score_captions` call in a
    ``with`` block: ``with ScoringSession(metrics) as s: score_captions(r, c, session=s)``.

    ``metrics``: the metrics the calls will ask for (METEOR is started up front only when among them
    and Java is on PATH); a call may still ask for METEOR later and gets the process then.
    """

    def __init__(self, metrics: Sequence[str] | None = None) -> None:
        self.metrics = normalise_metric_names(metrics if metrics is not None else DEFAULT_METRICS)
        self.has_java = java_available()
        self._meteor: Any = None
        self._references: dict[tuple[_References, bool], tuple[dict[str, list[str]], str]] = {}
        self.meteor_starts = 0  # how many METEOR processes this session started (1 unless one failed)
        self.closed = False

    def __enter__(self) -> ScoringSession:
        if self.has_java and "METEOR" in self.metrics:
            self.meteor()  # start now: the jar loads its tables while the caller generates captions
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def meteor(self) -> Any:
        """The session's pycocoevalcap ``Meteor`` (started on first use)."""
        from pycocoevalcap.meteor.meteor import Meteor

        if self.closed:
            raise RuntimeError("this scoring session is closed")
        if self._meteor is None:
            self._meteor = Meteor()
            self.meteor_starts += 1
            logger.debug("scoring session: METEOR java process %s started", self._meteor.meteor_p.pid)
        return self._meteor

    def discard_meteor(self) -> None:
        """Close the METEOR process (after it failed); the next `meteor` call starts a fresh one."""
        from mgpt_eval.meteor_runner import close_meteor

        if self._meteor is not None:
            meteor, self._meteor = self._meteor, None
            close_meteor(meteor)

    def tokenize_references(self, references: dict[str, list[str]], *, use_java: bool) -> tuple[dict, str]:
        """`tokenize` of ``references``, computed once per distinct input in this session."""
        key = (tuple((k, tuple(v)) for k, v in references.items()), use_java)
        if key not in self._references:
            self._references[key] = tokenize(references, use_java=use_java)
        tokens, name = self._references[key]
        return {k: list(v) for k, v in tokens.items()}, name

    def close(self) -> None:
        """Stop the METEOR process (idempotent)."""
        try:
            self.discard_meteor()
        finally:
            self.closed = True
