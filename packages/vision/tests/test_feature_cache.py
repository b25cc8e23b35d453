"""Feature cache layout: content hashes, shard columns round trip, fingerprint folders, stale refusal."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from mgpt_vision import (
    StaleFeatureCacheError,
    VisionSettings,
    build_encoder,
    cached_hashes,
    content_hash,
    decode_rows,
    encode_rows,
    encoder_fingerprint,
    feature_cache_dir,
    load_features,
    open_cache_dir,
)


def _tiny(**kw):
    return build_encoder(VisionSettings(encoder="tiny", num_tokens=4, **kw))


def _write_shard(folder: Path, name: str, hashes: list[str], feats: torch.Tensor) -> None:
    pq.write_table(pa.table(encode_rows(hashes, feats)), folder / f"{name}.parquet")


def test_content_hash_is_sha256_of_the_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    a.write_bytes(b"same bytes")
    b.write_bytes(b"same bytes")
    assert content_hash(a) == content_hash(b) == hashlib.sha256(b"same bytes").hexdigest()
    b.write_bytes(b"rewritten")  # a rewritten image gets a new key, so never stale features
    assert content_hash(b) != content_hash(a)


def test_shard_columns_round_trip_and_load(tmp_path: Path) -> None:
    fp = encoder_fingerprint(_tiny(), "bf16")
    folder = open_cache_dir(feature_cache_dir(fp, tmp_path), fp)
    feats = torch.randn(3, 4, 32)
    _write_shard(folder, "part-0", ["h0", "h1", "h2"], feats)
    _write_shard(folder, "part-1", ["h3"], feats[:1] * 2)
    assert cached_hashes(folder) == {"h0", "h1", "h2", "h3"}
    back = decode_rows(encode_rows(["x"], feats[:1]), fp)
    assert torch.equal(back["x"], feats[0])
    got = load_features(folder, fp, ["h2", "h3"])
    assert set(got) == {"h2", "h3"} and torch.equal(got["h2"], feats[2])
    assert torch.equal(got["h3"], feats[0] * 2)
    with pytest.raises(KeyError, match="not in feature cache"):
        load_features(folder, fp, ["h0", "nope"])
    with pytest.raises(FileNotFoundError):
        load_features(tmp_path / "none", fp, ["h0"])


def test_every_setup_change_is_another_folder_and_a_mismatch_is_refused(tmp_path: Path) -> None:
    base = encoder_fingerprint(_tiny(), "fp32")
    others = [encoder_fingerprint(_tiny(), "bf16"),  # precision is part of the setup
              encoder_fingerprint(build_encoder(VisionSettings(encoder="tiny", num_tokens=1)), "fp32")]
    retrained = _tiny()
    with torch.no_grad():
        next(retrained.module.parameters()).add_(1.0)
    others.append(encoder_fingerprint(retrained, "fp32"))
    folders = {feature_cache_dir(f, tmp_path) for f in [base, *others]}
    assert len(folders) == 4 and feature_cache_dir(base, tmp_path) == feature_cache_dir(dict(base), tmp_path)
    folder = open_cache_dir(feature_cache_dir(base, tmp_path), base)
    with pytest.raises(StaleFeatureCacheError, match="weights_hash"):
        open_cache_dir(folder, others[2])
    assert open_cache_dir(folder, base) == folder  # the same setup opens it again
