"""A small real-photo gallery with hand-written captions, loadable offline.

Photos ship inside installed packages: scikit-image's data folder (only images present in the
installed distribution are used; nothing is ever downloaded) and matplotlib's sample data
(grace_hopper.jpg). Captions (5 per photo, written by looking at each image) live in
``mgpt_eval/data/gallery.json``. scikit-learn's sample images are not used: it is not installed here.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from PIL import Image

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GalleryItem:
    """One photo (PIL, RGB) with its reference captions and where it came from."""

    image_id: str
    image: Image.Image
    captions: list[str]
    source: str  # "skimage:<loader>" or "matplotlib:<file>"


@cache
def _entries() -> tuple[dict, ...]:
    text = resources.files("mgpt_eval").joinpath("data/gallery.json").read_text(encoding="utf-8")
    return tuple(json.loads(text)["items"])


def gallery_captions() -> dict[str, list[str]]:
    """Reference captions of every gallery photo, without loading images."""
    return {e["image_id"]: list(e["captions"]) for e in _entries()}


def _load_skimage(entry: dict) -> Image.Image | None:
    import numpy as np
    import skimage.data

    # Only files bundled with the installed scikit-image: their loaders read them locally.
    if not (Path(skimage.data.__file__).parent / entry["file"]).is_file():
        logger.warning(
            "skipping %s: %s is not bundled with this scikit-image", entry["image_id"], entry["file"]
        )
        return None
    array = getattr(skimage.data, entry["loader"])()
    if "index" in entry:
        array = array[entry["index"]]
    return Image.fromarray(np.asarray(array))


def _load_matplotlib(entry: dict) -> Image.Image:
    from matplotlib import cbook

    with cbook.get_sample_data(entry["loader"]) as f:
        image = Image.open(f)
        image.load()
    return image


_LOADERS = {"skimage": _load_skimage, "matplotlib": _load_matplotlib}


def load_gallery(image_ids: list[str] | None = None) -> list[GalleryItem]:
    """Load the gallery (or the given ids) as RGB PIL images with 5 captions each."""
    entries = _entries()
    if image_ids is not None:
        known = {e["image_id"] for e in entries}
        unknown = [i for i in image_ids if i not in known]
        if unknown:
            raise ValueError(f"unknown gallery image id(s) {unknown}; known: {sorted(known)}")
        entries = tuple(e for e in entries if e["image_id"] in set(image_ids))
    items = []
    for entry in entries:
        image = _LOADERS[entry["source"]](entry)
        if image is None:
            continue
        items.append(
            GalleryItem(
                entry["image_id"],
                image.convert("RGB"),
                list(entry["captions"]),
                f"{entry['source']}:{entry['loader']}",
            )
        )
    return items
