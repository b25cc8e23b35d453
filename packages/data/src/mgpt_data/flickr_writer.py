"""Write a Flickr30k-format folder (``flickr_annotations_30k.csv`` + ``flickr30k-images/``) from records,
and MiniGPT-4's stage-2 ``filter_cap.json`` beside it.

What `read_flickr30k` and ``mgpt prepare`` read, so generated data (``mgpt curate``) goes through the
same ingestion as any other set. The folder is written into a temporary sibling and renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from mgpt_data.annotations import COLUMNS, CSV_NAME, IMAGES_DIRNAME

FILTER_CAP_NAME = "filter_cap.json"  # upstream MiniGPT-4's cc_sbu_align/filter_cap.json


@dataclass(frozen=True)
class FlickrRecord:
    """One image of the folder: its id (the file's stem), its source file, captions and split."""

    image_id: str
    source: Path
    captions: Sequence[str]
    split: str

    @property
    def filename(self) -> str:
        return f"{self.image_id}{Path(self.source).suffix.lower() or '.jpg'}"


def write_annotations_csv(path: Path, rows: Iterable[dict[str, str]]) -> Path:
    """The CSV with the Flickr30k columns (``raw``, ``sentids``, ``split``, ``filename``, ``img_id``)."""
    pl.DataFrame(list(rows), schema={k: pl.String for k in COLUMNS}).write_csv(path)
    return path


def _csv_rows(records: Sequence[FlickrRecord]) -> list[dict[str, str]]:
    rows, sentid = [], 0
    for index, record in enumerate(records):
        captions = [str(c) for c in record.captions]
        sentids = list(range(sentid, sentid + len(captions)))
        rows.append({"raw": json.dumps(captions), "sentids": json.dumps(sentids), "split": record.split,
                     "filename": record.filename, "img_id": str(index)})
        sentid += len(captions)
    return rows


def write_flickr30k_dir(
    dest: Path | str, records: Sequence[FlickrRecord], *, overwrite: bool = False
) -> Path:
    """Copy every record's image to ``dest/flickr30k-images/<image_id><ext>`` and write the CSV.

    ``dest`` must be absent or empty unless ``overwrite`` (then it is replaced as a whole). Raises
    ``ValueError`` for repeated ids, empty caption lists or ids that are not plain file names.
    """
    dest = Path(dest)
    seen: set[str] = set()
    for record in records:
        if not record.image_id or "/" in record.image_id or record.image_id.startswith("."):
            raise ValueError(f"image_id {record.image_id!r} is not a plain file name")
        if record.image_id in seen:
            raise ValueError(f"image_id {record.image_id!r} is given twice")
        if not any(str(c).strip() for c in record.captions):
            raise ValueError(f"image {record.image_id!r} has no caption")
        seen.add(record.image_id)
    if dest.exists() and any(dest.iterdir()) and not overwrite:
        raise FileExistsError(f"{dest} exists and is not empty (pass overwrite to replace it)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    tmp.chmod(0o755)
    try:
        (tmp / IMAGES_DIRNAME).mkdir()
        for record in records:
            shutil.copyfile(record.source, tmp / IMAGES_DIRNAME / record.filename)
        write_annotations_csv(tmp / CSV_NAME, _csv_rows(records))
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old.", dir=dest.parent))
            os.replace(dest, old / "set")
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def write_filter_cap_json(path: Path | str, annotations: Iterable[tuple[str, str]]) -> Path:
    """Upstream's stage-2 annotation file: ``{"annotations": [{"image_id", "caption"}, ...]}``."""
    path = Path(path)
    payload = {"annotations": [{"image_id": str(i), "caption": str(c)} for i, c in annotations]}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
