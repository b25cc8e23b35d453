"""Frozen-encoder features on disk, keyed by image CONTENT (sha256 of the file bytes).

Layout: one folder per encoder setup, ``cache_dir()/features/<encoder>-<fingerprint key>/``, holding
``fingerprint.json`` (what the features depend on: encoder name, tokens, width, weights hash,
preprocessing, compute precision, format) and parquet shards ``*.parquet`` with columns
``content_hash`` (string) and ``features`` (the ``[num_tokens, token_dim]`` float32 array as raw
bytes). A rewritten image has a new hash, so it never gets stale features; any change of the
encoder setup is a new folder. Shards are written by Ray Data batch inference (``mgpt_train``)
into a temporary sub-folder and moved in whole, so a crash never leaves a half-written shard.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mgpt_vision.paths import cache_dir
from mgpt_vision.vision_encoder import VisionEncoder
from mgpt_vision.weights import state_dict_hash

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
FINGERPRINT_FILE = "fingerprint.json"
HASH_COLUMN, FEATURES_COLUMN = "content_hash", "features"


class StaleFeatureCacheError(RuntimeError):
    """The folder was written by a different encoder setup (weights, preprocessing, precision...)."""


def content_hash(path: str | Path, *, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes (streamed: memory does not grow with the file)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def encoder_fingerprint(encoder: VisionEncoder, precision: str = "fp32") -> dict[str, Any]:
    """What cached features depend on; ``precision`` is the autocast the encoder runs under."""
    param = next(encoder.module.parameters(), None)
    return {
        "format": FORMAT_VERSION,
        "name": encoder.name,
        "num_tokens": encoder.num_tokens,
        "token_dim": encoder.token_dim,
        "preprocess": encoder.preprocess.as_dict(),
        "weights_hash": state_dict_hash(encoder.module),
        "dtype": str(param.dtype) if param is not None else None,
        "precision": precision,
    }


def fingerprint_key(fingerprint: Mapping[str, Any]) -> str:
    """Short stable hash of a fingerprint (for folder names)."""
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]


def feature_cache_dir(fingerprint: Mapping[str, Any], root: Path | None = None) -> Path:
    """``<root or cache_dir()/features>/<encoder>-<fingerprint key>/``."""
    return (root or cache_dir() / "features") / f"{fingerprint['name']}-{fingerprint_key(fingerprint)}"


def open_cache_dir(folder: Path, fingerprint: Mapping[str, Any]) -> Path:
    """Create ``folder`` with its fingerprint, or check an existing one against ``fingerprint``."""
    folder = Path(folder)
    path = folder / FINGERPRINT_FILE
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored != dict(fingerprint):
            keys = sorted(set(stored) | set(fingerprint))
            changed = [k for k in keys if stored.get(k) != fingerprint.get(k)]
            raise StaleFeatureCacheError(f"feature cache {folder} belongs to another encoder setup "
                                         f"(changed: {changed})")
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{FINGERPRINT_FILE}.tmp"
    tmp.write_text(json.dumps(dict(fingerprint), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return folder


def shard_files(folder: Path) -> list[Path]:
    """The complete parquet shards of a cache folder (temporary sub-folders excluded)."""
    return sorted(p for p in Path(folder).glob("*.parquet") if p.is_file())


def cached_hashes(folder: Path) -> set[str]:
    """Content hashes already in the folder's shards."""
    import pyarrow.parquet as pq

    found: set[str] = set()
    for shard in shard_files(folder):
        found.update(pq.read_table(shard, columns=[HASH_COLUMN])[HASH_COLUMN].to_pylist())
    return found


def encode_rows(hashes: Iterable[str], features: torch.Tensor | np.ndarray) -> dict[str, np.ndarray]:
    """``[B, N, D]`` features → the shard columns (hash strings, float32 bytes per row)."""
    array = features.detach().float().cpu().numpy() if isinstance(features, torch.Tensor) else features
    array = np.ascontiguousarray(array, dtype=np.float32)
    blobs = np.empty(len(array), dtype=object)
    for i, row in enumerate(array):
        blobs[i] = row.tobytes()
    return {HASH_COLUMN: np.asarray(list(hashes), dtype=object), FEATURES_COLUMN: blobs}


def decode_rows(columns: Mapping[str, Any], fingerprint: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Shard columns (a batch of them) → ``{content_hash: [N, D] float32}``."""
    shape = (int(fingerprint["num_tokens"]), int(fingerprint["token_dim"]))
    out: dict[str, torch.Tensor] = {}
    for key, blob in zip(columns[HASH_COLUMN], columns[FEATURES_COLUMN], strict=True):
        out[str(key)] = torch.from_numpy(np.frombuffer(blob, dtype=np.float32).reshape(shape).copy())
    return out


def load_features(
    folder: Path, fingerprint: Mapping[str, Any], hashes: Iterable[str]
) -> dict[str, torch.Tensor]:
    """``{content_hash: features}`` for ``hashes`` read with pyarrow (no Ray); every hash must be there."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not (Path(folder) / FINGERPRINT_FILE).is_file():
        raise FileNotFoundError(f"no feature cache at {folder}")
    open_cache_dir(folder, fingerprint)  # raises StaleFeatureCacheError for another encoder setup
    wanted = sorted(set(hashes))
    out: dict[str, torch.Tensor] = {}
    for shard in shard_files(folder):
        table = pq.read_table(shard)
        table = table.filter(pc.is_in(table[HASH_COLUMN], value_set=pa.array(wanted, pa.string())))
        out.update(decode_rows(table.to_pydict(), fingerprint))
    missing = [h for h in wanted if h not in out]
    if missing:
        raise KeyError(f"{len(missing)} images are not in feature cache {folder} (first: {missing[:3]})")
    return out
