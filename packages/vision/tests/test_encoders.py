"""Token shapes and pooling, frozen-ness, tiny and generic timm encoders through build_encoder."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from mgpt_vision import Freezable, TokenPool, VisionSettings, WeightsMismatchError, build_encoder


def _images(n: int, size: tuple[int, int] = (40, 30)) -> list[Image.Image]:
    return [Image.new("RGB", size, (20 * i, 100, 200 - 10 * i)) for i in range(n)]


def _pixels(images: list[Image.Image], enc) -> torch.Tensor:
    """The encoder's input through the one image transform (mgpt_data)."""
    from mgpt_data import pixels_from_images

    return torch.from_numpy(pixels_from_images(images, enc.preprocess.as_dict()))


# ---------------------------------------------------------------- pooling
def test_token_pool_grid_and_sequence() -> None:
    feats = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    out = TokenPool(4)(feats)
    assert out.shape == (2, 4, 3)
    assert torch.allclose(out[0, 0], feats[0, :, :2, :2].mean(dim=(1, 2)))  # top-left quadrant
    assert torch.allclose(out[1, 3], feats[1, :, 2:, 2:].mean(dim=(1, 2)))  # bottom-right
    assert torch.equal(TokenPool(None)(feats), feats.flatten(2).transpose(1, 2))
    nhwc = TokenPool(4, channels_last=True)(feats.permute(0, 2, 3, 1))
    assert torch.allclose(nhwc, out)
    seq = torch.randn(2, 1 + 16, 8)  # CLS + 4×4 patches
    assert torch.equal(TokenPool(None, num_prefix_tokens=1)(seq), seq)
    pooled = TokenPool(1, num_prefix_tokens=1)(seq)
    assert torch.allclose(pooled[:, 0], seq[:, 1:].mean(1), atol=1e-6)
    with pytest.raises(ValueError, match="not a square grid"):
        TokenPool(4)(torch.randn(1, 15, 8))
    with pytest.raises(ValueError, match="perfect square"):
        TokenPool(8)


@pytest.mark.parametrize(("num_tokens", "expected"), [(16, 16), (1, 1), (49, 49), (None, 49)])
def test_lite0_token_shapes(num_tokens: int | None, expected: int) -> None:
    enc = build_encoder(VisionSettings(num_tokens=num_tokens))
    assert (enc.num_tokens, enc.token_dim, enc.name) == (expected, 1280, "tf_efficientnet_lite0")
    out = enc.encode(_pixels(_images(2), enc))
    assert out.shape == (2, expected, 1280) and out.dtype == torch.float32


def test_lite0_pooled_tokens_are_averages_of_the_grid(lite0) -> None:
    full = build_encoder(VisionSettings(num_tokens=None))
    x = torch.randn(1, 3, 224, 224)
    grid = full.module(x).transpose(1, 2).reshape(1, 1280, 7, 7)
    assert torch.allclose(
        lite0.module(x), nn.functional.adaptive_avg_pool2d(grid, 4).flatten(2).transpose(1, 2), atol=1e-5
    )


def test_too_many_tokens_for_the_grid() -> None:
    with pytest.raises(ValueError, match=r"num_tokens=64 exceeds the 7×7 feature grid"):
        build_encoder(VisionSettings(num_tokens=64))
    assert build_encoder(VisionSettings(num_tokens=64, image_size=256)).num_tokens == 64


# ---------------------------------------------------------------- freezing
class Parent(nn.Module):
    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(1280, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x)).sum()


def _bn(module: nn.Module) -> nn.BatchNorm2d:
    return next(m for m in module.modules() if isinstance(m, nn.BatchNorm2d))


def test_frozen_stays_eval_and_has_no_grad(lite0) -> None:
    parent = Parent(lite0.module)
    parent.train()
    assert parent.training and parent.head.training
    assert not any(m.training for m in lite0.module.backbone.modules())
    assert not any(p.requires_grad for p in lite0.module.parameters())
    bn = _bn(lite0.module)
    stats = bn.running_mean.clone()
    x = torch.randn(2, 3, 224, 224)
    assert not lite0.module(x).requires_grad
    parent(x).backward()
    assert torch.equal(bn.running_mean, stats)  # BN statistics untouched
    assert all(p.grad is None for p in lite0.module.parameters())
    assert parent.head.weight.grad is not None


def test_unfrozen_encoder_really_trains() -> None:
    enc = build_encoder(VisionSettings(freeze_vision=False, num_tokens=1))
    assert enc.trainable
    parent = Parent(enc.module).train()
    assert _bn(enc.module).training
    stats = _bn(enc.module).running_mean.clone()
    parent(torch.randn(2, 3, 224, 224)).backward()
    stem = enc.module.backbone.module.conv_stem.weight
    assert stem.grad is not None and stem.grad.abs().sum() > 0
    assert not torch.equal(_bn(enc.module).running_mean, stats)
    parent.eval()
    assert not _bn(enc.module).training


def test_freezable_toggle() -> None:
    lin = nn.Linear(3, 3)
    f = Freezable(lin, frozen=True)
    f.train()
    assert not f.training and not lin.weight.requires_grad
    f.set_frozen(False)
    f.train()
    assert f.training and lin.weight.requires_grad
    assert f(torch.randn(1, 3)).requires_grad


# ---------------------------------------------------------------- tiny
def test_tiny_is_seeded_and_small() -> None:
    a = build_encoder(VisionSettings(encoder="tiny", num_tokens=4))
    b = build_encoder(VisionSettings(encoder="tiny", num_tokens=4))
    assert (a.num_tokens, a.token_dim, a.preprocess.image_size) == (4, 32, 32)
    for (ka, va), (kb, vb) in zip(a.module.state_dict().items(), b.module.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    torch.manual_seed(123)  # the global RNG does not leak into the build
    c = build_encoder(VisionSettings(encoder="tiny", num_tokens=4))
    assert torch.equal(c.module.backbone.module.layers[0].weight, a.module.backbone.module.layers[0].weight)
    out = a.encode(_pixels(_images(3), a))
    assert out.shape == (3, 4, 32)
    assert build_encoder(VisionSettings(encoder="tiny", num_tokens=None)).num_tokens == 16
    assert a.summary()["params"] < 20_000


def test_meta_builds_have_no_data() -> None:
    for s in (VisionSettings(), VisionSettings(encoder="tiny", num_tokens=4)):
        enc = build_encoder(s, meta=True)
        assert all(p.is_meta for p in enc.module.parameters())
        assert enc.details["meta"] is True
    assert build_encoder(VisionSettings(), meta=True).num_tokens == 16


def test_dtype_setting() -> None:
    enc = build_encoder(VisionSettings(encoder="tiny", dtype="bfloat16", num_tokens=4))
    assert all(p.dtype == torch.bfloat16 for p in enc.module.parameters())
    assert enc.encode(_pixels(_images(1), enc)).dtype == torch.bfloat16


# ---------------------------------------------------------------- generic timm
def _save(model: nn.Module, path: Path) -> Path:
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    else:
        torch.save(model.state_dict(), path)
    return path


def test_timm_vit_tokens_kept_or_pooled(tmp_path: Path) -> None:
    ref = timm.create_model("test_vit").eval()
    weights = _save(ref, tmp_path / "vit.safetensors")
    full = build_encoder(
        VisionSettings(encoder="timm", timm_name="test_vit", weights_path=weights, num_tokens=None)
    )
    side = full.preprocess.image_size // 16
    assert (full.num_tokens, full.token_dim) == (1 + side * side, ref.num_features)
    x = torch.randn(2, 3, full.preprocess.image_size, full.preprocess.image_size)
    with torch.no_grad():
        assert torch.allclose(full.module(x), ref.forward_features(x), atol=1e-6)
    pooled = build_encoder(
        VisionSettings(encoder="timm", timm_name="test_vit", weights_path=weights, num_tokens=4)
    )
    assert pooled.module(x).shape == (2, 4, ref.num_features)
    assert pooled.preprocess.resize_mode == "shorter_center_crop"  # timm's crop_mode "center"


def test_timm_cnn_from_torch_file(tmp_path: Path) -> None:
    ref = timm.create_model("test_efficientnet", num_classes=7).eval()
    weights = _save(ref, tmp_path / "cnn.pth")
    enc = build_encoder(
        VisionSettings(
            encoder="timm",
            timm_name="test_efficientnet",
            weights_path=weights,
            num_tokens=4,
            resize_mode="squash",
        )
    )
    assert enc.module.backbone.module.num_classes == 7  # classifier size read from the file
    assert enc.preprocess.resize_mode == "squash"
    out = enc.encode(_pixels(_images(2), enc))
    assert out.shape == (2, 4, ref.num_features)


def test_timm_errors(tmp_path: Path) -> None:
    weights = _save(timm.create_model("test_vit"), tmp_path / "vit.safetensors")
    with pytest.raises(WeightsMismatchError, match="missing"):
        build_encoder(VisionSettings(encoder="timm", timm_name="test_vit2", weights_path=weights))
    with pytest.raises(ValueError, match="unknown timm model 'test_vitt'; did you mean"):
        build_encoder(VisionSettings(encoder="timm", timm_name="test_vitt", weights_path=weights))
    with pytest.raises(ValueError, match="needs weights_path"):
        build_encoder(VisionSettings(encoder="timm", timm_name="test_vit"))
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        build_encoder(
            VisionSettings(encoder="timm", timm_name="test_vit", weights_path=tmp_path / "nope.pth")
        )
