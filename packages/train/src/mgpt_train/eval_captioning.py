"""Caption rows with several models of one run in ONE pass: what `evaluate_run` (and `predict`) use.

The models of a run differ only in their trainable parameters (projector, LoRA, tuned parts), so one
model is built per process (an `InferenceModel`) and only those are swapped between checkpoints
(held in memory, `InferenceModel.keep`). Every image is decoded and transformed once (the one
transform, `mgpt_data.ImagePreprocessor`) and, when the encoder is frozen, encoded once: the
features go to ``generate(features=...)`` for every checkpoint. Decoding settings, precision and
batches are those of `CaptionPredictor`, so a checkpoint gets the captions it gets alone.

Two engines run the same `EvalCaptioner`:

- ``local``: in this process, batch after batch (no Ray start, no actor start, one model load);
- ``ray``: a Ray Data actor pool (`map_with_model_pool`: ``train.workers`` actors, a GPU each when
  ``train.use_gpu``), each actor building the model once for all checkpoints.

`choose_engine` picks ``local`` for small evaluations on CPU and the pool otherwise (``eval.engine``
forces one). A trainable part too large to hold several copies of (full LM tuning) falls back to one
pass per checkpoint, each with a fresh model (`passes`).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mgpt_train.predict import CaptionPredictor
from mgpt_train.run_settings import RunSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaptionPlan:
    """One model to caption with: ``checkpoint`` None = the untrained bridge; ``splits``: the row
    ``split`` values it captions (None: every row)."""

    name: str
    checkpoint: Path | None
    splits: tuple[str, ...] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "checkpoint": None if self.checkpoint is None else str(self.checkpoint),
                "splits": None if self.splits is None else list(self.splits)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CaptionPlan:
        return cls(d["name"], None if d["checkpoint"] is None else Path(d["checkpoint"]),
                   None if d["splits"] is None else tuple(d["splits"]))


def caption_column(i: int) -> str:
    """The output column of plan ``i`` (None where the plan does not caption the row)."""
    return f"caption_{i}"


class EvalCaptioner(CaptionPredictor):
    """Callable class for ``Dataset.map_batches``: a numpy batch of rows (``path``, ``image_id``,
    ``split``) → ``image_id``, ``split`` and one `caption_column` per plan.

    Undecodable rows are dropped (and reported) as in `CaptionPredictor`. ``timings`` sums the
    seconds spent decoding, encoding, swapping and generating (per plan name) in this process.
    """

    def __init__(self, settings: dict[str, Any], checkpoint: str | None = None, threads: int | None = None,
                 *, plans: Sequence[dict[str, Any]], rejects_sink: Any = None):
        super().__init__(settings, checkpoint, threads, rejects_sink=rejects_sink)
        self.plans = [CaptionPlan.from_dict(p) for p in plans]
        if len(self.plans) > 1 and not self.inference.keep([p.checkpoint for p in self.plans]):
            raise ValueError(f"the trainable parameters of {len(self.plans)} checkpoints do not fit in "
                             "memory together: caption them one pass each (eval_captioning.passes)")
        self.timings: dict[str, float] = defaultdict(float)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        start = time.perf_counter()
        kept = self.preprocessor(batch)
        n = len(kept["pixels"])
        out = {"image_id": np.asarray([str(x) for x in kept["image_id"]], dtype=object),
               "split": np.asarray([str(x) for x in kept["split"]], dtype=object)}
        pixels = self.pixels(kept) if n else None
        self.timings["decode_s"] += time.perf_counter() - start
        start = time.perf_counter()
        features = self.inference.image_features(pixels) if n else None
        self.timings["encode_s"] += time.perf_counter() - start
        for i, plan in enumerate(self.plans):
            column = np.full(n, None, dtype=object)
            rows = [j for j in range(n) if plan.splits is None or out["split"][j] in plan.splits]
            if rows:
                start = time.perf_counter()
                if self.inference.checkpoint != plan.checkpoint:
                    self.inference.use(plan.checkpoint)
                self.timings["swap_s"] += time.perf_counter() - start
                start = time.perf_counter()
                index = None if len(rows) == n else torch.as_tensor(rows, device=self.device)
                images = ({"features": features if index is None else features[index]} if features is not None
                          else {"pixels": pixels if index is None else pixels[index]})
                with self.inference.autocast():
                    captions = self.model.generate(**images, instructions=self.instruction, **self.decoding)
                self.timings[f"generate_s:{plan.name}"] += time.perf_counter() - start
                for j, caption in zip(rows, captions, strict=True):
                    column[j] = caption
            out[caption_column(i)] = column
        return out


def passes(plans: Sequence[CaptionPlan]) -> list[list[CaptionPlan]]:
    """All plans in one pass when their trainable parameters fit in memory together (`keepable`), else
    one pass per plan (each builds its model afresh: the pre-swap way, for full LM tuning)."""
    from mgpt_train.inference.loading import keepable

    checkpoints = [p.checkpoint for p in plans if p.checkpoint is not None]
    if len(plans) < 2 or not checkpoints:
        return [list(plans)]
    size = trainable_numel(checkpoints[0])
    if keepable(size, len(set(checkpoints)), any(p.checkpoint is None for p in plans)):
        return [list(plans)]
    logger.info("eval: %d trainable parameters per checkpoint: one pass (and model build) per checkpoint",
                size)
    return [[p] for p in plans]


def trainable_numel(checkpoint: Path) -> int:
    """How many trainable parameters a checkpoint holds (from the safetensors header, no tensor read)."""
    from safetensors import safe_open

    from mgpt_train.checkpointing import trainable_file

    with safe_open(str(trainable_file(Path(checkpoint))), framework="pt") as f:
        return sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())  # noqa: SIM118


def choose_engine(settings: RunSettings, n_captions: int) -> tuple[str, str]:
    """``(engine, why)``: ``eval.engine`` unless ``auto``; ``auto`` is ``ray`` on GPUs, on a joined
    cluster or beyond ``eval.ray_min_captions`` captions, else ``local`` (see `eval.ray_min_captions`)."""
    engine = settings.eval.engine
    if engine != "auto":
        return engine, f"eval.engine = {engine}"
    if settings.train.use_gpu:
        return "ray", "train.use_gpu: one GPU actor per train.workers"
    if settings.train.address is not None:
        return "ray", f"joined the Ray cluster at {settings.train.address}"
    if n_captions > settings.eval.ray_min_captions:
        return "ray", f"{n_captions} captions > eval.ray_min_captions = {settings.eval.ray_min_captions}"
    return "local", (f"{n_captions} captions <= eval.ray_min_captions = {settings.eval.ray_min_captions} "
                     "on CPU: in-process costs less than starting Ray and an actor per model")


@dataclass
class CaptionRun:
    """What `caption_with_plans` returns: per plan name, ``{(split, image_id): caption}`` (rows the
    plan captions and that decoded), the engine used and the time split."""

    captions: dict[str, dict[tuple[str, str], str]]
    engine: str
    timings: dict[str, float]


def caption_with_plans(settings: RunSettings, rows: list[dict[str, Any]], plans: Sequence[CaptionPlan], *,
                       engine: str, batch_size: int = 8, actors: int | None = None) -> CaptionRun:
    """Caption ``rows`` (mgpt_data rows: ``path``, ``image_id``, ``split``, ...) with every plan, on
    ``engine`` (``local`` | ``ray``), in batches of ``batch_size`` rows of one split each (local)."""
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be local or ray, got {engine!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    captions: dict[str, dict[tuple[str, str], str]] = {p.name: {} for p in plans}
    timings: dict[str, float] = defaultdict(float)
    for group in passes(plans):
        start = time.perf_counter()
        run = _local if engine == "local" else _ray
        for out in run(settings, rows, group, batch_size, actors, timings):
            for i, plan in enumerate(group):
                for image_id, split, caption in zip(out["image_id"], out["split"], out[caption_column(i)],
                                                    strict=True):
                    if caption is not None:
                        captions[plan.name][(str(split), str(image_id))] = str(caption)
        timings["pass_s"] += time.perf_counter() - start
    return CaptionRun(captions, engine, dict(timings))


def prediction_records(rows: list[dict[str, Any]],
                       captions: dict[tuple[str, str], str]) -> list[dict[str, Any]]:
    """``[{image_id, candidate, references}]`` of the ``rows`` a plan captioned, in row order (the
    records `mgpt_eval` scores and ``eval/predictions/*.jsonl`` hold)."""
    out = []
    for r in rows:
        key = (str(r["split"]), str(r["image_id"]))
        if key in captions:
            out.append({"image_id": key[1], "candidate": captions[key],
                        "references": [str(c) for c in r["captions"]]})
    return out


def _first(plans: list[CaptionPlan]) -> str | None:
    """The checkpoint a pass's model is built with: its plan's when alone (nothing is swapped then)."""
    return None if len(plans) > 1 or plans[0].checkpoint is None else str(plans[0].checkpoint)


def _local(settings: RunSettings, rows: list[dict[str, Any]], plans: list[CaptionPlan], batch_size: int,
           actors: int | None, timings: dict[str, float]):
    from mgpt_data.batches import rows_to_batch

    start = time.perf_counter()
    captioner = EvalCaptioner(settings.to_json_dict(), _first(plans), None,
                              plans=[p.as_dict() for p in plans])
    timings["model_load_s"] += time.perf_counter() - start
    for split in dict.fromkeys(r["split"] for r in rows):  # batches never mix splits: as `predict` batches
        part = [r for r in rows if r["split"] == split]
        for begin in range(0, len(part), batch_size):
            yield captioner(rows_to_batch(part[begin:begin + batch_size]))
    for key, value in captioner.timings.items():
        timings[key] += value


def _ray(settings: RunSettings, rows: list[dict[str, Any]], plans: list[CaptionPlan], batch_size: int,
         actors: int | None, timings: dict[str, float]):
    from mgpt_data.batches import rows_to_batch
    from mgpt_data.flickr30k import rows_to_dataset
    from mgpt_train.predict import map_with_model_pool
    from mgpt_train.ray_setup import ensure_ray

    start = time.perf_counter()
    settings = settings.with_absolute_paths()
    ensure_ray(settings.train)
    timings["ray_start_s"] += time.perf_counter() - start
    actors = actors or settings.train.workers
    logger.info("eval: captioning %d rows with %d model(s) on %d Ray actor(s)", len(rows), len(plans), actors)
    ds = map_with_model_pool(rows_to_dataset(rows, block_rows=batch_size), EvalCaptioner, settings,
                             _first(plans), actors=actors, batch_size=batch_size,
                             plans=[p.as_dict() for p in plans])
    out = ds.take_all()
    if out:
        yield rows_to_batch(out)
