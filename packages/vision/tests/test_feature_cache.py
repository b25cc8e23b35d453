"""Feature cache: round trip, incremental build, fingerprint invalidation."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import torch
from PIL import Image

from mgpt_vision import (
    StaleFeatureCacheError,
    VisionSettings,
    build_encoder,
    build_feature_cache,
    default_feature_cache_path,
    encoder_fingerprint,
    load_feature_cache,
    stack_features,
)


def _tiny(**kw):
    return build_encoder(VisionSettings(encoder="tiny", num_tokens=4, **kw))


def _items(tmp_path: Path, n: int) -> list[tuple[str, object]]:
    items: list[tuple[str, object]] = []
    for i in range(n):
        img = Image.new("RGB", (36 + i, 30), (25 * i, 255 - 20 * i, 7 * i))
        if i % 2:  # half as files on disk, half as PIL images
            p = tmp_path / f"img{i}.png"
            img.save(p)
            items.append((f"id{i}", p))
        else:
            items.append((f"id{i}", img))
    return items


def _direct(enc, items) -> dict[str, torch.Tensor]:
    imgs = [src if isinstance(src, Image.Image) else Image.open(src) for _, src in items]
    return dict(zip([i for i, _ in items], enc.encode(imgs), strict=True))


def test_round_trip(tmp_path: Path) -> None:
    enc = _tiny()
    items = _items(tmp_path, 5)
    path = build_feature_cache(enc, items, tmp_path / "cache" / "f.parquet", batch_size=2, progress=False)
    feats = load_feature_cache(path, enc)
    assert sorted(feats) == [f"id{i}" for i in range(5)]
    direct = _direct(enc, items)
    for k, v in feats.items():
        assert v.shape == (4, 32) and v.dtype == torch.float32
        assert torch.allclose(v, direct[k], atol=1e-6)
    stacked = stack_features(feats, ["id3", "id0"])
    assert stacked.shape == (2, 4, 32) and torch.equal(stacked[0], feats["id3"])
    sub = load_feature_cache(path, enc, ids=["id1", "id4"])
    assert sorted(sub) == ["id1", "id4"]
    with pytest.raises(KeyError, match="not in feature cache"):
        load_feature_cache(path, enc, ids=["id1", "nope"])
    with pytest.raises(KeyError, match="no cached features"):
        stack_features(feats, ["nope"])
    assert [p.name for p in path.parent.iterdir()] == ["f.parquet"]  # no temp files left


def test_incremental_build_encodes_only_new_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    enc = _tiny()
    items = _items(tmp_path, 4)
    path = tmp_path / "f.parquet"
    build_feature_cache(enc, items[:2], path, progress=False)
    calls: list[int] = []
    forward = enc.module.forward
    monkeypatch.setattr(enc.module, "forward", lambda x: calls.append(len(x)) or forward(x))
    build_feature_cache(enc, items, path, progress=False)
    assert calls == [2]  # only id2, id3 were encoded
    build_feature_cache(enc, items, path, progress=False)
    assert calls == [2]
    assert pl.read_parquet(path).height == 4


def test_stale_cache_is_never_reused(tmp_path: Path) -> None:
    enc = _tiny()
    items = _items(tmp_path, 3)
    path = build_feature_cache(enc, items, tmp_path / "f.parquet", progress=False)
    other_tokens = build_encoder(VisionSettings(encoder="tiny", num_tokens=1))
    with pytest.raises(StaleFeatureCacheError, match=r"changed: \['num_tokens'\]"):
        load_feature_cache(path, other_tokens)
    retrained = _tiny()
    with torch.no_grad():
        retrained.module.backbone.module.layers[0].bias.add_(0.1)
    with pytest.raises(StaleFeatureCacheError, match="weights_hash"):
        load_feature_cache(path, retrained)
    other_prep = _tiny(resize_mode="shorter_center_crop")
    with pytest.raises(StaleFeatureCacheError, match="preprocess"):
        load_feature_cache(path, encoder_fingerprint(other_prep))
    # building with the changed encoder rewrites everything under the new fingerprint
    build_feature_cache(retrained, items[:1], path, progress=False)
    feats = load_feature_cache(path, retrained)
    assert list(feats) == ["id0"]
    assert torch.allclose(feats["id0"], _direct(retrained, items[:1])["id0"], atol=1e-6)


def test_refuses_trainable_encoder_and_bad_images(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="frozen encoder"):
        build_feature_cache(_tiny(freeze_vision=False), [], tmp_path / "f.parquet", progress=False)
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read image 'x'"):
        build_feature_cache(_tiny(), [("x", tmp_path / "bad.jpg")], tmp_path / "f.parquet", progress=False)
    with pytest.raises(FileNotFoundError, match="no feature cache"):
        load_feature_cache(tmp_path / "none.parquet", _tiny())


def test_default_path_changes_with_the_encoder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MGPT_CACHE_DIR", str(tmp_path))
    a = default_feature_cache_path(_tiny(), "flickr")
    b = default_feature_cache_path(build_encoder(VisionSettings(encoder="tiny", num_tokens=1)), "flickr")
    assert a.parent == tmp_path / "features" and a.name.startswith("flickr-tiny_cnn-") and a != b
    assert default_feature_cache_path(_tiny(), "flickr") == a
