"""METEOR through pycocoevalcap's own ``Meteor`` scorer, one Java process per run, always closed.

``Meteor()`` starts ``java -jar meteor-1.5.jar -stdio`` in its constructor and only stops it in
``__del__`` (close stdin, kill, wait), i.e. whenever the garbage collector gets round to it. We close
it explicitly in a ``finally`` (same steps, plus closing stdout/stderr) so no Java child outlives the
run; the later ``__del__`` is then harmless (closing a closed pipe and killing a reaped process are no-ops).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

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


def score_meteor(gts: dict[str, list[str]], res: dict[str, list[str]]) -> tuple[float, list[float]]:
    """Corpus METEOR (aggregated by the jar from per-segment statistics) and per-image scores.

    '|||' is METEOR's field separator: pycocoevalcap strips it from hypotheses only, we strip it from
    references too so one odd caption cannot desynchronise the protocol.
    """
    gts = {k: [r.replace("|||", " ") for r in refs] for k, refs in gts.items()}
    with meteor_process() as meteor:
        try:
            score, scores = meteor.compute_score(gts, res)
        except (ValueError, BrokenPipeError) as err:  # the jar died or answered garbage
            proc = meteor.meteor_p
            stderr = b""
            if proc.poll() is not None and proc.stderr is not None:
                stderr = proc.stderr.read()[-2000:]
            raise RuntimeError(
                f"METEOR java process failed: {err}; stderr: {stderr.decode(errors='replace')}"
            ) from err
    return float(score), [float(s) for s in scores]
