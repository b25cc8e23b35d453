"""``metrics.jsonl``: one line per training iteration, appended by rank 0."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from mgpt_train.rundir import atomic_write_text

logger = logging.getLogger(__name__)

METRIC_KEYS = ("epoch", "step", "global_step", "loss", "lr", "sec_per_it", "data_sec")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All records of a metrics file (an absent file reads as no records). A last line cut short (the
    writer was killed or the disk filled mid-append) is left out with a warning; a bad line before
    the last is an error."""
    return _read(path)[0]


def _read(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """``(records, whether the file ends in a cut-short line)``."""
    if not path.is_file():
        return [], False
    text = path.read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            if number < len(lines):
                raise ValueError(f"{path}: line {number} is not a JSON record ({e})") from e
            logger.warning("%s: ignoring its last line, cut short: %r", path, line[:80])
            return records, True
    return records, bool(text) and not text.endswith("\n")


class MetricsLog:
    """Appends one JSON record per iteration and flushes, so a crash loses at most one line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def truncate_after(self, global_step: int) -> int:
        """Drop records with ``global_step`` > the given one (iterations redone after a resume).

        Returns how many records were dropped.
        """
        records, cut_short = _read(self.path)
        kept = [r for r in records if r["global_step"] <= global_step]
        if len(kept) != len(records) or cut_short:  # a cut-short line must not prefix the next record
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
            logger.info("metrics.jsonl: dropped %d records after global_step %d (resumed run)",
                        len(records) - len(kept), global_step)
        return len(records) - len(kept)

    def append(self, record: dict[str, Any]) -> None:
        missing = [k for k in METRIC_KEYS if k not in record]
        if missing:
            raise ValueError(f"metrics record lacks {missing}: {record}")
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
