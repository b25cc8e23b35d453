"""Read and validate ``flickr_annotations_30k.csv``: every record is kept or rejected with a reason.

The format as users have it: columns ``raw`` (a JSON list of ~5 caption strings), ``sentids`` (a JSON
list of ints), ``split`` (train/val/test), ``filename`` (``1000092795.jpg``) and ``img_id`` (int);
the images live in ``flickr30k-images/``. ``image_id`` is ``filename.split(".")[0]``, exactly as the
seed's prep script derives it.

Records come from :class:`~mgpt_data.csv_records.CsvRecords` (Python's csv module over bytes decoded
with ``surrogateescape``, not polars: see there why), so one bad row never costs the others. Each
record ends in exactly one place: a kept image, or a reject with a reason
(:class:`~mgpt_data.rejects.RejectReason`) whose detail starts with its physical line (``line 7: ...``,
the header is line 1); repairs that keep a row (blank captions removed from a list, unparsable
``sentids``, blank lines) are counted in ``warnings``. Checks, in order: CSV syntax, bytes that are
not UTF-8, fields over ``MAX_FIELD_CHARS``, field count, required values and a plain file name
(all ``malformed_row``), ``raw`` as a JSON list of at most ``MAX_CAPTIONS`` strings
(``invalid_json``), non-blank captions (``empty_captions``), repeated ``image_id`` (``duplicate_id``:
the first valid row wins), and the image file: ``missing_file``, ``not_a_file`` (a directory, FIFO,
...), ``outside_data_dir`` (a symlink that resolves outside ``flickr30k-images/``; link the whole
folder instead). A record that fails its own checks while spanning several lines (an unclosed quote)
gives up only its first line and reading resumes on the next. Decoding happens later
(:mod:`mgpt_data.preprocess`).
"""

from __future__ import annotations

import errno
import json
import logging
import stat
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mgpt_data.csv_records import CsvRecord, CsvRecords, printable, undecodable_at
from mgpt_data.rejects import Reject, RejectReason

logger = logging.getLogger(__name__)

CSV_NAME = "flickr_annotations_30k.csv"
IMAGES_DIRNAME = "flickr30k-images"
COLUMNS = ("raw", "sentids", "split", "filename", "img_id")
REQUIRED_COLUMNS = ("raw", "split", "filename")
MAX_CAPTIONS = 100  # per image; Flickr30k has 5, COCO 5-7. More is a malformed row, not 1000s of samples
_LOG_FIRST = 10  # rejects logged one by one; the rest are only counted (they are all in rejects.jsonl)


class Flickr30kFormatError(ValueError):
    """The folder or CSV cannot be read as Flickr30k format at all (not a per-row problem)."""


@dataclass
class AnnotationScan:
    """The validated CSV: kept images (in CSV order), rejects and counts.

    ``row`` (in images and rejects) indexes ``row_lines``: the (first, last) physical line of each
    record, kept or rejected, in file order; ``csv_rows`` is their number (blank lines excluded).
    """

    data_dir: Path
    images: list[dict[str, Any]]  # {row, image_id, filename, path, split, captions}
    rejects: list[dict[str, Any]]
    csv_rows: int
    warnings: dict[str, int] = field(default_factory=dict)
    reject_splits: list[str | None] = field(default_factory=list)  # the split each reject's row named
    row_lines: list[tuple[int, int]] = field(default_factory=list)

    def rejects_for(self, split: str | None) -> list[dict[str, Any]]:
        """Rejects of rows in ``split`` plus rows whose split is unknown (all of them for ``None``)."""
        if split is None:
            return list(self.rejects)
        return [r for r, s in zip(self.rejects, self.reject_splits, strict=True) if s in (split, None)]


def csv_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / CSV_NAME


def images_dir(data_dir: str | Path) -> Path:
    return Path(data_dir) / IMAGES_DIRNAME


def _open_records(path: Path) -> tuple[CsvRecords, dict[str, int]]:
    """The CSV's records and ``{column: index}``; folder-level problems raise Flickr30kFormatError."""
    if not path.is_file():
        what = "is a directory, not a CSV file" if path.is_dir() else "not found"
        raise Flickr30kFormatError(
            f"{path} {what}: a Flickr30k-format folder holds {CSV_NAME} and {IMAGES_DIRNAME}/ "
            "(`uv run apps/cli prepare --synthetic 600 --data-dir DIR` writes a synthetic one)"
        )
    try:
        records = CsvRecords.from_file(path)
    except OSError as e:
        raise Flickr30kFormatError(f"cannot read {path}: {e.strerror or e}") from e
    header = records.header
    if header is None:
        raise Flickr30kFormatError(f"{path} is empty: expected a header {','.join(COLUMNS)}")
    if header.error is not None:
        raise Flickr30kFormatError(f"{path} line 1 (the header): {header.error}")
    columns = [printable(c).strip() for c in header.fields]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise Flickr30kFormatError(
            f"{path} lacks required column(s) {missing}; found {columns}, expected {list(COLUMNS)}"
        )
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise Flickr30kFormatError(f"{path} repeats column(s) {repeated} in its header")
    return records, {c: i for i, c in enumerate(columns)}


def parse_captions(raw: str) -> tuple[list[str] | None, str]:
    """``raw`` → (captions, "") or (None, why it is not a JSON list of at most MAX_CAPTIONS strings)."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, int digit limit, deep nesting
        return None, f"raw is not valid JSON: {type(e).__name__}: {printable(str(e))[:200]}"
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        return None, (f"raw must be a JSON list of strings, got {type(value).__name__}: "
                      f"{printable(raw[:80])!r}")
    if len(value) > MAX_CAPTIONS:
        return None, f"raw holds {len(value)} captions, over the limit of {MAX_CAPTIONS} per image"
    for k, caption in enumerate(value):
        at = undecodable_at(caption)
        if at is not None:
            return None, f"caption {k} has a lone surrogate escape at character {at} (not valid Unicode)"
    return value, ""


def sentids_ok(value: str | None) -> bool:
    """``sentids`` is blank or a JSON list of ints (never raises)."""
    if value is None or value.strip() == "":
        return True
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        return False
    return isinstance(parsed, list) and all(isinstance(i, int) for i in parsed)


def _check_record(rec: CsvRecord, columns: dict[str, int]) -> tuple[RejectReason, str] | dict[str, Any]:
    """A record's own checks → (reason, why) or the parsed values {filename, captions, blank, split}."""
    if rec.error is not None:
        return RejectReason.MALFORMED_ROW, rec.error
    if len(rec.fields) != len(columns):
        return RejectReason.MALFORMED_ROW, f"{len(rec.fields)} fields, the header has {len(columns)}"
    value = {c: rec.fields[i] for c, i in columns.items()}
    for col in REQUIRED_COLUMNS:
        if not value[col].strip():
            return RejectReason.MALFORMED_ROW, f"missing value for column {col!r}"
    filename = value["filename"]
    if Path(filename).name != filename or filename in (".", "..") or "\x00" in filename \
            or not filename.split(".")[0]:
        return RejectReason.MALFORMED_ROW, f"filename {filename!r} is not a plain file name"
    captions, why = parse_captions(value["raw"])
    if captions is None:
        return RejectReason.INVALID_JSON, why
    kept = [c for c in captions if c.strip()]
    if not kept:
        return RejectReason.EMPTY_CAPTIONS, f"{len(captions)} caption(s), none with text"
    return {"filename": filename, "captions": kept, "blank": len(captions) - len(kept),
            "split": value["split"].strip(), "sentids": value.get("sentids")}


def image_file_problem(img_dir: Path, filename: str) -> tuple[RejectReason, str] | None:
    """Why ``img_dir/filename`` is not a regular image file inside ``img_dir`` (None when it is)."""
    path = img_dir / filename
    shown = f"{IMAGES_DIRNAME}/{filename}"
    try:
        st = path.stat()  # follows symlinks
    except FileNotFoundError:
        dangling = " (a symlink to a missing file)" if path.is_symlink() else ""
        return RejectReason.MISSING_FILE, f"{shown} does not exist{dangling}"
    except OSError as e:
        gone = e.errno in (errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTDIR)
        return (RejectReason.MISSING_FILE if gone else RejectReason.UNREADABLE_IMAGE,
                f"{shown} cannot be looked up: {e.strerror}")
    if stat.S_ISDIR(st.st_mode):
        return RejectReason.NOT_A_FILE, f"{shown} is a directory, not an image file"
    if not stat.S_ISREG(st.st_mode):
        return RejectReason.NOT_A_FILE, f"{shown} is not a regular file (a FIFO, socket or device)"
    if path.is_symlink():
        target, root = path.resolve(), img_dir.resolve()
        if not target.is_relative_to(root):
            return RejectReason.OUTSIDE_DATA_DIR, (
                f"{shown} is a symlink to {target}, outside {IMAGES_DIRNAME}/ (copy the file in, or "
                f"make {IMAGES_DIRNAME} itself the link)")
    return None


class _Scan:
    """Accumulates one pass over the records (see :func:`scan_annotations`)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.img_dir = images_dir(data_dir)
        self.images: list[dict[str, Any]] = []
        self.rejects: list[dict[str, Any]] = []
        self.reject_splits: list[str | None] = []
        self.row_lines: list[tuple[int, int]] = []
        self.warnings: Counter[str] = Counter()
        self.first_line: dict[str, int] = {}  # image_id → line of the row that gave it

    def reject(self, rec: CsvRecord, reason: RejectReason, why: str, filename: str | None,
               split: str | None) -> None:
        filename = printable(filename) if filename else None
        image_id = filename.split(".")[0] if filename else None
        self.rejects.append(Reject(len(self.row_lines), image_id, filename, reason.value,
                                   f"line {rec.first_line}: {printable(why)}").as_dict())
        self.reject_splits.append(printable(split).strip() if split and split.strip() else None)
        self.row_lines.append((rec.first_line, rec.last_line))

    def add(self, rec: CsvRecord, columns: dict[str, int]) -> bool:
        """Keep or reject one record; False when it must be re-read from its second line."""
        named = {c: rec.fields[i] for c, i in columns.items() if i < len(rec.fields)}
        checked = _check_record(rec, columns)
        if isinstance(checked, tuple):
            reason, why = checked
            resync = rec.spans_lines  # likely an unclosed quote that swallowed the rows below: re-read them
            if resync:
                why += (f" (the record ran on to line {rec.last_line}; "
                        f"read again from line {rec.first_line + 1})")
                rec = replace(rec, last_line=rec.first_line)
            self.reject(rec, reason, why, named.get("filename"), named.get("split"))
            return not resync
        filename = checked["filename"]
        image_id = filename.split(".")[0]
        problem = None
        if image_id in self.first_line:
            problem = RejectReason.DUPLICATE_ID, (
                f"image_id {image_id!r} already given by line {self.first_line[image_id]}")
        problem = problem or image_file_problem(self.img_dir, filename)
        if problem is not None:
            self.reject(rec, *problem, filename, checked["split"])
            return True
        if checked["blank"]:
            self.warnings["blank_captions_removed"] += checked["blank"]
        if not sentids_ok(checked["sentids"]):
            self.warnings["invalid_sentids"] += 1
        self.first_line[image_id] = rec.first_line
        self.images.append({"row": len(self.row_lines), "image_id": image_id, "filename": filename,
                            "path": str((self.img_dir / filename).resolve()), "split": checked["split"],
                            "captions": checked["captions"]})
        self.row_lines.append((rec.first_line, rec.last_line))
        return True


def scan_annotations(data_dir: str | Path) -> AnnotationScan:
    """Validate every CSV record of a Flickr30k-format folder (no image is decoded here).

    Raises :class:`Flickr30kFormatError` only for the folder or the header; any row problem is a reject.
    """
    data_dir = Path(data_dir)
    path = csv_path(data_dir)
    records, columns = _open_records(path)
    scan = _Scan(data_dir)
    for rec in records:
        if rec.error is None and rec.fields == []:
            scan.warnings["blank_lines"] += 1
        elif not scan.add(rec, columns):
            records.resume_at(rec.first_line + 1)
    for r in scan.rejects[:_LOG_FIRST]:
        logger.warning("rejected row %s (%s): %s: %s", r["row"], r["filename"], r["reason"], r["detail"])
    if len(scan.rejects) > _LOG_FIRST:
        logger.warning("... and %d more rejected rows (see rejects.jsonl)", len(scan.rejects) - _LOG_FIRST)
    if scan.warnings:
        logger.warning("kept with repairs in %s: %s", path, dict(scan.warnings))
    return AnnotationScan(data_dir, scan.images, scan.rejects, len(scan.row_lines),
                          dict(sorted(scan.warnings.items())), scan.reject_splits, scan.row_lines)
