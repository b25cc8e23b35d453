"""Faults on purpose, for the fault-tolerance tests (tests/test_hard_faults.py); all off unless asked.

Each fires once per run: a marker file in the run directory records that it did, so the attempt
Ray Train restarts (or a ``--resume``) runs clean.

- ``train.fail_at_step = N``: rank 0 raises `InjectedFailure` after global step N.
- ``train.hang_at_step = N``: rank 0 writes its pid into ``.injected_hang_at_step_N`` after global
  step N and sleeps until something kills it (a worker, its node or the driver) or the file is
  rewritten to say ``release``, so a test acts at a known step instead of racing the run.
- ``MGPT_TEST_KILL_IN_CHECKPOINT_WRITE=NAME:K`` (environment of the Ray workers): the process that
  copies checkpoint ``NAME`` into the run directory SIGKILLs itself after its K-th file.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

FAIL_MARKER = ".injected_failure_at_step_{}"
HANG_MARKER = ".injected_hang_at_step_{}"
KILL_MARKER = ".injected_kill_writing_{}"
KILL_IN_CHECKPOINT_WRITE_ENV = "MGPT_TEST_KILL_IN_CHECKPOINT_WRITE"


class InjectedFailure(RuntimeError):
    """Raised once by `maybe_fail` to test fault tolerance."""


def _first_time(marker: Path, text: str) -> bool:
    if marker.exists():
        return False
    marker.write_text(text)
    return True


def maybe_fail(fail_at_step: int | None, global_step: int, run_dir: Path, rank: int) -> None:
    """Raise once at ``fail_at_step`` on rank 0."""
    if fail_at_step is None or global_step != fail_at_step or rank != 0:
        return
    if _first_time(run_dir / FAIL_MARKER.format(fail_at_step), "injected failure\n"):
        raise InjectedFailure(f"injected failure at global step {global_step} (train.fail_at_step)")


def maybe_hang(hang_at_step: int | None, global_step: int, run_dir: Path, rank: int) -> None:
    """Once, on rank 0, after ``hang_at_step``: sleep until killed or released (see the module doc)."""
    if hang_at_step is None or global_step != hang_at_step or rank != 0:
        return
    marker = run_dir / HANG_MARKER.format(hang_at_step)
    if _first_time(marker, f"{os.getpid()}\n"):
        logger.warning("hanging after global step %d until killed (train.hang_at_step)", global_step)
        while marker.read_text().strip() != "release":
            time.sleep(0.5)


def checkpoint_copy_function(dest: Path) -> Callable[[str, str], object]:
    """The ``copy_function`` for ``shutil.copytree`` while checkpoint folder ``dest`` is copied into
    place: ``shutil.copy2``, or one that SIGKILLs this process after K files when
    ``MGPT_TEST_KILL_IN_CHECKPOINT_WRITE=<dest.name>:K`` (once: a marker next to the run's checkpoints)."""
    name, _, count = os.environ.get(KILL_IN_CHECKPOINT_WRITE_ENV, "").partition(":")
    marker = dest.parent / KILL_MARKER.format(dest.name)
    if name != dest.name or not count.isdigit() or marker.exists():
        return shutil.copy2
    copied: list[str] = []

    def copy_then_maybe_die(src: str, dst: str) -> object:
        out = shutil.copy2(src, dst)
        copied.append(dst)
        if len(copied) == int(count) and _first_time(marker, "\n".join(copied) + "\n"):
            logger.warning("killing this process after %d files of %s (%s)", len(copied), dest.name,
                           KILL_IN_CHECKPOINT_WRITE_ENV)
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    return copy_then_maybe_die
