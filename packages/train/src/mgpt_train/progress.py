"""A tqdm bar on the driver that follows ``metrics.jsonl`` while the workers train.

Where stderr is not a terminal (``ray job`` logs, CI, a file), a redrawn bar would leave a copy of
itself per refresh, so progress is logged as one line every ``log_seconds`` instead.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

#: Bytes read from the end of the file: many records (~250 B each), never the whole file.
TAIL_BYTES = 4096


def _last_record(path: Path) -> dict | None:
    """The last complete record, read from the file's tail (None when there is none yet)."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - TAIL_BYTES))
            lines = f.read().splitlines()
    except FileNotFoundError:
        return None
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line being written, or the cut first line of the tail
            continue
        if isinstance(record, dict):
            return record
    return None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


class MetricsProgress:
    """Context manager: polls ``path`` every ``interval`` s and shows global step, loss and lr
    (a bar on a terminal, else a log line every ``log_seconds``; ``tty`` None = ask stderr).

    A bar's poll is one ``stat``: the file's tail is read only when its size changed.
    """

    def __init__(self, path: Path, *, total: int, enabled: bool = True, interval: float = 1.0,
                 log_seconds: float = 30.0, tty: bool | None = None) -> None:
        self.path = path
        self.total = total
        self.enabled = enabled
        self.interval = interval
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.log_seconds = log_seconds
        self._logged_step = -1
        self._last_log = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar: tqdm | None = None
        self._seen_size = -1

    def _log_line(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_log < self.log_seconds:
            return
        record = _last_record(self.path)
        if record is None or int(record["global_step"]) == self._logged_step:
            return
        step, sec_per_it = int(record["global_step"]), float(record.get("sec_per_it", 0.0))
        left = round((self.total - step) * sec_per_it)
        eta = f", eta {left // 60}m{left % 60:02d}s" if step < self.total else ""
        logger.info("train: step %d/%d (%.0f%%) epoch %s loss %.4f lr %.2e, %.2f s/it%s", step, self.total,
                    100 * step / max(self.total, 1), record["epoch"], record["loss"], record["lr"],
                    sec_per_it, eta)
        self._logged_step, self._last_log = step, now

    def _update(self) -> None:
        if self.enabled and not self.tty:
            self._log_line()
            return
        size = _size(self.path)
        if size == self._seen_size or self._bar is None:
            return
        record = _last_record(self.path)
        if record is None:
            return
        self._seen_size = size
        self._bar.n = int(record["global_step"])
        self._bar.set_postfix(epoch=record["epoch"], loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}",
                              refresh=False)
        self._bar.refresh()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._update()

    def __enter__(self) -> MetricsProgress:
        if self.enabled:
            self._last_log = float("-inf")  # the first record is logged at once
            if self.tty:
                self._bar = tqdm(total=self.total, desc="train", unit="it", dynamic_ncols=True)
            self._update()
            self._thread = threading.Thread(target=self._run, name="mgpt-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._bar is not None:
            self._update()
            self._bar.close()
        elif self.enabled:
            self._log_line(force=True)
