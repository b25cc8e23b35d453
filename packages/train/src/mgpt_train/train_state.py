"""Position of a run (epoch, step, global step) and saving/restoring it through Ray Train checkpoints."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from mgpt_train.checkpointing import (
    atomic_upload_fn,
    capture_rng_state,
    read_checkpoint_dir,
    restore_rng_state,
    wait_until_recorded,
    write_checkpoint_dir,
)
from mgpt_train.parallel import gathered_state

logger = logging.getLogger(__name__)


@dataclass
class Position:
    """The next iteration to run: ``step`` (0-based) of ``epoch`` (0-based); ``global_step`` done so far."""

    epoch: int = 0
    step: int = 0
    global_step: int = 0

    def normalised(self, iters_per_epoch: int) -> Position:
        """Roll a finished epoch (step == iters_per_epoch) over to the next one."""
        if self.step >= iters_per_epoch:
            return Position(self.epoch + 1, 0, self.global_step)
        return self


def gather_rng_states(world_size: int) -> list[dict[str, Any]]:
    """Every rank's RNG state (a collective: all ranks must call it)."""
    mine = capture_rng_state()
    if world_size == 1 or not dist.is_initialized():
        return [mine]
    out: list[Any] = [None] * world_size
    dist.all_gather_object(out, mine)
    return out


def save_and_report(
    *,
    metrics: dict[str, Any],
    dir_name: str,
    run_dir: Path,
    model: Any,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    position: Position,
    iters_per_epoch: int,
    settings: dict[str, Any],
    rank: int,
    world_size: int,
) -> None:
    """Write the checkpoint (rank 0) and report it to Ray; every rank must call this. Rank 0 returns
    once Ray has recorded it (`checkpointing.wait_until_recorded`)."""
    import ray.train

    from mgpt_train.rundir import CHECKPOINTS_DIR

    rng = gather_rng_states(world_size)
    trainable, optimizer_state = gathered_state(model, optimizer, rank)  # a collective when sharded (fsdp)
    if rank != 0:
        ray.train.report(metrics, checkpoint=None, checkpoint_dir_name=dir_name)
        return
    state = {"optimizer": optimizer_state, "scaler": scaler.state_dict(), "epoch": position.epoch,
             "step_in_epoch": position.step, "global_step": position.global_step,
             "iters_per_epoch": iters_per_epoch, "world_size": world_size, "rng": rng}
    with tempfile.TemporaryDirectory(prefix="mgpt-ckpt-") as tmp:
        local = write_checkpoint_dir(Path(tmp) / dir_name, trainable, state, settings)
        ray.train.report(
            metrics,
            checkpoint=ray.train.Checkpoint.from_directory(str(local)),
            checkpoint_dir_name=dir_name,
            checkpoint_upload_fn=atomic_upload_fn(run_dir / CHECKPOINTS_DIR),
        )
    if not wait_until_recorded(run_dir, dir_name):
        logger.warning("Ray Train has not recorded checkpoint %s after 60 s: a failure before it does "
                       "resumes from the checkpoint before it", dir_name)
    logger.info("checkpoint %s: epoch %d step %d (global %d)", dir_name, position.epoch, position.step,
                position.global_step)


def restore(
    checkpoint_dir: Path,
    *,
    model: Any,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    rank: int,
    world_size: int,
    iters_per_epoch: int,
) -> Position:
    """Load trainable params, optimizer, scaler and this rank's RNG; return where to continue."""
    trainable, state = read_checkpoint_dir(checkpoint_dir)
    model.load_trainable_state_dict(trainable)
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    if state.get("world_size") != world_size or state.get("iters_per_epoch") != iters_per_epoch:
        logger.warning(
            "checkpoint was written with %s workers / %s iterations per epoch, now %d / %d: the data "
            "order after resume differs from an uninterrupted run", state.get("world_size"),
            state.get("iters_per_epoch"), world_size, iters_per_epoch)
    rng = state.get("rng") or []
    if rank < len(rng):
        restore_rng_state(rng[rank])
    position = Position(int(state["epoch"]), int(state["step_in_epoch"]), int(state["global_step"]))
    logger.info("resumed from %s at epoch %d step %d (global step %d)", checkpoint_dir, position.epoch,
                position.step, position.global_step)
    return position.normalised(iters_per_epoch)
