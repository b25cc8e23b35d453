"""`predict`: captions for a split, as Ray Data batch inference with the model held by an actor pool.

``map_batches(CaptionPredictor, concurrency=N)`` starts N actors, each building the model once
(an `InferenceModel`; ``checkpoint=None`` = the untrained baseline: the seeded initial projector),
decoding its batch's images with the encoder's eval preprocessing and generating with the bridge's
``GenerationSettings`` under the run's precision. `predict` and `predict_local` (in-process, no
Ray) run `eval_captioning.EvalCaptioner`, the subclass that captions with several checkpoints in
one pass; captioning files at scale runs `inference.caption.ImageCaptioner`.
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
        from mgpt_train.inference.loading import InferenceModel, ModelSource

        if threads:
            torch.set_num_threads(threads)
        run = RunSettings.from_json_dict(settings)
        device = "cuda" if run.train.use_gpu and torch.cuda.is_available() else "cpu"
        self.inference = InferenceModel(ModelSource(run, None if checkpoint is None else Path(checkpoint)),
                                        device=device)
        self.model = self.inference.model
        self.device = self.inference.device
        if self.model.preprocess is None:
            raise ValueError("the model carries no preprocessing spec; cannot turn images into pixels")
        self.preprocessor = ImagePreprocessor(self.model.preprocess.as_dict(), rejects_sink=rejects_sink)
        self.precision = self.inference.precision
        self.decoding = dict(decoding or {})  # GenerationSettings fields replacing the run's
        self.instruction = instruction  # None = the template's first instruction

    def pixels(self, kept: dict[str, np.ndarray]) -> Any:
        """The ``pixels`` column (uint8, from `ImagePreprocessor`) → the encoder's float input, on device."""
        import torch

        from mgpt_data import normalize_pixels

        return torch.from_numpy(normalize_pixels(kept["pixels"], self.preprocessor.spec)).to(self.device)

    def caption_batch(self, batch: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[str]]:
        """Decode + preprocess the batch's ``path`` images (undecodable rows are dropped and reported as
        rejects) and caption the rest: ``(kept rows, captions)``."""
        kept = self.preprocessor(batch)
        captions: list[str] = []
        if len(kept["pixels"]):
            with self.inference.autocast():
                captions = self.model.generate(pixels=self.pixels(kept), instructions=self.instruction,
                                               **self.decoding)
        return kept, captions

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        kept, captions = self.caption_batch(batch)
        n = len(captions)
        refs = np.empty(n, dtype=object)
        for i in range(n):
            refs[i] = _strings(kept["captions"][i])
        return {"image_id": np.asarray([str(x) for x in kept["image_id"]], dtype=object),
                "candidate": np.asarray(captions, dtype=object), "references": refs}


def eval_rows(settings: RunSettings, split: str, max_images: int | None) -> list[dict[str, Any]]:
    """One row per image of ``split`` (CSV order; the first ``max_images``), the data written if absent."""
    from mgpt_train.driver_data import ensure_dataset, read_split_rows

    ensure_dataset(settings)
    rows, _ = read_split_rows(settings, split, sample_mode="grounded")  # one row per image
    if max_images is not None:
        if max_images < 1:
            raise ValueError(f"max_images must be >= 1, got {max_images}")
        rows = rows[:max_images]
    return rows


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
    Several checkpoints in one pass: `mgpt_train.eval_captioning.caption_with_plans`.
    """
    return _predict(settings, checkpoint_path, split, "ray", max_images=max_images, batch_size=batch_size,
                    actors=concurrency)


def predict_local(
    settings: RunSettings,
    checkpoint_path: Path | str | None,
    split: str,
    *,
    max_images: int | None = None,
    batch_size: int = 8,
) -> list[dict[str, Any]]:
    """Same output as `predict`, computed in this process without Ray."""
    return _predict(settings, checkpoint_path, split, "local", max_images=max_images, batch_size=batch_size)


def _predict(settings: RunSettings, checkpoint_path: Path | str | None, split: str, engine: str, *,
             max_images: int | None, batch_size: int, actors: int | None = None) -> list[dict[str, Any]]:
    from mgpt_train.eval_captioning import CaptionPlan, caption_with_plans, prediction_records

    settings = settings.with_absolute_paths()
    rows = eval_rows(settings, split, max_images)
    checkpoint = None if checkpoint_path is None else Path(checkpoint_path)
    logger.info("captioning %d %s images (%s), checkpoint %s", len(rows), split, engine,
                checkpoint or "none (baseline)")
    run = caption_with_plans(settings, rows, [CaptionPlan("model", checkpoint)], engine=engine,
                             batch_size=batch_size, actors=actors)
    return prediction_records(rows, run.captions["model"])
