"""The real-photo gallery (photos shipped by scikit-image/matplotlib, hand-written captions) captioned
by some of a run's models: ``eval/gallery.json`` (scores + captions) and ``eval/gallery.md``.

`prepare_gallery` puts each photo through the eval transform once (`mgpt_data.eval_pixels`, what the
encoder sees) and saves it losslessly as ``eval/gallery/<image_id>.png``: the photos are then rows
like the test split's (`gallery_rows`), captioned in the same pass by the same model (decoding an
``S x S`` PNG and transforming it again is the identity). A later eval of the run reuses the files.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mgpt_eval import ScoringSession

logger = logging.getLogger(__name__)

#: The ``split`` of gallery rows (never a data split name).
GALLERY_SPLIT = "gallery"
_MANIFEST = "manifest.json"


@dataclass(frozen=True)
class GalleryPhoto:
    """One gallery photo as the encoder sees it, saved at ``path``, with its references."""

    image_id: str
    source: str
    references: list[str]
    path: Path


def prepare_gallery(image_dir: Path, spec: dict[str, Any]) -> list[GalleryPhoto]:
    """The gallery photos, eval-transformed with the encoder's preprocessing ``spec``, as PNG files in
    ``image_dir`` (kept from an earlier call with the same spec)."""
    import numpy as np
    from PIL import Image

    from mgpt_data.images import Spec, eval_pixels
    from mgpt_eval import gallery_captions, load_gallery

    spec = json.loads(json.dumps(spec))  # as the manifest holds it (tuples are lists)
    manifest_path = image_dir / _MANIFEST
    references = gallery_captions()
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        photos = [GalleryPhoto(i, src, references[i], image_dir / f"{i}.png")
                  for i, src in manifest["images"].items() if i in references]
        if manifest.get("spec") == spec and all(p.path.is_file() for p in photos):
            return photos
    items = load_gallery()
    image_dir.mkdir(parents=True, exist_ok=True)
    photos = []
    for item in items:
        path = image_dir / f"{item.image_id}.png"
        pixels = eval_pixels(item.image, Spec.from_dict(spec))  # uint8 [3, S, S]
        Image.fromarray(np.ascontiguousarray(pixels.transpose(1, 2, 0))).save(path, compress_level=1)
        photos.append(GalleryPhoto(item.image_id, item.source, list(item.captions), path))
    manifest_path.write_text(json.dumps({"spec": spec, "images": {p.image_id: p.source for p in photos}},
                                        indent=2) + "\n")
    return photos


def gallery_rows(photos: list[GalleryPhoto]) -> list[dict[str, Any]]:
    """mgpt_data rows (split `GALLERY_SPLIT`) of the photos, for `eval_captioning.caption_with_plans`."""
    return [{"row": i, "image_id": p.image_id, "path": str(p.path), "split": GALLERY_SPLIT,
             "captions": list(p.references), "caption": p.references[0]} for i, p in enumerate(photos)]


def write_gallery_report(eval_dir: Path, photos: list[GalleryPhoto], captions: dict[str, dict[str, str]], *,
                         metrics: list[str] | None = None, session: ScoringSession | None = None,
                         ) -> dict[str, Path]:
    """Score each model's gallery captions (``{model: {image_id: caption}}``) and write the report."""
    from mgpt_eval import score_captions

    if not photos:
        logger.warning("gallery: no photos could be loaded; skipping")
        return {}
    result: dict[str, Any] = {
        "images": {p.image_id: {"source": p.source, "references": p.references} for p in photos},
        "models": {},
    }
    for name, by_id in captions.items():
        candidates = {p.image_id: by_id[p.image_id] for p in photos if p.image_id in by_id}
        references = {k: result["images"][k]["references"] for k in candidates}
        report = score_captions(references, candidates, metrics=metrics, session=session)
        result["models"][name] = {"scores": report.scores, "unavailable": report.unavailable,
                                  "captions": candidates}
    eval_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = eval_dir / "gallery.json", eval_dir / "gallery.md"
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    md_path.write_text(_markdown(result))
    return {"gallery.json": json_path, "gallery.md": md_path}


def _markdown(result: dict[str, Any]) -> str:
    models = list(result["models"])
    lines = [
        "# Real-photo gallery",
        "",
        "Photos that ship inside scikit-image and matplotlib, with 5 hand-written captions each "
        "(`mgpt_eval/data/gallery.json`). A model trained only on synthetic scenes is not expected "
        "to describe them well: this table shows what it does on real photos.",
        "",
    ]
    metrics = sorted({m for r in result["models"].values() for m in r["scores"]})
    lines += ["| model | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
    for name in models:
        scores = result["models"][name]["scores"]
        lines.append(f"| {name} | " + " | ".join(f"{100 * scores[m]:.1f}" for m in metrics) + " |")
    lines += [
        "",
        "| photo | first reference | " + " | ".join(models) + " |",
        "|---|---|" + "---|" * len(models),
    ]
    for image_id, info in result["images"].items():
        cells = [result["models"][m]["captions"].get(image_id, "").replace("|", "/") for m in models]
        lines.append(f"| {image_id} | {info['references'][0]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
