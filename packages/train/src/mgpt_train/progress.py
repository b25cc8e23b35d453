"""A tqdm bar on the driver that follows ``metrics.jsonl`` while the workers train."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import TracebackType

from tqdm.auto import tqdm


def _last_record(path: Path) -> dict | None:
    try:
        with path.open("rb") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return None
    for line in reversed(lines):
        try:
            return json.loads(line)
        except json.JSONDecodeError:  # a line being written
            continue
    return None


class MetricsProgress:
    """Context manager: polls ``path`` every ``interval`` s and shows global step, loss and lr."""

    def __init__(self, path: Path, *, total: int, enabled: bool = True, interval: float = 1.0) -> None:
        self.path = path
        self.total = total
        self.enabled = enabled
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar: tqdm | None = None

    def _update(self) -> None:
        record = _last_record(self.path)
        if record is None or self._bar is None:
            return
        self._bar.n = int(record["global_step"])
        self._bar.set_postfix(epoch=record["epoch"], loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}",
                              refresh=False)
        self._bar.refresh()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._update()

    def __enter__(self) -> MetricsProgress:
        if self.enabled:
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
