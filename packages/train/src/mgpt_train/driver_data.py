"""Driver-side data work done once before any worker starts: the data folder and the split's rows."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mgpt_train.run_settings import RunSettings

logger = logging.getLogger(__name__)


def ensure_dataset(settings: RunSettings) -> Path:
    """The data folder, writing the synthetic scene set first if it is absent (and allowed)."""
    from mgpt_data import ensure_data_dir

    d = settings.data
    return ensure_data_dir(d.data_dir, d.synthetic_images, seed=d.seed, image_size=d.synthetic_image_size)


def read_split_rows(
    settings: RunSettings, split: str, *, sample_mode: str | None = None, rejects_path: Path | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows of one split (no Ray) and the read summary; CSV rejects appended to ``rejects_path``."""
    from mgpt_data import read_local

    d = settings.data
    read = read_local(d.data_dir, split=split, sample_mode=sample_mode or d.sample_mode,
                      caption_options=d.caption_options(), rejects_path=rejects_path)
    if not read.rows:
        raise ValueError(f"split {split!r} of {d.data_dir} has no usable rows (summary: {read.summary})")
    return read.rows, read.summary
