"""METEOR through pycocoevalcap's own ``Meteor`` scorer, one Java process per run (or per
`mgpt_eval.session.ScoringSession`), always closed.

``Meteor()`` starts ``java -jar meteor-1.5.jar -stdio`` in its constructor and only stops it in
``__del__`` (close stdin, kill, wait), i.e. whenever the garbage collector gets round to it. We close
it explicitly in a ``finally`` (same steps, plus closing stdout/stderr) so no Java child outlives the
run; the later ``__del__`` is then harmless (closing a closed pipe and killing a reaped process are no-ops).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mgpt_eval.session import ScoringSession

logger = logging.getLogger(__name__)


def close_meteor(meteor) -> None:
    """Stop a pycocoevalcap ``Meteor``'s Java process and reap it (idempotent)."""
    proc = meteor.meteor_p
    with meteor.lock:
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None and not stream.closed:
                try:
                    stream.close()
                except OSError:  # a broken pipe on close must not hide the real error
                    pass
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
    logger.debug("METEOR java process %s closed (rc=%s)", proc.pid, proc.returncode)


@contextmanager
def meteor_process() -> Iterator:
    """Yield a pycocoevalcap ``Meteor`` whose Java process is closed on exit, even on error."""
    from pycocoevalcap.meteor.meteor import Meteor

    meteor = Meteor()
    try:
        yield meteor
    finally:
        close_meteor(meteor)


def score_meteor(gts: dict[str, list[str]], res: dict[str, list[str]],
                 session: ScoringSession | None = None) -> tuple[float, list[float]]:
    """Corpus METEOR (aggregated by the jar from per-segment statistics) and per-image scores.

    With ``session``, its one Java process scores this call (and stays open); without, a process is
    started and closed for this call. '|||' is METEOR's field separator: pycocoevalcap strips it from
    hypotheses only, we strip it from references too so one odd caption cannot desynchronise the protocol.
    """
    gts = {k: [r.replace("|||", " ") for r in refs] for k, refs in gts.items()}
    if session is None:
        with meteor_process() as meteor:
            return _compute(meteor, gts, res)
    try:
        return _compute(session.meteor(), gts, res)
    except RuntimeError:
        session.discard_meteor()  # a dead or desynchronised process is not reused
        raise


def _compute(meteor, gts: dict[str, list[str]], res: dict[str, list[str]]) -> tuple[float, list[float]]:
    try:
        score, scores = meteor.compute_score(gts, res)
    except (ValueError, BrokenPipeError) as err:  # the jar died or answered garbage
        if meteor.lock.locked():  # compute_score holds it on error; closing (and __del__) take it again
            meteor.lock.release()
        proc = meteor.meteor_p
        stderr = b""
        if proc.poll() is not None and proc.stderr is not None:
            stderr = proc.stderr.read()[-2000:]
        raise RuntimeError(
            f"METEOR java process failed: {err}; stderr: {stderr.decode(errors='replace')}"
        ) from err
    return float(score), [float(s) for s in scores]
