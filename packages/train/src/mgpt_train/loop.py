"""`train_loop_per_worker`: what every Ray Train worker runs.

Per iteration (one optimizer step = ``grad_accum_steps`` micro-batches of ``batch_size``): set the
lr from `linear_warmup_cosine_lr`, forward/backward under autocast (DDP syncs on the last
micro-batch only), optional clipping, AdamW step. Rank 0 appends every iteration to
``metrics.jsonl``; all ranks ``ray.train.report`` every ``log_every`` iterations and at checkpoints.
Resume comes from ``ray.train.get_checkpoint()`` and reproduces an uninterrupted run exactly
(see `mgpt_train.data_order`).
"""

from __future__ import annotations

import logging
import resource
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from mgpt_train.collate import Batcher
from mgpt_train.loop_config import LoopConfig
from mgpt_train.metrics_log import MetricsLog
from mgpt_train.modeling import autocast, build_model
from mgpt_train.optim import build_optimizer
from mgpt_train.run_settings import RunSettings
from mgpt_train.rundir import METRICS_FILE
from mgpt_train.schedule import linear_warmup_cosine_lr
from mgpt_train.settings import resolve_precision
from mgpt_train.train_state import Position, restore, save_and_report

logger = logging.getLogger(__name__)

FAIL_MARKER = ".injected_failure_at_step_{}"


class InjectedFailure(RuntimeError):
    """Raised once by `fail_at_step` to test fault tolerance."""


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


def _load_rows(shard: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in shard.iter_rows()]


def _make_batcher(config: LoopConfig, settings: RunSettings, rows: list[dict[str, Any]], rank: int,
                  world_size: int) -> Batcher:
    common = dict(seed=settings.train.seed, batch_size=settings.train.batch_size, world_size=world_size,
                  rank=rank)
    instructions = list(settings.bridge.template.instructions)
    if config.features_path:
        from mgpt_vision import load_feature_cache

        features = load_feature_cache(Path(config.features_path), config.features_fingerprint,
                                      ids=sorted({str(r["image_id"]) for r in rows}))
        return Batcher(rows, instructions, features=features, **common)
    from mgpt_data import ImagePreprocessor

    data = settings.data
    spec = config.preprocess_spec

    def factory(epoch: int) -> ImagePreprocessor:
        return ImagePreprocessor(spec, augment=data.augment, seed=data.seed + epoch, hflip=data.hflip,
                                 crop_scale=tuple(data.crop_scale))

    return Batcher(rows, instructions, preprocessor_factory=factory, **common)


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

    model = build_model(settings, device=device)
    rows = _load_rows(ray.train.get_dataset_shard("train"))
    batcher = _make_batcher(config, settings, rows, rank, world)
    optimizer = build_optimizer(model, ts.init_lr, ts.weight_decay, tuple(ts.betas))
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    position = Position()
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as ckpt_dir:
            position = restore(Path(ckpt_dir), model=model, optimizer=optimizer, scaler=scaler, rank=rank,
                               world_size=world, iters_per_epoch=iters)
    ddp = ray.train.torch.prepare_model(model, parallel_strategy_kwargs={"forward_sync_buffers": False})
    metrics_log = MetricsLog(run_dir / METRICS_FILE) if rank == 0 else None
    if metrics_log is not None:
        metrics_log.truncate_after(position.global_step)
    trainable = [p for p in model.parameters() if p.requires_grad]
    settings_json = config.settings
    ddp.train()

    for epoch in range(position.epoch, ts.max_epoch):
        first_step = position.step if epoch == position.epoch else 0
        for step in range(first_step, iters):
            t0 = time.perf_counter()
            lr = linear_warmup_cosine_lr(epoch, step, iters, ts.max_epoch, ts.init_lr, ts.min_lr,
                                         ts.warmup_lr, ts.warmup_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            data_sec = 0.0
            loss_sum = torch.zeros((), dtype=torch.float32)
            global_step = position.global_step + 1
            for micro in range(ts.grad_accum_steps):
                td = time.perf_counter()
                batch = batcher.micro_batch(epoch=epoch, micro_step=step * ts.grad_accum_steps + micro,
                                            global_step=global_step)
                for key in ("features", "pixels"):
                    if key in batch:
                        batch[key] = batch[key].to(device)
                data_sec += time.perf_counter() - td
                last = micro == ts.grad_accum_steps - 1
                sync = nullcontext() if last or world == 1 else ddp.no_sync()
                with sync:
                    with autocast(precision, device.type):
                        loss = ddp(**batch).loss
                    scaler.scale(loss.float() / ts.grad_accum_steps).backward()
                loss_sum += loss.detach().float().cpu()
            if ts.grad_clip is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(trainable, ts.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            position = Position(epoch, step + 1, global_step)
            loss_value = _all_mean(loss_sum / ts.grad_accum_steps, world)
            record = {"epoch": epoch, "step": step, "global_step": global_step, "loss": loss_value, "lr": lr,
                      "sec_per_it": time.perf_counter() - t0, "data_sec": data_sec}
            if metrics_log is not None:
                metrics_log.append(record)
            _maybe_fail(ts.fail_at_step, global_step, run_dir, rank)
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
            elif global_step % ts.log_every == 0:
                ray.train.report(metrics)
            if global_step % ts.log_every == 0 and rank == 0:
                logger.info("epoch %d step %d/%d loss %.4f lr %.3g %.2f s/it (data %.2f s) mem %.0f MB",
                            epoch, step + 1, iters, loss_value, lr, record["sec_per_it"], data_sec,
                            metrics["max_memory_mb"])
            if stop:
                logger.info("stopping at global step %d (train.stop_at_step)", global_step)
                return
        position = position.normalised(iters)


def _maybe_fail(fail_at_step: int | None, global_step: int, run_dir: Path, rank: int) -> None:
    """Raise once at ``fail_at_step`` on rank 0 (a marker file in the run dir makes it once only)."""
    if fail_at_step is None or global_step != fail_at_step or rank != 0:
        return
    marker = run_dir / FAIL_MARKER.format(fail_at_step)
    if marker.exists():
        return
    marker.write_text("injected failure\n")
    raise InjectedFailure(f"injected failure at global step {global_step} (train.fail_at_step)")
