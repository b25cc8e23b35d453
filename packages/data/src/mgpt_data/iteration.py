"""Training/eval iteration: Ray Data pipelines (read → shuffle → decode+preprocess) and a local twin.

How the trainer uses it
-----------------------
On the driver, before any worker starts::

    ensure_data_dir(data.data_dir, data.synthetic_images, seed=data.seed)   # writes a synthetic set once
    read = read_flickr30k(data.data_dir, split=data.train_split, sample_mode=data.sample_mode,
                          caption_options=data.caption_options(), rejects_path=run_dir / "rejects.jsonl")
    spec = encoder.preprocess.as_dict()
    sink = start_rejects_sink()                                             # decode rejects from workers

**A. Ray Train shards** (``TorchTrainer(..., datasets={"train": ds})``)::

    ds = train_dataset(read.rows, spec, **pipeline_kwargs(data), epoch=0, rejects_sink=sink)
    # inside train_loop_per_worker:
    shard = ray.train.get_dataset_shard("train")
    for epoch in range(max_epoch):
        for batch in shard.iter_batches(batch_size=B, batch_format="numpy",
                                        local_shuffle_buffer_size=..., local_shuffle_seed=seed + epoch):
            batch["pixels"]  # float32 [B,3,S,S]; batch["caption"], batch["captions"], batch["image_id"]

  Ray Train splits the stream with ``streaming_split(world_size, equal=True)``: blocks go to whichever
  worker asks first, so with >1 worker *which* rows reach *which* worker is not reproducible, and
  every epoch re-executes the same plan (the seeded ``random_shuffle`` is fixed when built).

**B. Deterministic per-worker shards** (reproducible for any worker count; pass ``read.rows``,
``spec`` and ``sink`` through ``train_loop_config``)::

    ctx = ray.train.get_context()
    for epoch in range(max_epoch):
        ds = worker_dataset(rows, spec, rank=ctx.get_world_rank(), world_size=ctx.get_world_size(),
                            epoch=epoch, rejects_sink=sink, **pipeline_kwargs(data))
        for batch in ds.iter_batches(batch_size=B, batch_format="numpy"): ...

  Epoch ``e`` permutes all rows with ``np.random.default_rng(seed + e)``; worker ``r`` of ``W`` takes
  ``perm[r::W]`` cut to ``len(rows) // W`` rows (every worker runs the same number of steps, as DDP
  needs; the few rows cut differ per epoch). Order is kept (``preserve_order``), augmentation is
  seeded per row, so a run is repeatable bit for bit. Each worker's Ray Data tasks need CPUs beside
  the Train worker's own: on 2 cores use one worker, or ``preprocess_num_cpus`` < 1. Rebuilding the
  dataset every epoch is cheap with ``preprocess_compute="tasks"`` (the default); an actor pool
  (``"actors"``) starts new processes every epoch (~5–9 s here).

After each epoch the driver (or rank 0) appends ``drain_rejects(sink)`` to the run's rejects.jsonl
(an undecodable image is met again every epoch: keep the (row, reason) pairs already written and
skip them, or run ``mgpt_data.check.check_data_dir`` once up front).

**Local** (unit tests, no cluster): ``LocalBatches(rows, spec, rank=..., world_size=..., epoch=...)``
yields the same rows, order and pixels as ``worker_dataset(...).iter_batches(batch_format="numpy")``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from mgpt_data.batches import batch_to_rows, rows_to_batch
from mgpt_data.flickr30k import rows_to_dataset
from mgpt_data.preprocess import ImagePreprocessor, preprocess_batch
from mgpt_data.settings import Compute, DataSettings
from mgpt_data.synthetic import is_synthetic_set

if TYPE_CHECKING:
    import ray.data


def pipeline_kwargs(settings: DataSettings) -> dict[str, Any]:
    """``DataSettings`` → keyword arguments of :func:`train_dataset` / :func:`worker_dataset`."""
    if settings.hflip and is_synthetic_set(settings.data_dir):
        raise ValueError(f"hflip=True on the synthetic scene set {settings.data_dir}: a flip makes its "
                         "'on the left/right' captions false; set hflip=False")
    return {"seed": settings.seed, "augment": settings.augment, "hflip": settings.hflip,
            "crop_scale": tuple(settings.crop_scale), "batch_size": settings.preprocess_batch_size,
            "concurrency": settings.num_preprocess_workers, "num_cpus": settings.preprocess_num_cpus,
            "compute": settings.preprocess_compute}


def epoch_permutation(n: int, *, seed: int, epoch: int) -> np.ndarray:
    """The epoch's global row order."""
    return np.random.default_rng((seed + epoch) % 2**32).permutation(n)


def shard_rows(rows: list[dict[str, Any]], *, rank: int = 0, world_size: int = 1, seed: int = 0,
               epoch: int = 0, shuffle: bool = True) -> list[dict[str, Any]]:
    """Worker ``rank``'s rows for ``epoch``: equal-length strided slices of the epoch's permutation."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    per_worker = len(rows) // world_size
    if per_worker == 0:
        raise ValueError(f"{len(rows)} rows cannot feed {world_size} workers")
    order = epoch_permutation(len(rows), seed=seed, epoch=epoch) if shuffle else np.arange(len(rows))
    return [rows[int(k)] for k in order[rank::world_size][:per_worker]]


def _preprocessor_kwargs(spec: dict, seed: int, epoch: int, augment: bool, hflip: bool,
                         crop_scale: tuple[float, float], rejects_sink: Any) -> dict[str, Any]:
    return {"spec": spec, "augment": augment, "seed": seed + epoch, "hflip": hflip,
            "crop_scale": tuple(crop_scale), "rejects_sink": rejects_sink}


def train_dataset(
    rows: list[dict[str, Any]], spec: dict, *, seed: int = 0, epoch: int = 0, shuffle: bool = True,
    augment: bool = False, hflip: bool = False, crop_scale: tuple[float, float] = (0.5, 1.0),
    batch_size: int = 32, concurrency: int = 1, num_cpus: float = 1.0, rejects_sink: Any = None,
    block_rows: int = 256, compute: Compute = "tasks",
) -> ray.data.Dataset:
    """Rows → (seeded ``random_shuffle(seed + epoch)``) → decode + preprocess.

    ``compute="actors"``: ``map_batches(ImagePreprocessor)`` on an actor pool of ``concurrency``;
    ``"tasks"``: the same work as Ray tasks (:func:`~mgpt_data.preprocess.preprocess_batch`, at most
    ``concurrency`` at a time), which skips the actor start-up every execution pays (measured in
    ``benchmarks/data_decode.py``). Output is identical.
    """
    from ray.data import ActorPoolStrategy, TaskPoolStrategy

    ds = rows_to_dataset(rows, block_rows=block_rows)  # keeps order (preserve_order)
    if shuffle:
        ds = ds.random_shuffle(seed=(seed + epoch) % 2**32)
    kwargs = _preprocessor_kwargs(spec, seed, epoch, augment, hflip, crop_scale, rejects_sink)
    common = {"batch_format": "numpy", "batch_size": batch_size, "num_cpus": num_cpus}
    if compute == "actors":
        return ds.map_batches(ImagePreprocessor, compute=ActorPoolStrategy(size=concurrency),
                              fn_constructor_kwargs=kwargs, **common)
    if compute == "tasks":
        return ds.map_batches(preprocess_batch, compute=TaskPoolStrategy(size=concurrency), fn_kwargs=kwargs,
                              **common)
    raise ValueError(f"compute must be 'tasks' or 'actors', got {compute!r}")


def worker_dataset(rows: list[dict[str, Any]], spec: dict, *, rank: int, world_size: int, seed: int = 0,
                   epoch: int = 0, shuffle: bool = True, **kwargs: Any) -> ray.data.Dataset:
    """Worker ``rank``'s deterministic shard for ``epoch`` (see B in the module docstring)."""
    shard = shard_rows(rows, rank=rank, world_size=world_size, seed=seed, epoch=epoch, shuffle=shuffle)
    return train_dataset(shard, spec, seed=seed, epoch=epoch, shuffle=False, **kwargs)


def eval_dataset(rows: list[dict[str, Any]], spec: dict, **kwargs: Any) -> ray.data.Dataset:
    """Rows in order, eval-time preprocessing (no shuffle, no augmentation)."""
    return train_dataset(rows, spec, shuffle=False, augment=False, hflip=False, **kwargs)


class LocalBatches:
    """In-process twin of :func:`worker_dataset` + ``iter_batches``; ``rejects`` fills while iterating."""

    def __init__(self, rows: list[dict[str, Any]], spec: dict, *, batch_size: int = 8, rank: int = 0,
                 world_size: int = 1, seed: int = 0, epoch: int = 0, shuffle: bool = True,
                 augment: bool = False, hflip: bool = False, crop_scale: tuple[float, float] = (0.5, 1.0),
                 drop_last: bool = False) -> None:
        self.rows = shard_rows(rows, rank=rank, world_size=world_size, seed=seed, epoch=epoch,
                               shuffle=shuffle)
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.preprocessor = ImagePreprocessor(
            **_preprocessor_kwargs(spec, seed, epoch, augment, hflip, crop_scale, None))

    @property
    def rejects(self) -> list[dict[str, Any]]:
        return self.preprocessor.rejects

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        pending: list[dict[str, Any]] = []
        for start in range(0, len(self.rows), self.batch_size):
            chunk = rows_to_batch(self.rows[start:start + self.batch_size])
            pending.extend(batch_to_rows(self.preprocessor(chunk)))
            while len(pending) >= self.batch_size:
                out, pending = pending[: self.batch_size], pending[self.batch_size:]
                yield _stack(out)
        if pending and not self.drop_last:
            yield _stack(pending)


def _stack(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    batch = rows_to_batch([{k: v for k, v in r.items() if k != "pixels"} for r in rows])
    batch["pixels"] = np.stack([r["pixels"] for r in rows])
    return batch
