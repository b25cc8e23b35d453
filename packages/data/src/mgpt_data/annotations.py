"""Read and validate ``flickr_annotations_30k.csv`` (polars, every column as a string).

The format as users have it: columns ``raw`` (a JSON list of ~5 caption strings), ``sentids`` (a JSON
list of ints), ``split`` (train/val/test), ``filename`` (``1000092795.jpg``) and ``img_id`` (int);
the images live in ``flickr30k-images/``. ``image_id`` is ``filename.split(".")[0]``, exactly as the
seed's prep script derives it.

Each data row ends in exactly one place: a kept image, or a reject with a reason
(:class:`~mgpt_data.rejects.RejectReason`); repairs that keep a row (blank captions removed from a
list, unparsable ``sentids``, blank lines) are counted in ``warnings``. Checks, in order: field count
and required values (``malformed_row``), ``raw`` JSON (``invalid_json``), non-blank captions
(``empty_captions``), repeated ``image_id`` (``duplicate_id``: the first valid row wins), image file
present (``missing_file``). Decoding happens later (:mod:`mgpt_data.preprocess`).
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from mgpt_data.rejects import Reject, RejectReason

logger = logging.getLogger(__name__)

CSV_NAME = "flickr_annotations_30k.csv"
IMAGES_DIRNAME = "flickr30k-images"
COLUMNS = ("raw", "sentids", "split", "filename", "img_id")
REQUIRED_COLUMNS = ("raw", "split", "filename")
_LOG_FIRST = 10  # rejects logged one by one; the rest are only counted (they are all in rejects.jsonl)


class Flickr30kFormatError(ValueError):
    """The folder or CSV cannot be read as Flickr30k format at all (not a per-row problem)."""


@dataclass
class AnnotationScan:
    """The validated CSV: kept images (in CSV order), rejects and counts."""

    data_dir: Path
    images: list[dict[str, Any]]  # {row, image_id, filename, path, split, captions}
    rejects: list[dict[str, Any]]
    csv_rows: int
    warnings: dict[str, int] = field(default_factory=dict)
    reject_splits: list[str | None] = field(default_factory=list)  # the split each reject's row named

    def rejects_for(self, split: str | None) -> list[dict[str, Any]]:
        """Rejects of rows in ``split`` plus rows whose split is unknown (all of them for ``None``)."""
        if split is None:
            return list(self.rejects)
        return [r for r, s in zip(self.rejects, self.reject_splits, strict=True) if s in (split, None)]


def csv_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / CSV_NAME


def images_dir(data_dir: str | Path) -> Path:
    return Path(data_dir) / IMAGES_DIRNAME


def _load_frame(path: Path) -> pl.DataFrame:
    if not path.is_file():
        raise Flickr30kFormatError(
            f"{path} not found: a Flickr30k-format folder holds {CSV_NAME} and {IMAGES_DIRNAME}/ "
            "(`uv run apps/cli prepare --synthetic 600 --data-dir DIR` writes a synthetic one)"
        )
    try:
        frame = pl.read_csv(path, infer_schema=False, truncate_ragged_lines=True)
    except (pl.exceptions.PolarsError, OSError) as e:
        raise Flickr30kFormatError(f"cannot parse {path} as CSV: {e}") from e
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise Flickr30kFormatError(
            f"{path} lacks required column(s) {missing}; found {frame.columns}, expected {list(COLUMNS)}"
        )
    return frame


def _field_counts(path: Path, n_rows: int) -> list[int] | None:
    """Fields per data record (polars truncates long rows, so count them with the csv module)."""
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        counts = [len(rec) for rec in csv.reader(f)][1:]
    if len(counts) != n_rows:
        logger.warning("csv and polars disagree on the record count of %s (%d vs %d); "
                       "rows with extra fields cannot be detected", path, len(counts), n_rows)
        return None
    return counts


def _parse_captions(raw: str) -> tuple[list[str] | None, str]:
    """``raw`` → (captions, "") or (None, why it is not a JSON list of strings)."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        return None, f"raw is not valid JSON: {e}"
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        return None, f"raw must be a JSON list of strings, got {type(value).__name__}: {raw[:80]!r}"
    return value, ""


def _sentids_ok(value: str | None) -> bool:
    if value is None or value.strip() == "":
        return True
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return False
    return isinstance(parsed, list) and all(isinstance(i, int) for i in parsed)


def _check_row(i: int, rec: dict[str, Any], n_fields: int | None, width: int) -> tuple[Reject | None, dict]:
    """One CSV record → (reject, {}) or (None, partial image dict with captions)."""
    filename = rec.get("filename")
    image_id = filename.split(".")[0] if filename else None

    def reject(reason: RejectReason, detail: str) -> tuple[Reject, dict]:
        return Reject(i, image_id, filename, reason.value, detail), {}

    if n_fields is not None and n_fields != width:
        return reject(RejectReason.MALFORMED_ROW, f"{n_fields} fields, the header has {width}")
    for col in REQUIRED_COLUMNS:
        if rec.get(col) is None or not str(rec[col]).strip():
            return reject(RejectReason.MALFORMED_ROW, f"missing value for column {col!r}")
    if Path(filename).name != filename or filename in (".", "..") or not image_id:
        return reject(RejectReason.MALFORMED_ROW, f"filename {filename!r} is not a plain file name")
    captions, why = _parse_captions(rec["raw"])
    if captions is None:
        return reject(RejectReason.INVALID_JSON, why)
    kept = [c for c in captions if c.strip()]
    if not kept:
        return reject(RejectReason.EMPTY_CAPTIONS, f"{len(captions)} caption(s), none with text")
    return None, {"captions": kept, "blank": len(captions) - len(kept), "split": rec["split"].strip()}


def scan_annotations(data_dir: str | Path) -> AnnotationScan:
    """Validate every CSV row of a Flickr30k-format folder (no image is decoded here)."""
    data_dir = Path(data_dir)
    path = csv_path(data_dir)
    frame = _load_frame(path)
    counts = _field_counts(path, frame.height)
    width = len(frame.columns)
    img_dir = images_dir(data_dir)
    images: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    reject_splits: list[str | None] = []
    warnings: Counter[str] = Counter()
    first_row: dict[str, int] = {}
    for i, rec in enumerate(frame.iter_rows(named=True)):
        n_fields = counts[i] if counts is not None else None
        if all(v is None for v in rec.values()) and n_fields in (0, None):
            warnings["blank_lines"] += 1
            continue
        bad, ok = _check_row(i, rec, n_fields, width)
        filename = rec.get("filename")
        image_id = filename.split(".")[0] if filename else None
        if bad is None and image_id in first_row:
            bad = Reject(i, image_id, filename, RejectReason.DUPLICATE_ID.value,
                         f"image_id {image_id!r} already given by row {first_row[image_id]}")
        if bad is None and not (img_dir / filename).is_file():
            bad = Reject(i, image_id, filename, RejectReason.MISSING_FILE.value,
                         f"{IMAGES_DIRNAME}/{filename} does not exist")
        if bad is not None:
            rejects.append(bad.as_dict())
            split = rec.get("split")
            reject_splits.append(split.strip() if isinstance(split, str) and split.strip() else None)
            continue
        if ok["blank"]:
            warnings["blank_captions_removed"] += ok["blank"]
        if not _sentids_ok(rec.get("sentids")):
            warnings["invalid_sentids"] += 1
        first_row[image_id] = i
        images.append({"row": i, "image_id": image_id, "filename": filename,
                       "path": str((img_dir / filename).resolve()), "split": ok["split"],
                       "captions": ok["captions"]})
    for r in rejects[:_LOG_FIRST]:
        logger.warning("rejected row %s (%s): %s: %s", r["row"], r["filename"], r["reason"], r["detail"])
    if len(rejects) > _LOG_FIRST:
        logger.warning("... and %d more rejected rows (see rejects.jsonl)", len(rejects) - _LOG_FIRST)
    if warnings:
        logger.warning("kept with repairs in %s: %s", path, dict(warnings))
    return AnnotationScan(data_dir, images, rejects, frame.height, dict(sorted(warnings.items())),
                          reject_splits)
