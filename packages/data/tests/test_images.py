"""The one image transform (mgpt_data.images): any mode → RGB, resize modes, uint8 → normalised pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mgpt_data.images import normalize_pixels, pixels_from_images, to_rgb

LITE = {"image_size": 8, "mean": [127 / 255] * 3, "std": [128 / 255] * 3}


def _rgb(color: tuple[int, int, int], size: tuple[int, int] = (10, 6)) -> Image.Image:
    return Image.new("RGB", size, color)


def _pixels(images, spec) -> torch.Tensor:
    return torch.from_numpy(pixels_from_images(images, spec))


def test_uint8_then_normalise_equals_the_float_formula() -> None:
    raw = np.arange(3 * 2 * 2, dtype=np.uint8).reshape(1, 3, 2, 2) * 20
    spec = {"image_size": 2, "mean": [0.1, 0.2, 0.3], "std": [0.5, 0.25, 2.0]}
    out = normalize_pixels(raw, spec)
    mean, std = np.array(spec["mean"]).reshape(3, 1, 1), np.array(spec["std"]).reshape(3, 1, 1)
    assert out.dtype == np.float32 and np.allclose(out[0], (raw[0] / 255.0 - mean) / std, atol=1e-6)


def test_the_uint8_table_gives_the_bits_of_float32_arithmetic_for_every_level_and_shape() -> None:
    spec = {"image_size": 4, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    every = np.broadcast_to(np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16), (2, 3, 16, 16))
    batch = np.random.default_rng(0).integers(0, 256, (5, 3, 4, 4), dtype=np.uint8)
    mean = np.asarray(spec["mean"], np.float32).reshape(3, 1, 1)
    std = np.asarray(spec["std"], np.float32).reshape(3, 1, 1)
    for raw in (every, batch, batch[0]):  # [B, 3, S, S] and one [3, S, S] image
        want = (raw.astype(np.float32) / np.float32(255.0) - mean) / std
        got = normalize_pixels(raw, spec)
        assert got.dtype == np.float32 and got.flags.c_contiguous and np.array_equal(got, want)
    assert np.array_equal(normalize_pixels(batch.astype(np.float32), spec), normalize_pixels(batch, spec))


def test_normalisation_values() -> None:
    x = _pixels([_rgb((127, 255, 0))], LITE)
    assert x.shape == (1, 3, 8, 8) and x.dtype == torch.float32
    assert torch.allclose(x[0, 0], torch.zeros(8, 8), atol=1e-6)  # (127-127)/128
    assert torch.allclose(x[0, 1], torch.full((8, 8), 128 / 128), atol=1e-5)  # (255-127)/128
    assert torch.allclose(x[0, 2], torch.full((8, 8), -127 / 128), atol=1e-5)


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "RGBA", "LA", "I;16", "1", "F"])
def test_any_mode_becomes_rgb(mode: str) -> None:
    img = _rgb((200, 40, 90)).convert(mode) if mode not in ("I;16", "F") else None
    if mode == "I;16":
        img = Image.fromarray(np.full((6, 10), 40000, dtype=np.uint16))
        assert img.mode == "I;16"
    if mode == "F":
        img = Image.fromarray(np.full((6, 10), 100.0, dtype=np.float32))
    rgb = to_rgb(img)
    assert rgb.mode == "RGB" and rgb.size == (10, 6)
    x = _pixels([img, _rgb((1, 2, 3))], LITE)
    assert x.shape == (2, 3, 8, 8) and torch.isfinite(x).all()


def test_grey_modes_keep_grey_level() -> None:
    grey = to_rgb(Image.new("L", (4, 4), 77))
    assert grey.getpixel((1, 1)) == (77, 77, 77)
    sixteen = to_rgb(Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16)))
    assert sixteen.getpixel((0, 0)) == (255, 255, 255)


def test_alpha_is_composited_over_white() -> None:
    img = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    img.putpixel((0, 0), (255, 0, 0, 255))
    rgb = to_rgb(img)
    assert rgb.getpixel((2, 2)) == (255, 255, 255)
    assert rgb.getpixel((0, 0)) == (255, 0, 0)
    pal = Image.new("P", (4, 4), 0)
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    pal.putpixel((1, 1), 1)
    pal.info["transparency"] = 0
    prgb = to_rgb(pal)
    assert prgb.getpixel((0, 0)) == (255, 255, 255) and prgb.getpixel((1, 1)) == (10, 200, 30)


def test_exif_orientation_is_applied_from_a_file_and_an_upright_image_is_not_copied(tmp_path) -> None:
    from PIL import ExifTags

    from mgpt_data.images import decode_image

    img = _rgb((0, 0, 255), size=(30, 10))
    img.paste((255, 0, 0), (0, 0, 10, 10))  # red: the left third of the stored pixels
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # "rotate 90 CW to display"
    img.save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    shown = decode_image(str(tmp_path / "rotated.jpg"))
    assert shown.size == (10, 30)
    assert shown.getpixel((5, 4))[0] > 200 and shown.getpixel((5, 25))[2] > 200  # stored left → shown top
    upright = _rgb((1, 2, 3))
    assert to_rgb(upright) is upright  # no orientation to apply: the eval transform copies nothing


def test_cmyk_colour_survives() -> None:
    rgb = to_rgb(_rgb((255, 0, 0)).convert("CMYK"))
    r, g, b = rgb.getpixel((0, 0))
    assert r > 200 and g < 50 and b < 50


def test_squash_vs_shorter_center_crop() -> None:
    # 30×10 image in vertical thirds 0 | 128 | 255: squash keeps all thirds, crop keeps the middle one
    arr = np.zeros((10, 30, 3), np.uint8)
    arr[:, 10:20], arr[:, 20:] = 128, 255
    img = Image.fromarray(arr)
    squash = {"image_size": 6, "mean": [0.0] * 3, "std": [1.0] * 3, "interpolation": "nearest"}
    crop = {**squash, "resize_mode": "shorter_center_crop"}
    sq = _pixels([img], squash)[0, 0] * 255
    cr = _pixels([img], crop)[0, 0] * 255
    assert sq[0].round().tolist() == [0, 0, 128, 128, 255, 255]
    assert torch.all(cr.round() == 128)
    tall = Image.fromarray(np.zeros((30, 10, 3), np.uint8))
    assert _pixels([tall], crop).shape == (1, 3, 6, 6)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="at least one image"):
        _pixels([], LITE)
    with pytest.raises(TypeError, match="image #1"):
        _pixels([_rgb((0, 0, 0)), np.zeros((4, 4, 3))], LITE)  # type: ignore[list-item]
