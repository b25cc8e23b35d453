"""The seed's ``flickr30k_grounded_detail.json`` (MiniGPT-4 fine-tuning on Flickr30k), field for field.

The seed's prep script loops over the CSV in order, skips rows whose image file is missing, and
writes ``json.dump([{"image_id": filename.split(".")[0], "grounded_caption": " ".join(captions)},
...], f, indent=4)``. Here the same list is written from the validated images, so rows the seed
would have kept but we reject (invalid JSON, no caption text, a repeated id, an undecodable image)
are absent and listed in ``rejects.jsonl`` instead; blank captions inside a list are not joined.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mgpt_data.text import join_captions

GROUNDED_NAME = "flickr30k_grounded_detail.json"


def grounded_records(images: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    """Images (``image_id``, ``captions``) in CSV order → the seed's records."""
    return [{"image_id": str(img["image_id"]), "grounded_caption": join_captions(list(img["captions"]))}
            for img in images]


def write_grounded_json(images: Iterable[dict[str, Any]], path: str | Path) -> Path:
    """Write the records exactly as the seed does (``json.dump(..., indent=4)``), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the seed's open() gives an ordinary file
        with os.fdopen(fd, "w") as f:
            json.dump(grounded_records(images), f, indent=4)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
