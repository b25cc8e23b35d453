"""Synthetic scenes: deterministic bytes, true captions, Flickr30k format, safe (re)writing."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mgpt_data.annotations import Flickr30kFormatError, scan_annotations
from mgpt_data.scene_captions import scene_captions, with_article
from mgpt_data.scenes import COLORS, SHAPES, sample_scene
from mgpt_data.synthetic import ensure_data_dir, split_labels, write_synthetic_scenes

POSITION_WORDS = {
    "left": ("left",),
    "right": ("right",),
    "top": ("top", "upper"),
    "bottom": ("bottom", "lower"),
    "center": ("center", "middle"),
}
SHAPE_WORDS = {"circle": ("circle", "round"), "square": ("square",), "triangle": ("triangle", "triangular")}


def files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes(tmp_path: Path):
    a = write_synthetic_scenes(tmp_path / "a", 24, seed=5, image_size=64, progress=False)
    b = write_synthetic_scenes(tmp_path / "b", 24, seed=5, image_size=64, progress=False)
    c = write_synthetic_scenes(tmp_path / "c", 24, seed=6, image_size=64, progress=False)
    fa, fb, fc = files(a), files(b), files(c)
    assert len(fa) == 24 + 2 and fa == fb
    assert fa["flickr_annotations_30k.csv"] != fc["flickr_annotations_30k.csv"]
    # image i depends on (seed, i) only: a bigger set starts with the same images
    d = write_synthetic_scenes(tmp_path / "d", 30, seed=5, image_size=64, progress=False)
    assert files(d)["flickr30k-images/1000003.jpg"] == fa["flickr30k-images/1000003.jpg"]


def test_flickr_format_and_splits(tmp_path: Path):
    d = write_synthetic_scenes(tmp_path / "s", 50, seed=1, image_size=64, progress=False)
    header = (d / "flickr_annotations_30k.csv").read_text().splitlines()[0]
    assert header == "raw,sentids,split,filename,img_id"
    scan = scan_annotations(d)
    assert scan.rejects == [] and scan.warnings == {} and len(scan.images) == 50
    assert sorted(i["split"] for i in scan.images).count("train") == 40
    assert {i["split"] for i in scan.images} == {"train", "val", "test"}
    assert all(len(i["captions"]) == 5 and len(set(i["captions"])) == 5 for i in scan.images)
    with Image.open(scan.images[0]["path"]) as im:
        assert im.size == (64, 64) and im.mode == "RGB"
    assert split_labels(10, 0).count("test") == 1 and split_labels(2, 0) == ["train", "train"]


def test_captions_are_true_of_the_scene(tmp_path: Path):
    d = write_synthetic_scenes(tmp_path / "s", 60, seed=3, image_size=96, progress=False)
    scenes = json.loads((d / "scenes.json").read_text())["scenes"]
    csv_captions = {i["image_id"]: i["captions"] for i in scan_annotations(d).images}
    n_two = 0
    for image_id, scene in scenes.items():
        assert scene["captions"] == csv_captions[image_id]
        objs = scene["objects"]
        n_two += len(objs) == 2
        assert scene["object_words"] == sorted({o["shape"] for o in objs})
        for caption in scene["captions"]:
            words = set(re.findall(r"[a-z]+", caption.lower()))
            for o in objs:
                assert o["color"] in words, caption
                assert words & set(SHAPE_WORDS[o["shape"]]), caption
                assert words & set(POSITION_WORDS[o["position"]]), caption
            assert words & set(COLORS) == {o["color"] for o in objs}, caption  # no colour that is not there
            present = {s for s in SHAPES if words & set(SHAPE_WORDS[s])}
            assert present == {o["shape"] for o in objs}, caption  # no shape that is not there
            if len(objs) == 1:
                assert "two" not in words, caption
    assert 5 < n_two < 40


def test_scene_pixels_show_the_colour_where_the_caption_says():
    rng = np.random.default_rng(0)
    for _ in range(20):
        scene = sample_scene(rng, 96)
        from mgpt_data.scenes import draw_scene

        arr = np.asarray(draw_scene(scene, 96)).astype(int)
        for o in scene.objects:
            x0, y0, x1, y1 = o.bbox
            cx, cy = (x0 + x1) // 2, (y0 + y1) // 2 + (y1 - y0) // 6  # inside every shape kind
            assert np.abs(arr[cy, cx] - COLORS[o.color]).max() <= 1, (o, arr[cy, cx])
        assert len(scene_captions(scene, rng)) == 5
    assert (
        with_article("orange square") == "an orange square" and with_article("red circle") == "a red circle"
    )


def test_never_overwrites_user_data(tmp_path: Path):
    user = tmp_path / "user"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a synthetic set"):
        write_synthetic_scenes(user, 3, progress=False, overwrite=True)
    with pytest.raises(Flickr30kFormatError, match="has files but no flickr_annotations_30k.csv"):
        ensure_data_dir(user, 3)
    assert (user / "notes.txt").read_text() == "mine"
    syn = write_synthetic_scenes(tmp_path / "syn", 3, progress=False)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_synthetic_scenes(syn, 4, progress=False)
    write_synthetic_scenes(syn, 4, progress=False, overwrite=True)
    assert len(scan_annotations(syn).images) == 4
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp dirs left


def test_ensure_data_dir(tmp_path: Path, clean_dir: Path):
    assert ensure_data_dir(clean_dir, None) == clean_dir  # has a CSV: untouched
    with pytest.raises(Flickr30kFormatError, match="synthetic_images is None"):
        ensure_data_dir(tmp_path / "none", None)
    d = ensure_data_dir(tmp_path / "new" / "set", 5, seed=2, image_size=48, progress=False)
    assert len(scan_annotations(d).images) == 5
