"""The rejects report: every bad input is counted and written with a reason, never dropped silently.

A reject is one JSON line ``{row, image_id, filename, reason, detail}`` appended to a
``rejects.jsonl`` (a data dir's, from ``prepare``; a run dir's, from training). ``row`` is the
0-based index of the CSV record (header and blank lines excluded), ``None`` when unknown; rejects
found while reading the CSV start their ``detail`` with the physical line (``line 7: ...``).

Rejects found while *reading* (the CSV) are collected on the driver. Rejects found while *decoding*
happen inside Ray Data workers: :class:`~mgpt_data.preprocess.ImagePreprocessor` drops the row from
its batch and sends the reject to a :class:`RejectsSink` actor (a handle passed in
``fn_constructor_kwargs``) with a blocking call, so when the dataset has been consumed every reject
is already in the sink; the driver then calls :func:`drain_rejects` and appends them.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class RejectReason(StrEnum):
    """Why an input was rejected (the ``reason`` field)."""

    MISSING_FILE = "missing_file"
    NOT_A_FILE = "not_a_file"  # a directory (or FIFO, device) where an image file should be
    OUTSIDE_DATA_DIR = "outside_data_dir"  # a symlink that resolves outside flickr30k-images/
    UNREADABLE_IMAGE = "unreadable_image"
    IMAGE_TOO_LARGE = "image_too_large"  # more pixels than PIL.Image.MAX_IMAGE_PIXELS (a decompression bomb)
    MALFORMED_ROW = "malformed_row"
    INVALID_JSON = "invalid_json"
    EMPTY_CAPTIONS = "empty_captions"
    DUPLICATE_ID = "duplicate_id"


@dataclass(frozen=True)
class Reject:
    """One rejected input."""

    row: int | None
    image_id: str | None
    filename: str | None
    reason: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def count_by_reason(rejects: Iterable[dict[str, Any]]) -> dict[str, int]:
    """``{reason: count}``, sorted by reason."""
    return dict(sorted(Counter(r["reason"] for r in rejects).items()))


def unique_rejects(rejects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop repeats of the same (row, image_id, reason), e.g. one image decoded for 5 caption rows."""
    seen: set[tuple] = set()
    out = []
    for r in rejects:
        key = (r.get("row"), r.get("image_id"), r["reason"])
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def append_rejects(path: str | Path, rejects: Iterable[dict[str, Any]]) -> int:
    """Append rejects to a JSONL file (created with its parents); returns how many were written."""
    rejects = list(rejects)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        for r in rejects:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return len(rejects)


def read_rejects(path: str | Path) -> list[dict[str, Any]]:
    """Read a rejects JSONL file back (empty list when it does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class RejectsSink:
    """Collects rejects sent from Ray workers; create it with :func:`start_rejects_sink`."""

    def __init__(self) -> None:
        self._rejects: list[dict[str, Any]] = []

    def extend(self, rejects: list[dict[str, Any]]) -> int:
        self._rejects.extend(rejects)
        return len(self._rejects)

    def drain(self) -> list[dict[str, Any]]:
        out, self._rejects = self._rejects, []
        return out


def start_rejects_sink():
    """A :class:`RejectsSink` Ray actor (tiny: no CPU reserved) on the head node, so losing a worker
    node never loses the rejects collected so far; pass the handle to the preprocessor."""
    import ray

    head = {"node:__internal_head__": 0.001}  # the head node's own resource, as for Ray Train's state actor
    return ray.remote(num_cpus=0, resources=head)(RejectsSink).remote()


def drain_rejects(sink) -> list[dict[str, Any]]:
    """Everything the sink actor collected so far (de-duplicated), emptying it."""
    import ray

    return unique_rejects(ray.get(sink.drain.remote()))
