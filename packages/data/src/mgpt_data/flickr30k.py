"""Flickr30k-format folder → sample rows, as a list (local) or a Ray Dataset, with summary and rejects.

Rows: ``{row, image_id, path, split, captions, caption}`` — ``row`` is the CSV data-row index,
``captions`` every reference caption of the image (verbatim, for evaluation) and ``caption`` the
training target, normalised per ``caption_options`` (see :func:`mgpt_data.text.normalize_caption`):

* ``per_caption``: one row per caption, ``caption`` is that caption;
* ``grounded``: one row per image, ``caption`` is every caption joined with spaces (the seed's
  ``grounded_caption``).

Validation covers the whole CSV (duplicates across splits matter); with a ``split`` selected, the
rejects returned/written are those of that split's rows plus rows whose split is unknown.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from mgpt_data.annotations import AnnotationScan, scan_annotations
from mgpt_data.rejects import append_rejects, count_by_reason
from mgpt_data.settings import SampleMode
from mgpt_data.text import join_captions, normalize_caption

if TYPE_CHECKING:
    import ray.data

logger = logging.getLogger(__name__)

ROW_SCHEMA = {"row": pl.Int64, "image_id": pl.String, "path": pl.String, "split": pl.String,
              "captions": pl.List(pl.String), "caption": pl.String}
SAMPLE_MODES = ("per_caption", "grounded")


@dataclass
class Flickr30kRows:
    """The local (no-Ray) result of a read."""

    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    rejects: list[dict[str, Any]]


@dataclass
class Flickr30kRead:
    """The result of :func:`read_flickr30k`: a Ray Dataset of rows, plus summary and rejects."""

    dataset: ray.data.Dataset
    summary: dict[str, Any]
    rejects: list[dict[str, Any]]
    rows: list[dict[str, Any]]


def sample_rows(
    images: list[dict[str, Any]], sample_mode: SampleMode = "per_caption",
    caption_options: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Kept images → sample rows (see the module docstring)."""
    if sample_mode not in SAMPLE_MODES:
        raise ValueError(f"sample_mode must be one of {SAMPLE_MODES}, got {sample_mode!r}")
    opts = caption_options or {}
    rows = []
    for img in images:
        base = {"row": img["row"], "image_id": img["image_id"], "path": img["path"], "split": img["split"],
                "captions": list(img["captions"])}
        targets = img["captions"] if sample_mode == "per_caption" else [join_captions(img["captions"])]
        rows.extend({**base, "caption": normalize_caption(t, **opts)} for t in targets)
    return rows


def summarize(scan: AnnotationScan, rows: list[dict[str, Any]], rejects: list[dict[str, Any]], *,
              split: str | None, sample_mode: str) -> dict[str, Any]:
    """Counts for humans and the ``--json`` report."""
    per_split: dict[str, dict[str, int]] = {}
    for s, n in sorted(Counter(img["split"] for img in scan.images).items()):
        per_split[s] = {"images": n, "samples": 0}
    for r in rows:
        per_split[r["split"]]["samples"] += 1
    selected = [img for img in scan.images if split is None or img["split"] == split]
    return {
        "data_dir": str(scan.data_dir), "split": split, "sample_mode": sample_mode,
        "csv_rows": scan.csv_rows, "images": len(selected), "samples": len(rows),
        "rejected": count_by_reason(rejects), "rejected_total": len(rejects),
        "per_split": per_split, "warnings": dict(scan.warnings),
    }


def read_local(
    data_dir: str | Path, *, split: str | None = None, sample_mode: SampleMode = "per_caption",
    caption_options: dict[str, Any] | None = None, rejects_path: str | Path | None = None,
) -> Flickr30kRows:
    """Validate the folder, select ``split`` (None = all) and build rows; append rejects if asked."""
    scan = scan_annotations(data_dir)
    images = [img for img in scan.images if split is None or img["split"] == split]
    if split is not None and not images:
        logger.warning("split %r has no images in %s (splits present: %s)", split, data_dir,
                       sorted({img["split"] for img in scan.images}))
    rows = sample_rows(images, sample_mode, caption_options)
    rejects = scan.rejects_for(split)
    if rejects_path is not None and rejects:
        append_rejects(rejects_path, rejects)
    return Flickr30kRows(rows, summarize(scan, rows, rejects, split=split, sample_mode=sample_mode), rejects)


def read_rows(data_dir: str | Path, **kwargs: Any) -> list[dict[str, Any]]:
    """The rows alone (same keyword arguments as :func:`read_local`)."""
    return read_local(data_dir, **kwargs).rows


def rows_to_dataset(rows: list[dict[str, Any]], *, block_rows: int = 256) -> ray.data.Dataset:
    """Rows → Ray Dataset (polars → Arrow, blocks of at most ``block_rows`` rows).

    Sets ``preserve_order`` on this process's DataContext, so the rows (and everything mapped from
    them) come out in this order.
    """
    import ray.data

    ray.data.DataContext.get_current().execution_options.preserve_order = True
    table = pl.DataFrame(rows, schema=ROW_SCHEMA)
    table = table.to_arrow(compat_level=pl.CompatLevel.oldest())
    n_blocks = max(1, math.ceil(table.num_rows / block_rows))
    step = max(1, math.ceil(table.num_rows / n_blocks))
    return ray.data.from_arrow([table.slice(i * step, step) for i in range(n_blocks)])


def read_flickr30k(
    data_dir: str | Path, *, split: str | None = None, sample_mode: SampleMode = "per_caption",
    rejects_path: str | Path | None = None, caption_options: dict[str, Any] | None = None,
    block_rows: int = 256,
) -> Flickr30kRead:
    """Validate on the driver (`scan_annotations`), then hand the kept rows to Ray Data (polars → Arrow)."""
    local = read_local(data_dir, split=split, sample_mode=sample_mode, caption_options=caption_options,
                       rejects_path=rejects_path)
    dataset = rows_to_dataset(local.rows, block_rows=block_rows)
    return Flickr30kRead(dataset, local.summary, local.rejects, local.rows)
