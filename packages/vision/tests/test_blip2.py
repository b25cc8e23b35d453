"""BLIP-2 encoders from a tiny random snapshot on disk, and the real-size meta build."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import Blip2Model

from mgpt_vision import VisionSettings, WeightsMismatchError, build_encoder, tiny_blip2_model


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Blip2Model]:
    model = tiny_blip2_model(patch_size=7, num_query_tokens=4)  # non-zero queries tell them apart
    path = tmp_path_factory.mktemp("blip2_snapshot")
    model.save_pretrained(path)
    return path, model


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_qformer_encoder_matches_hf(snapshot: tuple[Path, Blip2Model]) -> None:
    path, ref = snapshot
    enc = build_encoder(VisionSettings(encoder="blip2", weights_path=path))
    assert (enc.num_tokens, enc.token_dim) == (4, 32)
    assert enc.details["vision_tokens"] == 17 and enc.details["tensors_loaded"] > 0
    assert enc.preprocess.image_size == 28 and enc.preprocess.interpolation == "bicubic"
    assert enc.preprocess.mean == (0.48145466, 0.4578275, 0.40821073)
    x = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        expected = ref.get_qformer_features(x)
    out = enc.module(x)
    assert out.shape == (2, 4, 32)
    assert torch.allclose(out, expected, atol=1e-5)
    assert not enc.trainable


def test_noqformer_groups_four_consecutive_tokens(snapshot: tuple[Path, Blip2Model]) -> None:
    path, ref = snapshot
    enc = build_encoder(VisionSettings(encoder="blip2_noqformer", weights_path=path))
    assert (enc.num_tokens, enc.token_dim) == (4, 128)  # 16 patches / 4, 32 * 4
    x = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        tokens = ref.vision_model(x).last_hidden_state  # [2, 17, 32], post_layernorm = ln_vision
    out = enc.module(x)
    assert out.shape == (2, 4, 128)
    assert torch.allclose(out[:, 1, 32:64], tokens[:, 1 + 4 + 1], atol=1e-5)  # group 1, member 1 = patch 5
    assert torch.allclose(out, tokens[:, 1:].reshape(2, 4, 128), atol=1e-5)
    assert "qformer_queries" not in enc.details


def test_trainable_qformer_with_frozen_vision(snapshot: tuple[Path, Blip2Model]) -> None:
    path, _ = snapshot
    enc = build_encoder(VisionSettings(encoder="blip2", weights_path=path, freeze_qformer=False))
    enc.module.train()
    assert not enc.module.vision.training and enc.module.qformer.training
    enc.module(torch.randn(1, 3, 28, 28)).sum().backward()
    queries = enc.module.qformer.module.query_tokens
    assert queries.requires_grad and queries.grad is not None
    assert all(p.grad is None and not p.requires_grad for p in enc.module.vision.parameters())


def test_sharded_snapshot(tmp_path: Path, snapshot: tuple[Path, Blip2Model]) -> None:
    _, ref = snapshot
    ref.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    enc = build_encoder(VisionSettings(encoder="blip2", weights_path=tmp_path))
    x = torch.randn(1, 3, 28, 28)
    with torch.no_grad():
        assert torch.allclose(enc.module(x), ref.get_qformer_features(x), atol=1e-5)


def test_missing_key_fails_clearly(tmp_path: Path, snapshot: tuple[Path, Blip2Model]) -> None:
    path = _copy(snapshot[0], tmp_path / "snap")
    sd = load_file(str(path / "model.safetensors"))
    del sd["qformer.layernorm.weight"]
    save_file(sd, str(path / "model.safetensors"))
    with pytest.raises(WeightsMismatchError, match=r"1 missing \(first: \['qformer.layernorm.weight'\]\)"):
        build_encoder(VisionSettings(encoder="blip2", weights_path=path))
    # the vision-only variant does not need the Q-Former weights
    assert build_encoder(VisionSettings(encoder="blip2_noqformer", weights_path=path)).num_tokens == 4


def test_corrupted_shape_and_unexpected_key(tmp_path: Path, snapshot: tuple[Path, Blip2Model]) -> None:
    path = _copy(snapshot[0], tmp_path / "snap")
    sd = load_file(str(path / "model.safetensors"))
    sd["vision_model.post_layernorm.weight"] = torch.ones(31)
    sd["vision_model.extra.weight"] = torch.ones(2)
    save_file(sd, str(path / "model.safetensors"))
    with pytest.raises(WeightsMismatchError) as err:
        build_encoder(VisionSettings(encoder="blip2_noqformer", weights_path=path))
    assert "vision_model.post_layernorm.weight: file (31,) vs model (32,)" in str(err.value)
    assert "unexpected (first: ['vision_model.extra.weight'])" in str(err.value)


def test_bad_snapshot_dirs(tmp_path: Path, snapshot: tuple[Path, Blip2Model]) -> None:
    with pytest.raises(ValueError, match="needs weights_path"):
        build_encoder(VisionSettings(encoder="blip2"))
    with pytest.raises(FileNotFoundError, match="no config.json"):
        build_encoder(VisionSettings(encoder="blip2", weights_path=tmp_path))
    path = _copy(snapshot[0], tmp_path / "snap")
    (path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no BLIP-2 weights"):
        build_encoder(VisionSettings(encoder="blip2", weights_path=path))
    cfg = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**cfg, "model_type": "llava"}))
    with pytest.raises(ValueError, match="expected 'blip-2'"):
        build_encoder(VisionSettings(encoder="blip2", weights_path=path))


def test_real_size_meta_build() -> None:
    enc = build_encoder(VisionSettings(encoder="blip2"), meta=True)
    d = enc.summary()
    assert (d["vision_tokens"], d["vision_width"], d["vision_depth"], d["vision_heads"]) == (
        257,
        1408,
        39,
        16,
    )
    assert (enc.num_tokens, enc.token_dim) == (32, 768)
    assert (d["qformer_queries"], d["qformer_width"], d["qformer_depth"]) == (32, 768, 12)
    assert d["vision_params"] == 985_952_256  # EVA ViT-g/14 minus its last block, + ln_vision
    assert (
        d["qformer_params"] == 105_162_240
    )  # bert-base Q-Former (cross-attn every 2nd layer) + 32×768 queries
    assert d["params"] == d["vision_params"] + d["qformer_params"] and d["trainable_params"] == 0
    assert enc.module(torch.empty(2, 3, 224, 224, device="meta")).shape == (2, 32, 768)
    noq = build_encoder(VisionSettings(encoder="blip2_noqformer"), meta=True)
    assert (noq.num_tokens, noq.token_dim) == (64, 5632)
    assert noq.module(torch.empty(1, 3, 224, 224, device="meta")).shape == (1, 64, 5632)


def test_half_precision_vision_keeps_qformer_fp32(snapshot: tuple[Path, Blip2Model]) -> None:
    path, ref = snapshot
    enc = build_encoder(VisionSettings(encoder="blip2", weights_path=path, dtype="bfloat16"))
    assert all(p.dtype == torch.bfloat16 for p in enc.module.vision.parameters())
    assert all(p.dtype == torch.float32 for p in enc.module.qformer.parameters())
    x = torch.randn(2, 3, 28, 28)
    out = enc.module(x)
    assert out.dtype == torch.float32 and out.shape == (2, 4, 32)
    with torch.no_grad():
        assert torch.allclose(out, ref.get_qformer_features(x), atol=0.1)  # bf16 vision, close not equal


def test_meta_build_from_snapshot_config(snapshot: tuple[Path, Blip2Model]) -> None:
    enc = build_encoder(VisionSettings(encoder="blip2", weights_path=snapshot[0]), meta=True)
    assert (enc.num_tokens, enc.token_dim, enc.details["tensors_loaded"]) == (4, 32, None)
    assert all(p.is_meta for p in enc.module.parameters())


def test_index_cannot_name_shards_outside_the_snapshot(tmp_path: Path) -> None:
    from mgpt_vision.blip2 import snapshot_weight_files

    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a": "model-00001.safetensors", "b": "../../elsewhere/evil.safetensors"}}))
    with pytest.raises(ValueError, match=r"names shard\(s\) outside the snapshot folder: "
                                         r"\['../../elsewhere/evil.safetensors'\]"):
        snapshot_weight_files(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "m.safetensors"}}))
    assert snapshot_weight_files(tmp_path) == [tmp_path / "m.safetensors"]
