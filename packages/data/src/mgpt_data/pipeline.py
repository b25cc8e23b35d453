"""The pixel stage of a Ray Data pipeline: rows with ``path`` → + ``pixels`` uint8 ``[3, S, S]``.

Decoding and the transform (:mod:`mgpt_data.images`) run in Ray Data ``map_batches`` — on an actor
pool (``data.preprocess_compute = "actors"``, the default: Ray Data keeps each actor's next block
queued, so no core idles between blocks) or as Ray tasks (``"tasks"``: pooled worker processes, one
task per block, a lease and a scheduling round between two), ``data.num_preprocess_workers`` at a
time, each reserving ``data.preprocess_num_cpus`` CPUs — never on the consumer's thread. On one
rank's training stream of 8,000 photos (``benchmarks/ingest_scale.py``, 2 cores, one run each on the
same code) actors reached 1.08x a 2-worker DataLoader from mid-stream and tasks 0.85x. Order is kept
(the caller's DataContext has ``preserve_order``). Rejects go to ``rejects_sink`` (see
:mod:`mgpt_data.rejects`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mgpt_data.preprocess import Batch, ImagePreprocessor, preprocess_batch
from mgpt_data.settings import DataSettings
from mgpt_data.synthetic import is_synthetic_set

if TYPE_CHECKING:
    import ray.data


def check_augmentation(settings: DataSettings) -> None:
    """Refuse a horizontal flip on the synthetic scene set: its captions name the side of each shape."""
    if settings.hflip and is_synthetic_set(settings.data_dir):
        raise ValueError(f"hflip=True on the synthetic scene set {settings.data_dir}: a flip makes its "
                         "'on the left/right' captions false; set data.hflip=false")


def add_pixels(
    ds: ray.data.Dataset, spec: dict[str, Any], settings: DataSettings, *, augment: bool = False,
    rejects_sink: Any = None, placeholders: bool = False, expand: Callable[[Batch], Batch] | None = None,
) -> ray.data.Dataset:
    """``ds`` (rows with ``path``, optionally ``image_id``/``caption``/``epoch``) + ``pixels`` (and
    ``valid`` with ``placeholders``); ``augment`` uses the settings' crop scale and flip.

    ``expand`` (picklable): ``ds`` holds items that ``expand`` turns into such rows — one item per call,
    expanded and decoded in the same Ray Data task (the training plan's blocks, `mgpt_train.plan`)."""
    from ray.data import ActorPoolStrategy, TaskPoolStrategy

    if augment:
        check_augmentation(settings)
    kwargs = {"spec": spec, "augment": augment, "seed": settings.seed, "hflip": augment and settings.hflip,
              "crop_scale": tuple(settings.crop_scale), "rejects_sink": rejects_sink,
              "placeholders": placeholders, "expand": expand}
    common = {"batch_format": "numpy", "batch_size": 1 if expand else settings.preprocess_batch_size,
              "num_cpus": settings.preprocess_num_cpus}
    size = settings.num_preprocess_workers
    if settings.preprocess_compute == "actors":
        return ds.map_batches(ImagePreprocessor, compute=ActorPoolStrategy(size=size),
                              fn_constructor_kwargs=kwargs, **common)
    return ds.map_batches(preprocess_batch, compute=TaskPoolStrategy(size=size), fn_kwargs=kwargs, **common)
