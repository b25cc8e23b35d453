"""Driver-side data work done once before any worker starts: data set, image check, feature cache."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
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


def check_images(
    rows: list[dict[str, Any]], *, rejects_path: Path | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Decode every distinct image once; drop rows whose image fails and reject it with a reason.

    Returns the kept rows and ``{image_id: decoded RGB PIL image}`` of the kept images.
    """
    from mgpt_data.images import ImageDecodeError, decode_image
    from mgpt_data.rejects import Reject, append_rejects

    images: dict[str, Any] = {}
    bad: dict[str, dict[str, Any]] = {}
    for row in rows:
        image_id = str(row["image_id"])
        if image_id in images or image_id in bad:
            continue
        try:
            images[image_id] = decode_image(str(row["path"]))
        except ImageDecodeError as e:
            bad[image_id] = Reject(row.get("row"), image_id, Path(str(row["path"])).name, e.reason,
                                   e.detail).as_dict()
    if bad:
        logger.warning("%d train images could not be decoded and were dropped (see rejects.jsonl)", len(bad))
        if rejects_path is not None:
            append_rejects(rejects_path, bad.values())
    kept = [r for r in rows if str(r["image_id"]) not in bad]
    if not kept:
        raise ValueError("no train image could be decoded")
    return kept, images


def dataset_key(data_dir: Path) -> str:
    """A cache-file prefix naming the data folder (its name + a hash of its absolute path)."""
    resolved = str(Path(data_dir).resolve())
    return f"{Path(data_dir).name}-{hashlib.sha256(resolved.encode()).hexdigest()[:8]}"


def cache_features(
    settings: RunSettings, images: dict[str, Any], *, progress: bool = True
) -> tuple[Path, dict[str, Any]]:
    """Encode each image once with the frozen encoder into mgpt_vision's feature cache (parquet).

    Already-cached images of the same encoder fingerprint are not re-encoded. Returns the cache
    path and the fingerprint workers check it against.
    """
    import torch

    from mgpt_vision import (
        build_encoder,
        build_feature_cache,
        default_feature_cache_path,
        encoder_fingerprint,
    )

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.train.seed)  # the random tiny encoder must equal the workers' one
        encoder = build_encoder(settings.vision)
    path = default_feature_cache_path(encoder, dataset_key(settings.data.data_dir))

    def items() -> Iterator[tuple[str, Any]]:
        yield from images.items()

    build_feature_cache(encoder, items(), path, batch_size=16, progress=progress, total=len(images))
    return path, encoder_fingerprint(encoder)
