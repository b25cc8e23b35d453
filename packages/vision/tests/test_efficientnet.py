"""The Lite0/Lite2 conversion against the weights' own reference architecture, on real photos."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import skimage.data
import timm
import torch
from efficientnet_lite_pytorch import EfficientNet
from PIL import Image

from mgpt_data import pixels_from_images
from mgpt_vision import WeightsMismatchError
from mgpt_vision.efficientnet import (
    build_efficientnet_lite,
    convert_lite_state_dict,
    converted_lite_weights,
    package_weights_path,
)

PHOTOS = {"chelsea": 285, "coffee": 967}  # ImageNet: Egyptian cat, espresso
EXTRA = ["astronaut", "rocket"]


def _photos() -> tuple[list[str], list[Image.Image]]:
    names = [*PHOTOS, *EXTRA]
    return names, [Image.fromarray(getattr(skimage.data, n)()) for n in names]


def _reference(variant: str) -> EfficientNet:
    """The package's own architecture with its .pth loaded strictly (weights_only)."""
    ref = EfficientNet.from_name(variant.replace("efficientnet_", "efficientnet-"))
    sd = torch.load(package_weights_path(variant), map_location="cpu", weights_only=True)
    ref.load_state_dict(sd, strict=True)
    return ref.eval()


def _target(timm_name: str) -> OrderedDict[str, torch.Tensor]:
    with torch.device("meta"):
        return timm.create_model(timm_name).state_dict()


def test_every_key_mapped_with_equal_shapes() -> None:
    source = torch.load(package_weights_path("efficientnet_lite0"), map_location="cpu", weights_only=True)
    target = _target("tf_efficientnet_lite0")
    converted = convert_lite_state_dict(source, target)
    assert list(converted) == list(target)
    assert len(converted) == len(source) == 296  # 247 parameters + 49 BN step counters
    for (sk, sv), (tk, tv) in zip(source.items(), converted.items(), strict=True):
        assert tv is sv and tuple(tv.shape) == tuple(target[tk].shape), (sk, tk)


def test_lite0_matches_reference_on_photos(lite0) -> None:
    names, images = _photos()
    x = torch.from_numpy(pixels_from_images(images, lite0.preprocess.as_dict()))
    timm_model = lite0.module.backbone.module  # the classifier is kept, so logits compare directly
    with torch.no_grad():
        ours, ref = timm_model(x), _reference("efficientnet_lite0")(x)
    assert (ours - ref).abs().max().item() < 1e-4
    assert ours.argmax(1).tolist() == ref.argmax(1).tolist()
    for i, name in enumerate(names):
        if name in PHOTOS:
            assert ours[i].argmax().item() == PHOTOS[name], name


def test_lite2_matches_reference_top1() -> None:
    enc = build_efficientnet_lite("efficientnet_lite2", num_tokens=9)
    assert enc.preprocess.image_size == 260 and enc.name == "tf_efficientnet_lite2"
    names, images = _photos()
    x = torch.from_numpy(pixels_from_images(images, enc.preprocess.as_dict()))
    with torch.no_grad():
        ours, ref = enc.module.backbone.module(x), _reference("efficientnet_lite2")(x)
    assert (ours - ref).abs().max().item() < 1e-4
    assert ours[0].argmax().item() == PHOTOS["chelsea"]
    assert enc.module(x).shape == (len(images), 9, 1280)


def test_preprocessing_is_x_minus_127_over_128(lite0) -> None:
    spec = lite0.preprocess
    assert spec.image_size == 224 and spec.interpolation == "bicubic"
    img = Image.new("RGB", (5, 5), (0, 127, 255))
    x = torch.from_numpy(pixels_from_images([img], spec.as_dict()))[0, :, 0, 0]
    assert torch.allclose(x, torch.tensor([-127 / 128, 0.0, 1.0]), atol=1e-5)


def test_mismatched_state_dict_raises_clearly() -> None:
    source = torch.load(package_weights_path("efficientnet_lite0"), map_location="cpu", weights_only=True)
    target = _target("tf_efficientnet_lite0")
    dropped = OrderedDict(list(source.items())[:-1])
    with pytest.raises(WeightsMismatchError, match=r"first unmapped timm key is #295 'classifier.bias'"):
        convert_lite_state_dict(dropped, target)
    extra = OrderedDict([*source.items(), ("_extra.weight", torch.zeros(3))])
    with pytest.raises(WeightsMismatchError, match=r"first unmapped package key is #296 '_extra.weight'"):
        convert_lite_state_dict(extra, target)
    bad = OrderedDict(source)
    bad["_conv_stem.weight"] = torch.zeros(16, 3, 3, 3)
    with pytest.raises(WeightsMismatchError, match=r"tensor #0: package '_conv_stem.weight' \(16, 3, 3, 3\)"):
        convert_lite_state_dict(bad, target)
    lite2 = torch.load(package_weights_path("efficientnet_lite2"), map_location="cpu", weights_only=True)
    with pytest.raises(WeightsMismatchError, match="tensor #"):
        convert_lite_state_dict(lite2, target)


def test_converted_weights_cached_once_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MGPT_CACHE_DIR", str(tmp_path))
    sd, cached = converted_lite_weights("efficientnet_lite0")
    assert cached.parent == tmp_path / "encoders" and cached.suffix == ".safetensors"
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]  # no temp files left
    mtime = cached.stat().st_mtime_ns

    def no_reconvert(*args, **kwargs):
        raise AssertionError("the .pth was read again instead of the cache")

    monkeypatch.setattr(torch, "load", no_reconvert)
    sd2, cached2 = converted_lite_weights("efficientnet_lite0")
    assert cached2 == cached and cached.stat().st_mtime_ns == mtime
    assert all(torch.equal(sd[k], sd2[k]) for k in sd)


def test_damaged_cache_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MGPT_CACHE_DIR", str(tmp_path))
    _, cached = converted_lite_weights("efficientnet_lite0")
    cached.write_bytes(b"not a safetensors file")
    sd, again = converted_lite_weights("efficientnet_lite0")
    assert again == cached and len(sd) == 296
    assert build_efficientnet_lite(num_tokens=1).num_tokens == 1


def test_prepare_encoder_weights_fills_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mgpt_vision import VisionSettings, prepare_encoder_weights

    monkeypatch.setenv("MGPT_CACHE_DIR", str(tmp_path))
    prepare_encoder_weights(VisionSettings(encoder="tiny"))
    assert not (tmp_path / "encoders").exists()
    prepare_encoder_weights(VisionSettings())
    assert [p.name.split("-")[0] for p in (tmp_path / "encoders").iterdir()] == ["tf_efficientnet_lite0"]
