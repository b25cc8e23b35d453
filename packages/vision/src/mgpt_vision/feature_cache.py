"""Encode images once with a frozen encoder; store features as parquet keyed by image_id.

The file carries the encoder's fingerprint (name, tokens, weights hash, preprocessing, dtype) in its
parquet metadata; loading with another encoder raises :class:`StaleFeatureCacheError`, and building
over a stale file re-encodes everything, so stale features are never reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from PIL import Image
from tqdm.auto import tqdm

from mgpt_vision.paths import cache_dir
from mgpt_vision.preprocess import preprocess_images
from mgpt_vision.vision_encoder import VisionEncoder
from mgpt_vision.weights import state_dict_hash

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
META_FINGERPRINT = "mgpt_vision.fingerprint"
META_SHAPE = "mgpt_vision.token_shape"

ImageSource = Image.Image | str | os.PathLike


class StaleFeatureCacheError(RuntimeError):
    """The cache was written by a different encoder (or preprocessing / weights)."""


def encoder_fingerprint(encoder: VisionEncoder) -> dict[str, Any]:
    """What the cached features depend on; any change makes a cache stale."""
    param = next(encoder.module.parameters(), None)
    return {
        "format": FORMAT_VERSION,
        "name": encoder.name,
        "num_tokens": encoder.num_tokens,
        "token_dim": encoder.token_dim,
        "preprocess": encoder.preprocess.as_dict(),
        "weights_hash": state_dict_hash(encoder.module),
        "dtype": str(param.dtype) if param is not None else None,
    }


def fingerprint_key(fingerprint: Mapping[str, Any]) -> str:
    """Short stable hash of a fingerprint (for file names)."""
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]


def default_feature_cache_path(encoder: VisionEncoder, dataset: str) -> Path:
    """``cache_dir()/features/<dataset>-<encoder>-<fingerprint key>.parquet``."""
    key = fingerprint_key(encoder_fingerprint(encoder))
    return cache_dir() / "features" / f"{dataset}-{encoder.name}-{key}.parquet"


def read_fingerprint(path: Path) -> dict[str, Any] | None:
    """The fingerprint stored in a cache file (None if the file has none)."""
    raw = pl.read_parquet_metadata(path).get(META_FINGERPRINT)
    return None if raw is None else json.loads(raw)


def _diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    return [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _open_image(src: ImageSource, image_id: str) -> Image.Image:
    if isinstance(src, Image.Image):
        return src
    try:
        with Image.open(src) as im:
            im.load()
            return im.copy()
    except Exception as e:
        raise ValueError(f"cannot read image {image_id!r} from {src}: {e}") from e


def _write_atomic(df: pl.DataFrame, path: Path, metadata: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        df.write_parquet(tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _existing_rows(path: Path, fingerprint: Mapping[str, Any]) -> pl.DataFrame | None:
    if not path.is_file():
        return None
    stored = read_fingerprint(path)
    if stored != fingerprint:
        changed = _diff(stored or {}, fingerprint)
        log.warning("feature cache %s is stale (changed: %s); re-encoding everything", path, changed)
        return None
    return pl.read_parquet(path)


def build_feature_cache(
    encoder: VisionEncoder,
    items: Iterable[tuple[str, ImageSource]],
    path: Path,
    *,
    batch_size: int = 16,
    progress: bool = True,
    total: int | None = None,
) -> Path:
    """Encode ``(image_id, PIL image or path)`` items not yet cached and (re)write ``path``.

    Rows of a cache with the same fingerprint are kept (only new ids are encoded); a stale cache
    is replaced. The encoder must be frozen. Returns ``path``.
    """
    if encoder.trainable:
        raise ValueError("feature cache needs a frozen encoder: features of a trainable one go stale")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    path = Path(path)
    fingerprint = encoder_fingerprint(encoder)
    old = _existing_rows(path, fingerprint)
    done = set(old["image_id"].to_list()) if old is not None else set()
    ids: list[str] = []
    chunks: list[np.ndarray] = []
    batch_ids: list[str] = []
    batch_imgs: list[Image.Image] = []

    def flush() -> None:
        pixels = preprocess_images(batch_imgs, encoder.preprocess).to(encoder.device)
        with torch.no_grad():
            feats = encoder.module(pixels)
        chunks.append(feats.float().cpu().reshape(len(batch_imgs), -1).numpy())
        ids.extend(batch_ids)
        bar.update(len(batch_imgs))
        batch_ids.clear()
        batch_imgs.clear()

    with tqdm(total=total, desc=f"encoding ({encoder.name})", unit="img", disable=not progress) as bar:
        for image_id, src in items:
            image_id = str(image_id)
            if image_id in done:
                continue
            done.add(image_id)
            batch_ids.append(image_id)
            batch_imgs.append(_open_image(src, image_id))
            if len(batch_imgs) == batch_size:
                flush()
        if batch_imgs:
            flush()
    if not ids and old is not None:
        log.info("feature cache %s already holds all %d images", path, old.height)
        return path
    width = encoder.num_tokens * encoder.token_dim
    feats = np.concatenate(chunks) if chunks else np.zeros((0, width), np.float32)
    new = pl.DataFrame(
        {"image_id": ids, "features": feats},
        schema={"image_id": pl.String, "features": pl.Array(pl.Float32, width)},
    )
    df = new if old is None else pl.concat([old, new])
    _write_atomic(
        df,
        path,
        {
            META_FINGERPRINT: json.dumps(fingerprint, sort_keys=True),
            META_SHAPE: json.dumps([encoder.num_tokens, encoder.token_dim]),
        },
    )
    log.info("feature cache %s: encoded %d, total %d images", path, len(ids), df.height)
    return path


def load_feature_cache(
    path: Path,
    expected: VisionEncoder | Mapping[str, Any],
    *,
    ids: Sequence[str] | None = None,
) -> dict[str, torch.Tensor]:
    """image_id → features [num_tokens, token_dim] (fp32), after checking the fingerprint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no feature cache at {path}")
    want = encoder_fingerprint(expected) if isinstance(expected, VisionEncoder) else dict(expected)
    stored = read_fingerprint(path)
    if stored != want:
        raise StaleFeatureCacheError(
            f"feature cache {path} was written by another encoder setup (changed: "
            f"{_diff(stored or {}, want)}); rebuild it with build_feature_cache"
        )
    shape = json.loads(pl.read_parquet_metadata(path)[META_SHAPE])
    df = pl.read_parquet(path)
    if ids is not None:
        wanted = [str(i) for i in ids]
        df = df.filter(pl.col("image_id").is_in(wanted))
        missing = sorted(set(wanted) - set(df["image_id"].to_list()))
        if missing:
            raise KeyError(f"{len(missing)} image ids not in feature cache {path} (first: {missing[:5]})")
    feats = torch.from_numpy(df["features"].to_numpy().reshape(df.height, *shape).copy())
    return dict(zip(df["image_id"].to_list(), feats, strict=True))


def stack_features(features: Mapping[str, torch.Tensor], ids: Sequence[str]) -> torch.Tensor:
    """Features of ``ids`` in order → [B, num_tokens, token_dim]."""
    missing = [i for i in ids if i not in features]
    if missing:
        raise KeyError(f"{len(missing)} image ids have no cached features (first: {missing[:5]})")
    return torch.stack([features[i] for i in ids])
