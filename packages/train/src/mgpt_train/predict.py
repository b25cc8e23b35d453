"""`predict`: captions for a split, as Ray Data batch inference with the model held by an actor pool.

``map_batches(CaptionPredictor, concurrency=N)`` starts N actors, each building the model once
(``checkpoint=None`` = the untrained baseline: the seeded initial projector), decoding its batch's
images with the encoder's eval preprocessing and generating with the bridge's
``GenerationSettings``. `predict_local` runs the same class in-process (tests, no cluster).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from mgpt_train.run_settings import RunSettings

logger = logging.getLogger(__name__)


def _strings(cell: Any) -> list[str]:
    return [str(c) for c in (cell.tolist() if isinstance(cell, np.ndarray) else list(cell))]


class CaptionPredictor:
    """Callable class for ``Dataset.map_batches``: numpy batch of rows → image_id, candidate, references."""

    def __init__(self, settings: dict[str, Any], checkpoint: str | None = None, threads: int | None = None,
                 *, decoding: dict[str, Any] | None = None, instruction: str | None = None,
                 rejects_sink: Any = None):
        import torch

        from mgpt_data import ImagePreprocessor
        from mgpt_train.modeling import build_model
        from mgpt_train.settings import resolve_precision

        if threads:
            torch.set_num_threads(threads)
        run = RunSettings.from_json_dict(settings)
        self.device = "cuda" if run.train.use_gpu and torch.cuda.is_available() else "cpu"
        self.model = build_model(run, device=self.device, checkpoint=checkpoint).eval()
        if self.model.preprocess is None:
            raise ValueError("the model carries no preprocessing spec; cannot turn images into pixels")
        self.preprocessor = ImagePreprocessor(self.model.preprocess.as_dict(), rejects_sink=rejects_sink)
        self.precision = resolve_precision(run.train.precision, self.device)
        self.decoding = dict(decoding or {})  # GenerationSettings fields replacing the run's
        self.instruction = instruction  # None = the template's first instruction

    def caption_batch(self, batch: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[str]]:
        """Decode + preprocess the batch's ``path`` images (undecodable rows are dropped and reported as
        rejects) and caption the rest: ``(kept rows, captions)``."""
        import torch

        from mgpt_data import normalize_pixels
        from mgpt_train.modeling import autocast

        kept = self.preprocessor(batch)
        captions: list[str] = []
        if len(kept["pixels"]):
            pixels = torch.from_numpy(normalize_pixels(kept["pixels"], self.preprocessor.spec))
            pixels = pixels.to(self.device)
            with autocast(self.precision, self.device):
                captions = self.model.generate(pixels=pixels, instructions=self.instruction, **self.decoding)
        return kept, captions

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        kept, captions = self.caption_batch(batch)
        n = len(captions)
        refs = np.empty(n, dtype=object)
        for i in range(n):
            refs[i] = _strings(kept["captions"][i])
        return {"image_id": np.asarray([str(x) for x in kept["image_id"]], dtype=object),
                "candidate": np.asarray(captions, dtype=object), "references": refs}


def _eval_rows(settings: RunSettings, split: str, max_images: int | None) -> list[dict[str, Any]]:
    from mgpt_train.driver_data import ensure_dataset, read_split_rows

    ensure_dataset(settings)
    rows, _ = read_split_rows(settings, split, sample_mode="grounded")  # one row per image
    if max_images is not None:
        if max_images < 1:
            raise ValueError(f"max_images must be >= 1, got {max_images}")
        rows = rows[:max_images]
    return rows


def _in_row_order(records: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rank = {str(r["image_id"]): i for i, r in enumerate(rows)}
    out = [{"image_id": str(r["image_id"]), "candidate": str(r["candidate"]),
            "references": _strings(r["references"])} for r in records]
    return sorted(out, key=lambda r: rank[r["image_id"]])


def map_with_model_pool(
    ds: Any,
    predictor: type[CaptionPredictor],
    settings: RunSettings,
    checkpoint_path: Path | str | None,
    *,
    actors: int,
    batch_size: int,
    **predictor_kwargs: Any,
) -> Any:
    """``ds.map_batches(predictor)`` over an actor pool of ``actors`` models (one GPU each when
    ``train.use_gpu``): the batch-inference path of `predict` and of captioning at scale."""
    from ray.data import ActorPoolStrategy

    return ds.map_batches(
        predictor,
        fn_constructor_kwargs={"settings": settings.to_json_dict(),
                               "checkpoint": None if checkpoint_path is None else str(checkpoint_path),
                               "threads": settings.train.threads_per_worker, **predictor_kwargs},
        batch_format="numpy", batch_size=batch_size, compute=ActorPoolStrategy(size=actors), num_cpus=1,
        num_gpus=1 if settings.train.use_gpu else 0,
    )


def predict(
    settings: RunSettings,
    checkpoint_path: Path | str | None,
    split: str,
    *,
    max_images: int | None = None,
    concurrency: int | None = None,
    batch_size: int = 8,
) -> list[dict[str, Any]]:
    """``[{image_id, candidate, references}]`` for ``split`` (CSV order), via a Ray Data actor pool.

    ``checkpoint_path``: a checkpoint folder (``RUN_DIR/checkpoints/epoch_k``) or ``.safetensors``
    file; None = the untrained baseline. ``concurrency`` defaults to ``train.workers`` actors.
    """
    from mgpt_data.flickr30k import rows_to_dataset
    from mgpt_train.ray_setup import ensure_ray

    settings = settings.with_absolute_paths()
    rows = _eval_rows(settings, split, max_images)
    ensure_ray(settings.train)
    actors = concurrency or settings.train.workers
    ds = map_with_model_pool(rows_to_dataset(rows, block_rows=batch_size), CaptionPredictor, settings,
                             checkpoint_path, actors=actors, batch_size=batch_size)
    logger.info("captioning %d %s images with %d actor(s), checkpoint %s", len(rows), split, actors,
                checkpoint_path or "none (baseline)")
    return _in_row_order(ds.take_all(), rows)


def predict_local(
    settings: RunSettings,
    checkpoint_path: Path | str | None,
    split: str,
    *,
    max_images: int | None = None,
    batch_size: int = 8,
) -> list[dict[str, Any]]:
    """Same output as `predict`, computed in this process without Ray."""
    from mgpt_data.batches import rows_to_batch

    settings = settings.with_absolute_paths()
    rows = _eval_rows(settings, split, max_images)
    predictor = CaptionPredictor(settings.to_json_dict(),
                                 None if checkpoint_path is None else str(checkpoint_path),
                                 settings.train.threads_per_worker)
    records: list[dict[str, Any]] = []
    for start in range(0, len(rows), batch_size):
        out = predictor(rows_to_batch(rows[start:start + batch_size]))
        records.extend({k: out[k][i] for k in out} for i in range(len(out["image_id"])))
    return _in_row_order(records, rows)
