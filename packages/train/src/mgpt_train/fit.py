"""`fit`: the driver side of a training run — plan once, then a Ray Train `TorchTrainer`.

The driver only plans (ARCHITECTURE "Data's way through the house"): it reads the CSV, converts
weights once, builds the model on the meta device for its counts and summary, builds or tops up the
feature cache through Ray Data batch inference, and hands workers a *plan* (`mgpt_train.ingest`). It
never decodes an image or holds real weights of the model, so its memory does not grow with the data.

Ray Train V2 resumes by *re-running with the same* ``RunConfig(name, storage_path)``: the
controller finds ``checkpoint_manager_snapshot.json`` there and hands the latest checkpoint to
``ray.train.get_checkpoint()`` in every worker. Here ``storage_path=RUN_DIR`` and
``name="checkpoints"``, so checkpoints land in ``RUN_DIR/checkpoints/``.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mgpt_train.data_order import iters_in_one_pass
from mgpt_train.loop_config import LoopConfig
from mgpt_train.output_checks import check_room_for_checkpoints, output_write_error
from mgpt_train.progress import MetricsProgress
from mgpt_train.ray_setup import ensure_ray, worker_env
from mgpt_train.run_settings import RunSettings
from mgpt_train.rundir import (
    CHECKPOINTS_DIR,
    METRICS_FILE,
    REJECTS_FILE,
    SETTINGS_FILE,
    SNAPSHOT_FILE,
    SUMMARY_FILE,
    check_persistent,
    ensure_writable_dir,
    read_json,
    write_json,
)

if TYPE_CHECKING:
    import ray.train

    from mgpt_train.ingest import PixelStage, TrainPlan

logger = logging.getLogger(__name__)


def has_checkpoints(run_dir: Path) -> bool:
    """Whether Ray has recorded checkpoints for this run (a re-run would resume from them)."""
    return (Path(run_dir) / CHECKPOINTS_DIR / SNAPSHOT_FILE).is_file()


def _threads(settings: RunSettings) -> int:
    if settings.train.threads_per_worker is not None:
        return settings.train.threads_per_worker
    return max(1, (os.cpu_count() or 1) // settings.train.workers)


def local_cpus(settings: RunSettings) -> int:
    """Logical CPUs for a private local Ray: the machine's cores, or more when the run reserves more
    (one per training worker plus its decode tasks); the OS shares the cores either way."""
    d = settings.data
    t = settings.train
    data = t.workers * d.num_preprocess_workers * d.preprocess_num_cpus
    return max(os.cpu_count() or 1, math.ceil(t.workers * t.cpus_per_worker + data + 1))


def _model_facts(settings: RunSettings) -> tuple[int, dict[str, Any], dict[str, Any] | None]:
    """Trainable parameter count, model summary and preprocessing spec from a meta build (no weights);
    the encoder's and LM's one-off weight conversions happen here, before any worker needs them."""
    from mgpt_bridge import build_vlm
    from mgpt_vision import count_parameters, prepare_encoder_weights

    prepare_encoder_weights(settings.vision)
    model = build_vlm(settings.vision, settings.bridge, device="meta", meta=True)
    spec = model.preprocess.as_dict() if model.preprocess is not None else None
    return count_parameters(model, trainable_only=True), model.summary(), spec


def _check_images(
    settings: RunSettings, rows: list[dict[str, Any]], rejects: Path | None
) -> list[dict[str, Any]]:
    """``train.check_images``: decode every train image up front (Ray Data tasks), drop the bad ones."""
    from mgpt_data.check import decode_image_rows
    from mgpt_data.rejects import append_rejects

    images = list({str(r["image_id"]): r for r in rows}.values())
    bad = decode_image_rows(images, engine="ray", batch_size=settings.data.preprocess_batch_size,
                            workers=settings.data.num_preprocess_workers, progress=False)
    if bad and rejects is not None:
        append_rejects(rejects, bad)
    dropped = {str(r["image_id"]) for r in bad}
    return [r for r in rows if str(r["image_id"]) not in dropped]


def prepare_run(
    settings: RunSettings, run_dir: Path, *, resume: bool, rejects_sink: Any = None
) -> tuple[LoopConfig, TrainPlan, PixelStage | None]:
    """Everything done once on the driver before workers start: the loop config, plan and stage."""
    import pyarrow as pa

    from mgpt_train.collate import sort_rows
    from mgpt_train.driver_data import ensure_dataset, read_split_rows
    from mgpt_train.ingest import PixelStage, TrainPlan
    from mgpt_train.modeling import features_cacheable
    from mgpt_train.plan import PlanSpec

    ts = settings.train
    rejects = None if resume else run_dir / REJECTS_FILE  # a resumed run keeps its first rejects report
    if rejects is not None:
        rejects.write_text("")  # present (empty = nothing rejected), so the run layout is always the same
    ensure_dataset(settings)
    rows, summary = read_split_rows(settings, settings.data.train_split, rejects_path=rejects)
    n_trainable, model_summary, spec = _model_facts(settings)
    logger.info("number of trainable parameters: %d", n_trainable)
    check_room_for_checkpoints(settings, run_dir, n_trainable, len(rows))
    if ts.check_images:
        rows = _check_images(settings, rows, rejects)
    cache, stage, hashes = None, None, None
    cacheable, why_not = features_cacheable(settings)
    if cacheable:
        from mgpt_train.feature_store import build_feature_cache

        images = list({str(r["image_id"]): {"image_id": str(r["image_id"]), "path": r["path"],
                                            "row": r.get("row")} for r in rows}.values())
        cache, hashes = build_feature_cache(settings, images, rejects_sink=rejects_sink)
        rows = [{**r, "content_hash": hashes[str(r["image_id"])]}
                for r in rows if str(r["image_id"]) in hashes]
    else:
        logger.info("training from pixels, decoded in the Ray Data pipeline (data.preprocess_compute=%s): %s",
                    settings.data.preprocess_compute, why_not)
        if spec is None:
            raise ValueError("the model carries no preprocessing spec: it cannot train from pixels")
        stage = PixelStage(spec, settings.data.model_dump(mode="json"), rejects_sink)
    if not rows:
        raise ValueError("no train image could be read (see rejects.jsonl)")
    rows = sort_rows(rows)
    columns = ["image_id", "path", "caption"] + (["content_hash"] if cache else [])
    table = pa.table({c: [str(r[c]) for r in rows] for c in columns})
    micro = ts.batch_size * ts.grad_accum_steps
    iters = ts.iters_per_epoch or iters_in_one_pass(len(rows), micro, ts.workers)
    spec_of_plan = PlanSpec(ts.seed, ts.batch_size, ts.grad_accum_steps, ts.workers, iters, ts.max_epoch,
                            len(settings.bridge.template.instructions))
    plan = TrainPlan(table, spec_of_plan, run_dir)
    config = LoopConfig(settings=settings.to_json_dict(), run_dir=str(run_dir), iters_per_epoch=iters,
                        threads=_threads(settings), preprocess_spec=spec,
                        features_path=cache.folder if cache else None,
                        features_fingerprint=cache.fingerprint if cache else None,
                        feature_hashes=sorted(set(hashes.values())) if hashes else None)
    write_json(run_dir / SUMMARY_FILE, {
        "trainable_params": n_trainable, "model": model_summary, "data": summary, "train_rows": len(rows),
        "train_images": len({r["image_id"] for r in rows}), "iters_per_epoch": iters,
        "total_iters": iters * ts.max_epoch, "features_cache": cache.folder if cache else None})
    return config, plan, stage


def _record_rejects(run_dir: Path, sink: Any) -> None:
    """Rejects found while streaming (decode failures in the Ray Data pipeline) → rejects.jsonl + summary."""
    import ray.exceptions

    from mgpt_data.rejects import append_rejects, drain_rejects, read_rejects, unique_rejects

    try:
        found = drain_rejects(sink)
    except ray.exceptions.RayActorError as e:  # its node was lost: the run itself may be fine
        logger.warning("the rejects collected while training were lost with their actor (%s); "
                       "rejects.jsonl has only those found before training", str(e).splitlines()[0])
        return
    path = run_dir / REJECTS_FILE
    known = {(r.get("row"), r.get("reason")) for r in read_rejects(path)} if path.is_file() else set()
    new = [r for r in unique_rejects(found) if (r.get("row"), r.get("reason")) not in known]
    if new:
        append_rejects(path, new)
        logger.warning("%d images were rejected while training (see %s)", len(new), path)
    summary = read_json(run_dir / SUMMARY_FILE)
    summary["rejected_while_training"] = summary.get("rejected_while_training", 0) + len(new)
    write_json(run_dir / SUMMARY_FILE, summary)


def fit(
    settings: RunSettings, run_dir: Path | str, *, resume: bool = False, progress: bool = True
) -> ray.train.Result:
    """Train ``settings`` into ``run_dir`` with a `TorchTrainer`; ``resume`` continues its checkpoints.

    Raises ``FileExistsError`` when ``run_dir`` already has checkpoints and ``resume`` is False
    (Ray would silently continue them), ``FileNotFoundError`` when resuming a run with none,
    `DamagedCheckpointError` when the checkpoint to resume from does not read back (see
    `mgpt_train.resume_point`: ``train.resume_from`` picks an earlier one) and
    `OutputNotWritableError` when ``run_dir`` is read-only or short of space — all before training.
    """
    run_dir = check_persistent(run_dir)  # never inside Ray's temporary copy of a job's working dir
    settings = settings.with_absolute_paths()
    ts = settings.train
    if has_checkpoints(run_dir) and not resume:
        raise FileExistsError(
            f"{run_dir} already has checkpoints: resume it (--resume) or pick a new run name")
    if resume and not has_checkpoints(run_dir):
        raise FileNotFoundError(f"{run_dir} has no checkpoints to resume from")
    if ts.resume_from is not None and not resume:
        raise ValueError("train.resume_from (--resume-from) needs resume (--resume RUN_DIR)")
    ensure_writable_dir(run_dir)
    if resume:
        from mgpt_train.resume_point import prepare_resume

        settings = prepare_resume(run_dir, settings)
        ts = settings.train
    else:  # train.init_from: resolved to one checkpoint and checked to fit before Ray starts
        from mgpt_train.init_from import with_init_checkpoint

        settings = with_init_checkpoint(settings)
    write_json(run_dir / SETTINGS_FILE, settings.to_json_dict())
    ensure_ray(ts, num_cpus=local_cpus(settings))

    import ray.train
    from ray.train.torch import TorchTrainer

    from mgpt_data.rejects import start_rejects_sink
    from mgpt_train.ingest import RankShards
    from mgpt_train.loop import train_loop_per_worker

    sink = start_rejects_sink()
    config, plan, stage = prepare_run(settings, run_dir, resume=resume, rejects_sink=sink)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=config.as_dict(),
        scaling_config=ray.train.ScalingConfig(num_workers=ts.workers, use_gpu=ts.use_gpu,
                                               resources_per_worker={"CPU": ts.cpus_per_worker}),
        run_config=ray.train.RunConfig(
            name=CHECKPOINTS_DIR,
            storage_path=str(run_dir),
            failure_config=ray.train.FailureConfig(max_failures=ts.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=ts.keep_checkpoints),
            worker_runtime_env={"env_vars": worker_env()},
        ),
        datasets={"train": plan},
        dataset_config=RankShards(plan, stage),
    )
    total = config.iters_per_epoch * ts.max_epoch
    logger.info("training %d workers x batch %d x accum %d, %d iterations/epoch x %d epochs → %s",
                ts.workers, ts.batch_size, ts.grad_accum_steps, config.iters_per_epoch, ts.max_epoch,
                run_dir)
    try:
        with MetricsProgress(run_dir / METRICS_FILE, total=total, enabled=progress):
            result = trainer.fit()
    except ray.train.TrainingFailedError as e:
        full = output_write_error(e, run_dir)
        if full is not None:
            raise full from e
        raise
    finally:
        try:
            _record_rejects(run_dir, sink)
        except OSError as e:  # a full or read-only disk: never hide why training stopped
            logger.warning("could not record the rejects found while training: %s", e)
    logger.info("training finished; latest checkpoint %s", result.checkpoint)
    return result
