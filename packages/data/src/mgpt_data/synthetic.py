"""Write a synthetic scene set in Flickr30k format (CSV + JPEGs) plus ``scenes.json`` ground truth.

Deterministic: the same ``(n_images, seed, image_size)`` gives byte-identical files. Image ``i``
depends only on ``(seed, i)``; the ~80/10/10 train/val/test split is a seeded permutation. The set is
written to a temporary sibling folder and renamed into place, so a half-written set is never seen
and two processes racing to create it cannot mix files.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mgpt_data.annotations import CSV_NAME, IMAGES_DIRNAME, Flickr30kFormatError, csv_path
from mgpt_data.flickr_writer import write_annotations_csv
from mgpt_data.scene_captions import object_words, scene_captions
from mgpt_data.scenes import draw_scene, sample_scene

logger = logging.getLogger(__name__)

SCENES_NAME = "scenes.json"
FIRST_ID = 1_000_000  # numeric ids like Flickr's, never with a leading zero


def split_labels(n: int, seed: int) -> list[str]:
    """~80/10/10 train/val/test labels for ``n`` images (val/test at least 1 each from n = 3)."""
    n_eval = round(n * 0.1) if n >= 10 else (1 if n >= 3 else 0)
    labels = ["train"] * (n - 2 * n_eval) + ["val"] * n_eval + ["test"] * n_eval
    order = np.random.default_rng([seed % 2**32, 7]).permutation(n)
    return [labels[int(k)] for k in order]


def _write_set(folder: Path, n_images: int, seed: int, image_size: int, progress: bool) -> None:
    (folder / IMAGES_DIRNAME).mkdir(parents=True)
    splits = split_labels(n_images, seed)
    records, scenes = [], {}
    for i in tqdm(range(n_images), desc="synthetic scenes", unit="img", disable=not progress):
        rng = np.random.default_rng([seed % 2**32, i])
        scene = sample_scene(rng, image_size)
        captions = scene_captions(scene, rng)
        image_id = str(FIRST_ID + i)
        filename = f"{image_id}.jpg"
        draw_scene(scene, image_size).save(folder / IMAGES_DIRNAME / filename, "JPEG", quality=95)
        records.append({"raw": json.dumps(captions), "sentids": json.dumps(list(range(5 * i, 5 * i + 5))),
                        "split": splits[i], "filename": filename, "img_id": str(i)})
        scenes[image_id] = {"split": splits[i], "background": scene.background, "texture": scene.texture,
                            "objects": [o.as_dict() for o in scene.objects],
                            "object_words": object_words(scene), "captions": captions}
    write_annotations_csv(folder / CSV_NAME, records)
    meta = {"generator": "mgpt_data.synthetic", "n_images": n_images, "seed": seed, "image_size": image_size}
    (folder / SCENES_NAME).write_text(json.dumps({"meta": meta, "scenes": scenes}, indent=1, sort_keys=True))


def is_synthetic_set(data_dir: str | Path) -> bool:
    """Whether a folder holds a set written by this module (it has ``scenes.json``)."""
    return (Path(data_dir) / SCENES_NAME).is_file()


def write_synthetic_scenes(data_dir: str | Path, n_images: int, *, seed: int = 0, image_size: int = 224,
                           overwrite: bool = False, progress: bool = True) -> Path:
    """Write ``n_images`` synthetic scenes to ``data_dir`` and return it.

    An existing non-empty folder is replaced only when it is itself a synthetic set and ``overwrite``
    is set; anything else raises ``FileExistsError`` (user data is never deleted).
    """
    if n_images < 1:
        raise ValueError(f"n_images must be >= 1, got {n_images}")
    data_dir = Path(data_dir)
    if data_dir.exists() and any(data_dir.iterdir()):
        if not (overwrite and is_synthetic_set(data_dir)):
            why = ("pass overwrite=True to replace it" if is_synthetic_set(data_dir)
                   else "it is not a synthetic set")
            raise FileExistsError(f"{data_dir} exists and is not empty ({why})")
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}.", dir=data_dir.parent))
    tmp.chmod(0o755)  # mkdtemp makes 0700; the set is an ordinary folder once renamed
    try:
        _write_set(tmp, n_images, seed, image_size, progress)
        old = None
        if data_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}.old.", dir=data_dir.parent))
            os.replace(data_dir, old / "set")
        os.replace(tmp, data_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("wrote %d synthetic scenes (seed %d, %dpx) to %s", n_images, seed, image_size, data_dir)
    return data_dir


def ensure_data_dir(data_dir: str | Path, synthetic_images: int | None, *, seed: int = 0,
                    image_size: int = 224, progress: bool = True) -> Path:
    """Return ``data_dir`` if it has the CSV; else write a synthetic set when allowed; else raise."""
    data_dir = Path(data_dir)
    if csv_path(data_dir).is_file():
        return data_dir
    if synthetic_images is None:
        raise Flickr30kFormatError(
            f"{csv_path(data_dir)} not found and synthetic_images is None (nothing to write): point "
            "data_dir at a Flickr30k-format folder or set synthetic_images"
        )
    if data_dir.exists() and any(data_dir.iterdir()):
        raise Flickr30kFormatError(
            f"{data_dir} has files but no {CSV_NAME}: not writing a synthetic set into it"
        )
    try:
        return write_synthetic_scenes(data_dir, synthetic_images, seed=seed, image_size=image_size,
                                      progress=progress)
    except (FileExistsError, OSError):
        if csv_path(data_dir).is_file():  # another process finished first: use its set
            return data_dir
        raise
