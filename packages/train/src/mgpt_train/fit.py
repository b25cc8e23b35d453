"""`fit`: the driver side of a training run — prepare once, then a Ray Train `TorchTrainer`.

Ray Train V2 resumes by *re-running with the same* ``RunConfig(name, storage_path)``: the
controller finds ``checkpoint_manager_snapshot.json`` there and hands the latest checkpoint to
``ray.train.get_checkpoint()`` in every worker (``resume_from_checkpoint`` is deprecated). Here
``storage_path=RUN_DIR`` and ``name="checkpoints"``, so checkpoints land in ``RUN_DIR/checkpoints/``.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mgpt_train.data_order import iters_in_one_pass
from mgpt_train.loop_config import LoopConfig
from mgpt_train.progress import MetricsProgress
from mgpt_train.ray_setup import ensure_ray, worker_env
from mgpt_train.run_settings import RunSettings
from mgpt_train.rundir import (
    CHECKPOINTS_DIR,
    METRICS_FILE,
    REJECTS_FILE,
    SETTINGS_FILE,
    SUMMARY_FILE,
    check_persistent,
    write_json,
)

if TYPE_CHECKING:
    import ray.train

logger = logging.getLogger(__name__)

SNAPSHOT_FILE = "checkpoint_manager_snapshot.json"


def has_checkpoints(run_dir: Path) -> bool:
    """Whether Ray has recorded checkpoints for this run (a re-run would resume from them)."""
    return (Path(run_dir) / CHECKPOINTS_DIR / SNAPSHOT_FILE).is_file()


def _threads(settings: RunSettings) -> int:
    if settings.train.threads_per_worker is not None:
        return settings.train.threads_per_worker
    return max(1, (os.cpu_count() or 1) // settings.train.workers)


def prepare_run(
    settings: RunSettings, run_dir: Path, *, resume: bool, progress: bool = True
) -> tuple[LoopConfig, list[dict[str, Any]]]:
    """Everything done once on the driver before workers start; returns (loop config, train rows)."""
    from mgpt_train.driver_data import cache_features, check_images, ensure_dataset, read_split_rows
    from mgpt_train.modeling import build_model, features_cacheable
    from mgpt_vision import count_parameters

    ts = settings.train
    rejects = None if resume else run_dir / REJECTS_FILE  # a resumed run keeps its first rejects report
    if rejects is not None:
        rejects.write_text("")  # present (empty = nothing rejected), so the run layout is always the same
    ensure_dataset(settings)
    rows, summary = read_split_rows(settings, settings.data.train_split, rejects_path=rejects)
    rows, images = check_images(rows, rejects_path=rejects)

    model = build_model(settings)  # converts/caches weights once, here, before any worker needs them
    n_trainable = count_parameters(model, trainable_only=True)
    logger.info("number of trainable parameters: %d", n_trainable)
    model_summary = model.summary()
    spec = model.preprocess.as_dict() if model.preprocess is not None else None
    del model

    micro = ts.batch_size * ts.grad_accum_steps
    iters = ts.iters_per_epoch or iters_in_one_pass(len(rows), micro, ts.workers)
    features_path, fingerprint = None, None
    cacheable, why_not = features_cacheable(settings)
    if cacheable:
        path, fingerprint = cache_features(settings, images, progress=progress)
        features_path = str(path)
    else:
        logger.info("training from pixels (the encoder runs every step): %s", why_not)
    config = LoopConfig(settings=settings.to_json_dict(), run_dir=str(run_dir), iters_per_epoch=iters,
                        threads=_threads(settings), preprocess_spec=spec, features_path=features_path,
                        features_fingerprint=fingerprint)
    write_json(run_dir / SUMMARY_FILE, {
        "trainable_params": n_trainable, "model": model_summary, "data": summary, "train_rows": len(rows),
        "train_images": len(images), "iters_per_epoch": iters, "total_iters": iters * ts.max_epoch,
        "features_cache": features_path})
    return config, rows


def fit(
    settings: RunSettings, run_dir: Path | str, *, resume: bool = False, progress: bool = True
) -> ray.train.Result:
    """Train ``settings`` into ``run_dir`` with a `TorchTrainer`; ``resume`` continues its checkpoints.

    Raises ``FileExistsError`` when ``run_dir`` already has checkpoints and ``resume`` is False
    (Ray would silently continue them), ``FileNotFoundError`` when resuming a run with none.
    """
    import ray.train
    from ray.train.torch import TorchTrainer

    from mgpt_train.loop import train_loop_per_worker

    run_dir = check_persistent(run_dir)  # never inside Ray's temporary copy of a job's working dir
    settings = settings.with_absolute_paths()
    ts = settings.train
    if has_checkpoints(run_dir) and not resume:
        raise FileExistsError(
            f"{run_dir} already has checkpoints: resume it (--resume) or pick a new run name")
    if resume and not has_checkpoints(run_dir):
        raise FileNotFoundError(f"{run_dir} has no checkpoints to resume from")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / SETTINGS_FILE, settings.to_json_dict())

    # the encoding bar only on a terminal (in job logs every redraw would stay as a line)
    config, rows = prepare_run(settings, run_dir, resume=resume, progress=progress and sys.stderr.isatty())
    ensure_ray(settings.train)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=config.as_dict(),
        scaling_config=ray.train.ScalingConfig(num_workers=ts.workers, use_gpu=ts.use_gpu),
        run_config=ray.train.RunConfig(
            name=CHECKPOINTS_DIR,
            storage_path=str(run_dir),
            failure_config=ray.train.FailureConfig(max_failures=ts.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=ts.keep_checkpoints),
            worker_runtime_env={"env_vars": worker_env()},
        ),
        datasets={"train": _quiet_dataset(rows)},
        dataset_config=ray.train.DataConfig(datasets_to_split=[]),  # every worker orders all rows itself
    )
    total = config.iters_per_epoch * ts.max_epoch
    logger.info("training %d workers x batch %d x accum %d, %d iterations/epoch x %d epochs → %s",
                ts.workers, ts.batch_size, ts.grad_accum_steps, config.iters_per_epoch, ts.max_epoch,
                run_dir)
    with MetricsProgress(run_dir / METRICS_FILE, total=total, enabled=progress):
        result = trainer.fit()
    logger.info("training finished; latest checkpoint %s", result.checkpoint)
    return result



def _quiet_dataset(rows: list[dict[str, Any]]) -> Any:
    """The rows as a Ray Dataset whose (tiny) reads draw no progress bars in the workers' logs."""
    from ray.data import DataContext

    from mgpt_data.flickr30k import rows_to_dataset

    ctx = DataContext.get_current()
    before = ctx.enable_progress_bars
    ctx.enable_progress_bars = False
    try:
        return rows_to_dataset(rows)
    finally:
        ctx.enable_progress_bars = before
