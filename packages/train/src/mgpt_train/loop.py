"""`train_loop_per_worker`: what every Ray Train worker runs.

Per iteration (one optimizer step = ``grad_accum_steps`` micro-batches of ``batch_size``): set the
lr from `linear_warmup_cosine_lr`, then `mgpt_train.step.train_step` (forward/backward under
autocast, DDP syncing on the last micro-batch only, optional clipping, AdamW step). Rank 0 appends
every iteration to ``metrics.jsonl`` and logs every ``log_every``; all ranks ``ray.train.report``
at checkpoints only (a report is a barrier across ranks and may wait for the controller's next poll,
see ``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S`` in `mgpt_data.ray_runtime.PROCESS_ENV`).
Resume comes from ``ray.train.get_checkpoint()`` and reproduces an uninterrupted run exactly
(see `mgpt_train.data_order`).
"""

from __future__ import annotations

import logging
import resource
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from mgpt_train.collate import model_inputs
from mgpt_train.fault_injection import maybe_fail, maybe_hang
from mgpt_train.ingest import check_micro_batch, skip_to
from mgpt_train.init_from import load_init
from mgpt_train.loop_config import LoopConfig
from mgpt_train.metrics_log import MetricsLog
from mgpt_train.modeling import build_model
from mgpt_train.optim import build_optimizer
from mgpt_train.parallel import prepare_parallel
from mgpt_train.run_settings import RunSettings
from mgpt_train.rundir import METRICS_FILE
from mgpt_train.schedule import linear_warmup_cosine_lr
from mgpt_train.settings import resolve_precision
from mgpt_train.step import train_step
from mgpt_train.train_state import Position, restore, save_and_report

logger = logging.getLogger(__name__)


def _max_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _all_mean(value: torch.Tensor, world_size: int) -> float:
    if world_size > 1 and dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= world_size
    return float(value)


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """The Ray Train worker function (``TorchTrainer(train_loop_per_worker, train_loop_config=...)``).

    ``loop_config`` is `LoopConfig.as_dict()`.
    """
    import ray.train
    import ray.train.torch

    config = LoopConfig(**loop_config)
    settings = RunSettings.from_json_dict(config.settings)
    ts = settings.train
    run_dir = Path(config.run_dir)
    iters = config.iters_per_epoch
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(config.threads)
    device = ray.train.torch.get_device()
    precision = resolve_precision(ts.precision, device.type)
    logger.info("worker %d/%d on %s, %d threads, precision %s", rank, world, device,
                torch.get_num_threads(), precision)

    model = build_model(settings, device=device, precision=precision)
    # dropout (LoRA's, a tuned LM's) draws from a state that is a function of (seed, rank): two fresh
    # runs repeat each other whatever the worker process ran before; a resume restores the saved state
    torch.manual_seed(ts.seed * 1_000_003 + rank)
    features = None
    if config.features_path:
        from mgpt_train.feature_store import FeatureCache, read_features

        features = read_features(FeatureCache(config.features_path, config.features_fingerprint or {}),
                                 set(config.feature_hashes or ()))
    instructions = list(settings.bridge.template.instructions)
    optimizer = build_optimizer(model, ts.init_lr, ts.weight_decay, tuple(ts.betas))
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    position = Position()
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as ckpt_dir:
            position = restore(Path(ckpt_dir), model=model, optimizer=optimizer, scaler=scaler, rank=rank,
                               world_size=world, iters_per_epoch=iters)
    elif ts.init_from is not None:  # a fresh run chained to another one's weights (stage 2 from stage 1)
        load_init(model, ts.init_from)
    ddp, optimizer = prepare_parallel(  # ddp, or fsdp: sharded, the optimizer rebuilt over the shards
        model, optimizer, ts.parallel, device=device,
        rebuild_optimizer=lambda m: build_optimizer(m, ts.init_lr, ts.weight_decay, tuple(ts.betas)))
    _record_worker_nodes(run_dir, rank, world)
    metrics_log = MetricsLog(run_dir / METRICS_FILE) if rank == 0 else None
    if metrics_log is not None:
        metrics_log.truncate_after(position.global_step)
    settings_json = config.settings
    ddp.train()
    shard = ray.train.get_dataset_shard("train")
    batches = iter(shard.iter_batches(batch_size=ts.batch_size, batch_format="numpy",
                                      prefetch_batches=settings.data.prefetch_batches))
    pending, skipped = skip_to(batches, position)
    if skipped:
        logger.warning("skipped %d planned micro-batches before epoch %d step %d", skipped, position.epoch,
                       position.step)

    def micro_batch(epoch: int, step: int, micro: int) -> tuple[dict[str, Any], bool]:
        """The model inputs of micro-batch ``micro`` of iteration ``step``: the shard's next batch."""
        nonlocal pending
        rows = pending if pending is not None else next(batches, None)
        pending = None
        if rows is None:
            raise RuntimeError(f"the training plan ended before epoch {epoch} step {step}")
        check_micro_batch(rows, epoch, step, micro)
        return model_inputs(rows, instructions=instructions, spec=config.preprocess_spec, features=features)

    for epoch in range(position.epoch, ts.max_epoch):
        first_step = position.step if epoch == position.epoch else 0
        for step in range(first_step, iters):
            t0, cpu0 = time.perf_counter(), time.process_time()
            lr = linear_warmup_cosine_lr(epoch, step, iters, ts.max_epoch, ts.init_lr, ts.min_lr,
                                         ts.warmup_lr, ts.warmup_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            global_step = position.global_step + 1
            result = train_step(ddp, optimizer, scaler, partial(micro_batch, epoch, step),
                                grad_accum_steps=ts.grad_accum_steps, precision=precision, device=device,
                                grad_clip=ts.grad_clip, world_size=world)
            position = Position(epoch, step + 1, global_step)
            loss_value = _all_mean(result.loss, world)
            record = {"epoch": epoch, "step": step, "global_step": global_step, "loss": loss_value, "lr": lr,
                      "sec_per_it": time.perf_counter() - t0, "data_sec": result.data_sec,
                      "cpu_sec": time.process_time() - cpu0, "time": time.time()}
            if metrics_log is not None:
                metrics_log.append(record)
            maybe_fail(ts.fail_at_step, global_step, run_dir, rank)
            maybe_hang(ts.hang_at_step, global_step, run_dir, rank)
            stop = global_step == ts.stop_at_step
            ckpt_name = None
            if step + 1 == iters:
                ckpt_name = f"epoch_{epoch}"
            elif stop or (ts.checkpoint_every_steps and global_step % ts.checkpoint_every_steps == 0):
                ckpt_name = f"step_{global_step}"
            metrics = {**record, "max_memory_mb": _max_memory_mb(device), "precision": precision}
            if ckpt_name is not None:
                save_and_report(metrics=metrics, dir_name=ckpt_name, run_dir=run_dir, model=model,
                                optimizer=optimizer, scaler=scaler, position=position.normalised(iters),
                                iters_per_epoch=iters, settings=settings_json, rank=rank, world_size=world)
            if global_step % ts.log_every == 0 and rank == 0:
                logger.info("epoch %d step %d/%d loss %.4f lr %.3g %.2f s/it (data %.2f s) mem %.0f MB",
                            epoch, step + 1, iters, loss_value, lr, record["sec_per_it"], result.data_sec,
                            metrics["max_memory_mb"])
            if stop:
                logger.info("stopping at global step %d (train.stop_at_step)", global_step)
                return
        position = position.normalised(iters)


def _record_worker_nodes(run_dir: Path, rank: int, world_size: int) -> None:
    """Rank 0 writes every rank's Ray node id into ``summary.json`` (``worker_nodes``, by rank)."""
    import ray

    from mgpt_train.rundir import SUMMARY_FILE, read_json, write_json

    node = ray.get_runtime_context().get_node_id()
    nodes: list[Any] = [node]
    if world_size > 1 and dist.is_initialized():
        nodes = [None] * world_size
        dist.all_gather_object(nodes, node)
    if rank == 0 and (run_dir / SUMMARY_FILE).is_file():
        summary = read_json(run_dir / SUMMARY_FILE)
        write_json(run_dir / SUMMARY_FILE, {**summary, "worker_nodes": nodes})
