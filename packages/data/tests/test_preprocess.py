"""ImagePreprocessor / ImageChecker: any mode → RGB, the spec's resize + normalisation, rejects, crops."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mgpt_data.batches import rows_to_batch
from mgpt_data.images import normalize_pixels
from mgpt_data.preprocess import ImageChecker, ImagePreprocessor


def batch_of(paths, captions=None):
    return rows_to_batch(
        [
            {
                "row": i,
                "image_id": Path(p).stem,
                "path": str(p),
                "caption": (captions or {}).get(i, "c"),
                "captions": ["c", "d"],
            }
            for i, p in enumerate(paths)
        ]
    )


def test_any_mode_becomes_rgb_pixels(tmp_path: Path, spec):
    made = {}
    made["l"] = Image.new("L", (40, 30), 128)
    made["p"] = Image.new("RGB", (40, 30), (0, 200, 0)).convert("P")
    made["la"] = Image.new("LA", (40, 30), (10, 0))
    made["i16"] = Image.fromarray(np.full((30, 40), 65535, np.uint16))
    rgba = Image.new("RGBA", (40, 30), (0, 0, 0, 0))  # fully transparent black → white
    made["rgba"] = rgba
    ptrans = Image.new("P", (40, 30), 0)
    ptrans.info["transparency"] = 0
    made["ptrans"] = ptrans
    paths = []
    for name, im in made.items():
        paths.append(tmp_path / f"{name}.png")
        im.save(paths[-1])
    paths.append(tmp_path / "cmyk.jpg")
    Image.new("CMYK", (40, 30), (0, 255, 255, 0)).save(paths[-1], quality=95)  # red
    out = ImagePreprocessor(spec)(batch_of(paths))
    assert out["pixels"].dtype == np.uint8  # what travels; the consumer normalises
    px = normalize_pixels(out["pixels"], spec)
    assert px.shape == (len(paths), 3, 32, 32) and px.dtype == np.float32
    white = (1.0 - 0.5) / 0.25
    by_name = dict(zip([p.stem for p in paths], px, strict=True))
    np.testing.assert_allclose(by_name["rgba"], white, atol=1e-5)
    np.testing.assert_allclose(by_name["la"], white, atol=1e-5)  # alpha 0 over white
    np.testing.assert_allclose(by_name["i16"], white, atol=1e-5)  # 16-bit full scale → 255
    np.testing.assert_allclose(by_name["l"], (128 / 255 - 0.5) / 0.25, atol=1e-5)
    assert by_name["p"][1].mean() > by_name["p"][0].mean() + 1  # green stays green
    red = by_name["cmyk"].mean(axis=(1, 2))
    assert red[0] > 1.5 and red[1] < -1.5 and red[2] < -1.5
    assert not np.isnan(px).any()


def test_bad_images_are_dropped_with_reasons(tmp_path: Path, spec, write_jpeg):
    good = write_jpeg(tmp_path / "good.jpg")
    trunc = write_jpeg(tmp_path / "trunc.jpg", size=(200, 160))
    trunc.write_bytes(trunc.read_bytes()[:-20])
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\x00" * 100)
    missing = tmp_path / "missing.jpg"
    pre = ImagePreprocessor(spec)
    out = pre(batch_of([trunc, good, missing, junk]))
    assert list(out["image_id"]) == ["good"] and list(out["row"]) == [1]
    assert out["pixels"].shape == (1, 3, 32, 32) and len(out["captions"]) == 1
    reasons = {r["filename"]: (r["row"], r["reason"]) for r in pre.rejects}
    assert reasons == {
        "trunc.jpg": (0, "unreadable_image"),
        "missing.jpg": (2, "missing_file"),
        "junk.jpg": (3, "unreadable_image"),
    }
    empty = pre(batch_of([missing]))
    assert empty["pixels"].shape == (0, 3, 32, 32) and len(empty["image_id"]) == 0


def test_placeholders_keep_batch_boundaries(tmp_path: Path, spec, write_jpeg):
    good = write_jpeg(tmp_path / "good.jpg")
    missing = tmp_path / "missing.jpg"
    pre = ImagePreprocessor(spec, placeholders=True)
    out = pre(batch_of([good, missing, good]))
    assert out["valid"].tolist() == [True, False, True] and list(out["row"]) == [0, 1, 2]
    assert out["pixels"].shape == (3, 3, 32, 32) and not out["pixels"][1].any()
    np.testing.assert_array_equal(out["pixels"][0], ImagePreprocessor(spec)(batch_of([good]))["pixels"][0])
    assert [(r["row"], r["reason"]) for r in pre.rejects] == [(1, "missing_file")]


def test_the_plan_epoch_reseeds_augmentation(tmp_path: Path, spec, write_jpeg):
    path = write_jpeg(tmp_path / "x.jpg", size=(64, 48))
    batch = batch_of([path, path])
    batch["epoch"] = np.asarray([0, 1])
    out = ImagePreprocessor(spec, augment=True, seed=3)(batch)["pixels"]
    assert not np.array_equal(out[0], out[1])  # epoch 1 draws another crop of the same row
    alone = batch_of([path])
    np.testing.assert_array_equal(ImagePreprocessor(spec, augment=True, seed=4)(alone)["pixels"][0], out[1])


def test_eval_resize_modes(tmp_path: Path, spec):
    wide = Image.new("RGB", (80, 40), (255, 0, 0))
    wide.paste((0, 0, 255), (0, 0, 10, 40))  # blue left strip: cropped away by a center crop
    wide.save(tmp_path / "wide.png")
    squash = normalize_pixels(ImagePreprocessor(spec)(batch_of([tmp_path / "wide.png"]))["pixels"][0], spec)
    crop = ImagePreprocessor({**spec, "resize_mode": "shorter_center_crop"})(
        batch_of([tmp_path / "wide.png"])
    )
    crop = normalize_pixels(crop["pixels"][0], spec)
    assert squash[2, :, :2].mean() > 1.5  # blue survives a squash
    np.testing.assert_allclose(crop[0], 2.0, atol=1e-5)  # only red left after the center crop
    np.testing.assert_allclose(crop[2], -2.0, atol=1e-5)


def test_augmentation_is_seeded_per_row(tmp_path: Path, spec, write_jpeg):
    paths = [write_jpeg(tmp_path / f"{i}.jpg", color=(30 * i, 90, 200), size=(64, 48)) for i in range(6)]
    a = ImagePreprocessor(spec, augment=True, seed=1)(batch_of(paths))["pixels"]
    b = ImagePreprocessor(spec, augment=True, seed=1)(batch_of(paths))["pixels"]
    c = ImagePreprocessor(spec, augment=True, seed=2)(batch_of(paths))["pixels"]
    plain = ImagePreprocessor(spec)(batch_of(paths))["pixels"]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, plain)
    # the same row alone in a batch gets the same crop (keys: image_id + caption, not batch position)
    alone = ImagePreprocessor(spec, augment=True, seed=1)(batch_of([paths[3]]))
    np.testing.assert_array_equal(alone["pixels"][0], a[3])
    other_caption = ImagePreprocessor(spec, augment=True, seed=1)(batch_of(paths, captions={3: "other"}))
    assert not np.array_equal(other_caption["pixels"][3], a[3])


def test_hflip_mirrors_some_rows_and_needs_augment(tmp_path: Path, spec, write_jpeg):
    paths = [write_jpeg(tmp_path / f"{i}.jpg", size=(64, 48)) for i in range(12)]
    crops = ImagePreprocessor(spec, augment=True, seed=4)(batch_of(paths))["pixels"]
    flips = ImagePreprocessor(spec, augment=True, seed=4, hflip=True)(batch_of(paths))["pixels"]
    mirrored = [
        not np.array_equal(f, c) and np.array_equal(f, c[..., ::-1])
        for f, c in zip(flips, crops, strict=True)
    ]
    same = [np.array_equal(f, c) for f, c in zip(flips, crops, strict=True)]
    assert all(m or s for m, s in zip(mirrored, same, strict=True)) and any(mirrored) and any(same)
    with pytest.raises(ValueError, match="augment=True"):
        ImagePreprocessor(spec, hflip=True)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"image_size": 32, "mean": [0.5] * 3}, "missing keys \\['std'\\]"),
        ({"image_size": 32, "mean": [0.5] * 3, "std": [0.5] * 3, "extra": 1}, "unknown keys \\['extra'\\]"),
        ({"image_size": 32, "mean": [0.5] * 3, "std": [0.5, 0.0, 0.5]}, "positive stds"),
        ({"image_size": 32, "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "cubic"}, "interpolation"),
        ({"image_size": 32, "mean": [0.5] * 3, "std": [0.5] * 3, "resize_mode": "pad"}, "resize_mode"),
    ],
)
def test_spec_is_validated(bad, message):
    with pytest.raises(ValueError, match=message):
        ImagePreprocessor(bad)


def test_checker_reports_sizes_and_rejects(tmp_path: Path, write_jpeg):
    good = write_jpeg(tmp_path / "g.jpg", size=(50, 30))
    checker = ImageChecker()
    out = checker(batch_of([good, tmp_path / "nope.jpg"]))
    assert list(out["width"]) == [50] and list(out["height"]) == [30] and list(out["image_id"]) == ["g"]
    assert [(r["image_id"], r["reason"]) for r in checker.rejects] == [("nope", "missing_file")]
