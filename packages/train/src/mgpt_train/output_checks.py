"""The output folder under faults: room for the checkpoints before training, and a clear error when
a worker's write failed because the disk filled up (or went read-only) during training.

Writability and a minimum of free space are checked earlier still, before Ray starts
(`mgpt_train.rundir.ensure_writable_dir`).
"""

from __future__ import annotations

from pathlib import Path

from mgpt_train.run_settings import RunSettings
from mgpt_train.rundir import CHECKPOINTS_DIR, OutputNotWritableError, check_free_space


def check_room_for_checkpoints(settings: RunSettings, run_dir: Path, n_trainable: int, n_rows: int) -> None:
    """Refuse to start when ``run_dir`` cannot hold the checkpoints still to be written (an estimate:
    every epoch and step checkpoint not on disk yet, plus one being copied into place)."""
    from mgpt_train.checkpointing import estimate_checkpoint_bytes

    ts = settings.train
    iters = ts.iters_per_epoch or max(1, n_rows // (ts.batch_size * ts.grad_accum_steps * ts.workers))
    names = {f"epoch_{k}" for k in range(ts.max_epoch)}
    if ts.checkpoint_every_steps:
        names |= {f"step_{n}" for n in range(ts.checkpoint_every_steps, iters * ts.max_epoch + 1,
                                             ts.checkpoint_every_steps) if n % iters}
    names |= {f"step_{ts.stop_at_step}"} if ts.stop_at_step else set()
    missing = [n for n in names if not (run_dir / CHECKPOINTS_DIR / n).is_dir()]
    one = estimate_checkpoint_bytes(n_trainable, ts.workers)
    check_free_space(run_dir, (len(missing) + 1) * one,
                     f"{len(missing)} checkpoints of ~{one / 2**20:.2f} MiB")


def output_write_error(error: Exception, run_dir: Path) -> OutputNotWritableError | None:
    """A one-line `OutputNotWritableError` when a worker failed because the disk was full, over quota or
    read-only (the checkpoints written before are intact and resumable); else None."""
    from mgpt_train.checkpointing import latest_checkpoint_dir

    seen, todo = set(), list(getattr(error, "worker_failures", {}).values()) + [error]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        found = _no_room(e)
        if found is not None:
            latest = latest_checkpoint_dir(run_dir)
            keep = (f"the last checkpoint, {latest.name}, is intact: make room and continue with "
                    f"--resume {run_dir}" if latest else "no checkpoint was written")
            filename, strerror = found
            return OutputNotWritableError(f"training stopped: writing {filename or run_dir} failed: "
                                          f"{strerror}; {keep}")
        todo += [getattr(e, "cause", None), e.__cause__, e.__context__]
    return None


def _no_room(e: BaseException) -> tuple[str | None, str] | None:
    """``(file, reason)`` when ``e`` is a full / over-quota / read-only disk: an `OSError` with that errno,
    or the `shutil.Error` of a ``copytree`` (Ray Train's checkpoint upload) listing such failures."""
    import errno
    import os
    import shutil

    codes = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
    if isinstance(e, shutil.Error) and e.args and isinstance(e.args[0], list):
        for entry in e.args[0]:
            if isinstance(entry, tuple) and len(entry) == 3:
                for code in codes:
                    if f"[Errno {code}]" in str(entry[2]):
                        return str(entry[1]), os.strerror(code)
        return None
    if isinstance(e, OSError) and e.errno in codes:
        return e.filename, e.strerror or os.strerror(e.errno)
    return None
