"""The real-photo gallery (photos shipped by scikit-image/matplotlib, hand-written captions) captioned
by some of a run's models: ``eval/gallery.json`` (scores + captions) and ``eval/gallery.md``."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mgpt_train.run_settings import RunSettings

logger = logging.getLogger(__name__)


def write_gallery_report(eval_dir: Path, settings: RunSettings, entries: Sequence[Any]) -> dict[str, Path]:
    """Caption every gallery photo with each entry (``.name``, ``.checkpoint``) and score it."""
    from mgpt_eval import load_gallery, score_captions
    from mgpt_train.captioning import caption_images, load_captioner

    items = load_gallery()
    if not items:
        logger.warning("gallery: no photos could be loaded; skipping")
        return {}
    references = {it.image_id: it.captions for it in items}
    result: dict[str, Any] = {
        "images": {it.image_id: {"source": it.source, "references": it.captions} for it in items},
        "models": {},
    }
    for entry in entries:
        model = load_captioner(settings, entry.checkpoint)
        captions = caption_images(model, [it.image for it in items])
        candidates = dict(zip(references, captions, strict=True))
        report = score_captions(references, candidates, metrics=settings.eval.metrics)
        result["models"][entry.name] = {
            "scores": report.scores,
            "unavailable": report.unavailable,
            "captions": candidates,
        }
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
        cells = [result["models"][m]["captions"][image_id].replace("|", "/") for m in models]
        lines.append(f"| {image_id} | {info['references'][0]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
