"""Callable classes for ``Dataset.map_batches``: decode + preprocess images, or only check they decode.

::

    sink = start_rejects_sink()
    ds = read.dataset.map_batches(
        ImagePreprocessor, batch_format="numpy", compute=ActorPoolStrategy(size=1), batch_size=32,
        fn_constructor_kwargs={"spec": encoder.preprocess.as_dict(), "augment": False, "seed": 42,
                               "rejects_sink": sink})

or, as Ray tasks (no actor start-up per execution; same output), ``map_batches(preprocess_batch,
fn_kwargs={...same...})``.
    ...consume ds...
    append_rejects(run_dir / "rejects.jsonl", drain_rejects(sink))

A row whose image cannot be decoded is dropped from the output batch; its reject
(``missing_file`` / ``unreadable_image``) is logged, kept in ``self.rejects`` (the local path reads
it there) and, with ``rejects_sink``, sent to the sink actor before the batch is returned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mgpt_data.batches import column
from mgpt_data.images import (
    ImageDecodeError,
    Spec,
    decode_image,
    eval_pixels,
    random_resized_crop,
    row_rng,
    to_rgb,
    to_uint8,
)
from mgpt_data.rejects import Reject

logger = logging.getLogger(__name__)

Batch = dict[str, np.ndarray]


def _cell(batch: dict[str, np.ndarray], key: str, i: int) -> Any:
    col = batch.get(key)
    if col is None:
        return None
    value = col[i]
    return value.item() if isinstance(value, np.generic) else value


class _DecodingStage:
    """Shared plumbing: decode each row's ``path``, collect rejects, filter the batch."""

    def __init__(self, rejects_sink: Any = None) -> None:
        self.rejects_sink = rejects_sink
        self.rejects: list[dict[str, Any]] = []

    def _reject(self, batch: dict[str, np.ndarray], i: int, err: ImageDecodeError) -> dict[str, Any]:
        row = _cell(batch, "row", i)
        image_id = _cell(batch, "image_id", i)
        path = str(batch["path"][i])
        return Reject(None if row is None else int(row), None if image_id is None else str(image_id),
                      Path(path).name, err.reason, err.detail).as_dict()

    def _report(self, rejects: list[dict[str, Any]]) -> None:
        if not rejects:
            return
        for r in rejects:
            logger.warning("dropped %s (row %s): %s: %s", r["filename"], r["row"], r["reason"], r["detail"])
        self.rejects.extend(rejects)
        if self.rejects_sink is not None:
            import ray

            ray.get(self.rejects_sink.extend.remote(rejects))  # blocking: no reject is lost in flight

    @staticmethod
    def _keep(batch: dict[str, np.ndarray], keep: list[int]) -> dict[str, np.ndarray]:
        idx = np.asarray(keep, dtype=np.int64)
        return {k: (v if isinstance(v, np.ndarray) else column(list(v)))[idx] for k, v in batch.items()}

    def _decode_rows(self, batch: dict[str, np.ndarray]) -> tuple[list[int], list[Any]]:
        """Decode every row's image; undecodable rows are reported as rejects and left out."""
        keep, images, rejects = [], [], []
        for i in range(len(batch["path"])):
            try:
                images.append(decode_image(str(batch["path"][i])))
            except ImageDecodeError as e:
                rejects.append(self._reject(batch, i, e))
                continue
            keep.append(i)
        self._report(rejects)
        return keep, images


class ImagePreprocessor(_DecodingStage):
    """Adds ``pixels`` uint8 [B, 3, S, S] (normalise on the consumer: `normalize_pixels`).

    ``augment``: RandomResizedCrop(S, scale=crop_scale) instead of the eval resize (+ a horizontal
    flip with p=.5 when ``hflip``). Random draws come from ``row_rng(seed, image_id, caption)``, so
    a row gets the same pixels whatever its batch, worker or position; a row's ``epoch`` column (the
    training plan's) adds to the seed, so every epoch draws a new crop.

    An undecodable row is rejected (reason + detail, to ``rejects_sink`` when given) and dropped, or,
    with ``placeholders=True`` (training: every micro-batch keeps its rows), kept with zero pixels and
    ``valid = False`` so the consumer drops it while batch boundaries stay where the plan put them.

    ``expand``: each input batch is first turned into the rows to decode (the training plan's
    `RankRows`), so that expansion and decoding are one Ray Data call.
    """

    def __init__(self, spec: dict[str, Any], augment: bool = False, seed: int = 0, *, hflip: bool = False,
                 crop_scale: tuple[float, float] = (0.5, 1.0), rejects_sink: Any = None,
                 placeholders: bool = False, expand: Callable[[Batch], Batch] | None = None) -> None:
        super().__init__(rejects_sink)
        self.expand = expand
        self.spec = Spec.from_dict(spec)
        self.augment = augment
        self.hflip = hflip
        self.seed = seed
        self.crop_scale = (float(crop_scale[0]), float(crop_scale[1]))
        self.placeholders = placeholders
        if hflip and not augment:
            raise ValueError("hflip is train-time augmentation: pass augment=True")

    def transform(self, image: Any, *keys: str, epoch: int = 0) -> np.ndarray:
        """One decoded PIL image → uint8 [3, S, S]; ``seed + epoch`` and ``keys`` seed the augmentation."""
        if not self.augment:
            return eval_pixels(image, self.spec)
        rng = row_rng(self.seed + epoch, *keys)
        image = random_resized_crop(to_rgb(image), self.spec, rng, self.crop_scale)
        if self.hflip and rng.random() < 0.5:
            from PIL import ImageOps

            image = ImageOps.mirror(image)
        return to_uint8(image)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.expand is not None:
            batch = self.expand(batch)
        keep, images = self._decode_rows(batch)
        size = self.spec.image_size
        pixels = [
            self.transform(image, str(_cell(batch, "image_id", i) or batch["path"][i]),
                           str(_cell(batch, "caption", i) or ""), epoch=int(_cell(batch, "epoch", i) or 0))
            for i, image in zip(keep, images, strict=True)
        ]
        if not self.placeholders:
            out = self._keep(batch, keep)
            out["pixels"] = np.stack(pixels) if pixels else np.zeros((0, 3, size, size), np.uint8)
            return out
        n = len(batch["path"])
        out = dict(batch)
        out["pixels"] = np.zeros((n, 3, size, size), np.uint8)
        out["valid"] = np.zeros(n, dtype=bool)
        for i, px in zip(keep, pixels, strict=True):
            out["pixels"][i] = px
            out["valid"][i] = True
        return out


def preprocess_batch(batch: dict[str, np.ndarray], **kwargs: Any) -> dict[str, np.ndarray]:
    """Task form of :class:`ImagePreprocessor` (``map_batches(preprocess_batch, fn_kwargs=...)``).

    The class holds no costly state, so a Ray *task* can build it per batch; tasks run in Ray's
    pooled worker processes, while an actor pool starts new processes every time a dataset runs.
    """
    return ImagePreprocessor(**kwargs)(batch)


class ImageChecker(_DecodingStage):
    """Decode-only check (``prepare``): adds ``width``/``height``; undecodable rows dropped + rejected."""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        keep, images = self._decode_rows(batch)
        sizes = [image.size for image in images]
        out = self._keep(batch, keep)
        out["width"] = np.asarray([w for w, _ in sizes], dtype=np.int64)
        out["height"] = np.asarray([h for _, h in sizes], dtype=np.int64)
        return out


def check_batch(batch: dict[str, np.ndarray], rejects_sink: Any = None) -> dict[str, np.ndarray]:
    """Task form of :class:`ImageChecker`."""
    return ImageChecker(rejects_sink)(batch)
