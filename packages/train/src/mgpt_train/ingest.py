"""The training input as a Ray Data pipeline, deterministic per (seed, epoch) and exact on resume.

Ray Train's default split (``streaming_split``) hands blocks to whichever worker asks first, so which
samples reach which rank — and in which order — changes from run to run. mgpt therefore never lets
Ray decide the order; it *plans* it:

1. **The plan** (`TrainPlan`, passed to the trainer as ``datasets={"train": plan}``). Ray Train calls
   it at every worker-group start (the first, and each restart after a failure). It reads where the
   run stands — the latest checkpoint Ray recorded (``checkpoint_manager_snapshot.json``) — and
   returns a Dataset of the *blocks* still to train (`plan.plan_items`: runs of whole iterations, about
   `plan.BLOCK_ROWS` samples of each rank), in training order. Nothing is planned for iterations
   already done, and the driver never holds the plan's rows.
2. **The split** (`RankShards`, a ``DataConfig``): rank ``r`` expands every block into its own rows
   (`plan.RankRows`: `data_order.epoch_plan`, a pure function of seed, epoch and the sorted row table,
   kept where ``rank == r``) with columns ``epoch, step, micro, rank, slot, global_step, instruction``
   plus the row's ``image_id, path, caption`` (and ``content_hash`` with the feature cache), with
   ``preserve_order``: every rank sees exactly its samples in plan order, whatever the scheduling.
3. **The stage**: from pixels, `PixelStage` decodes + transforms each row (``mgpt_data.add_pixels``)
   in the *same* Ray Data call that expands the block (``expand=RankRows``), on the
   ``data.preprocess_compute`` pool: one task per block of one rank, nothing between plan and pixels
   (a plan operator, a filter and the decode as three operators ran at 0.4x a DataLoader on 8,000
   photos). An undecodable image becomes a placeholder row (``valid = False``, rejected with its
   reason to the rejects sink) so micro-batch boundaries stay where the plan put them. From the
   feature cache there is no stage: `RankRows` runs alone and workers look features up.
4. **The worker** iterates its shard with ``iter_batches(batch_size=batch_size, prefetch_batches=k)``:
   every batch is one micro-batch; its ``(epoch, step, micro)`` is checked against the loop's
   position (`check_micro_batch`), so a resumed run provably continues at the exact sample.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import ray.train

from mgpt_train.plan import PLAN_TASK_CPUS, PLAN_TASKS, PlanSpec, RankRows, plan_items
from mgpt_train.train_state import Position

if TYPE_CHECKING:
    import pyarrow as pa
    import ray.data

logger = logging.getLogger(__name__)

ROW_COLUMNS = ("image_id", "path", "caption")


class TrainPlan:
    """``datasets={"train": TrainPlan(...)}``: a Dataset factory Ray Train calls at each worker-group start.

    ``rows``: the training rows as an Arrow table in their stable sort order (``image_id, path,
    caption`` and, with the feature cache, ``content_hash``).
    """

    def __init__(self, rows: pa.Table, spec: PlanSpec, run_dir: str | Path) -> None:
        self.rows = rows
        self.spec = spec
        self.run_dir = str(run_dir)

    def start(self) -> Position:
        return latest_position(Path(self.run_dir), self.spec.iters_per_epoch)

    def __call__(self) -> ray.data.Dataset:
        import ray.data

        start = self.start()
        items = plan_items(self.spec, start.epoch, start.step)
        logger.info("training plan from epoch %d step %d (%d blocks to expand)", start.epoch, start.step,
                    len(items))
        empty = {"epoch": self.spec.max_epoch, "first_step": 0, "stop_step": 0}
        source = ray.data.from_items(items or [empty], override_num_blocks=max(1, len(items)))
        return source if items else source.limit(0)

    def rank_rows(self, rank: int) -> RankRows:
        """The UDF that expands this plan's blocks into rank ``rank``'s rows."""
        return RankRows(self.rows, self.spec, rank)


class RankShards(ray.train.DataConfig):
    """Rank ``r`` reads exactly the rows of ``plan`` with ``rank == r``, in plan order, through ``stage``."""

    def __init__(self, plan: TrainPlan, stage: Any = None) -> None:
        super().__init__(datasets_to_split=[])
        self.plan = plan
        self.stage = stage

    def configure(self, datasets: dict[str, ray.data.Dataset], world_size: int, worker_handles: Any,
                  worker_node_ids: Any, **kwargs: Any) -> list[dict[str, Any]]:
        import ray.data

        out: list[dict[str, Any]] = [{} for _ in range(world_size)]
        for name, blocks in datasets.items():
            for rank in range(world_size):
                expand = self.plan.rank_rows(rank)
                if self.stage is not None:
                    shard = self.stage(blocks, expand)
                else:  # a small CPU share: it must fit beside 0.75-CPU workers on 1-CPU nodes
                    shard = blocks.map_batches(expand, batch_size=1, batch_format="numpy",
                                               num_cpus=PLAN_TASK_CPUS,
                                               compute=ray.data.TaskPoolStrategy(size=PLAN_TASKS))
                options = self._resolve_execution_options(name)
                options.preserve_order = True
                shard.context.execution_options = options
                out[rank][name] = shard.iterator()
        return out


@dataclass(frozen=True)
class PixelStage:
    """Plan blocks → one rank's rows + pixels in one Ray Data call (``mgpt_data.add_pixels`` with
    ``expand``), placeholders for bad images."""

    spec: dict[str, Any]
    data_settings: dict[str, Any]
    rejects_sink: Any = None

    def __call__(self, blocks: ray.data.Dataset, expand: RankRows) -> ray.data.Dataset:
        from mgpt_data import DataSettings, add_pixels

        data = DataSettings.model_validate(self.data_settings)
        return add_pixels(blocks, self.spec, data, augment=data.augment, rejects_sink=self.rejects_sink,
                          placeholders=True, expand=expand)


def check_micro_batch(batch: dict[str, np.ndarray], epoch: int, step: int, micro: int) -> None:
    """Raise unless every row of ``batch`` is in micro-batch ``micro`` of iteration ``step`` of ``epoch``."""
    want = (epoch, step, micro)
    got = {(int(e), int(s), int(m)) for e, s, m in zip(batch["epoch"], batch["step"], batch["micro"],
                                                       strict=True)}
    if got != {want}:
        raise RuntimeError(f"training plan out of step: expected epoch/step/micro {want}, the shard gave "
                           f"{sorted(got)[:3]} (the plan must start where the checkpoint left off)")


def skip_to(batches: Any, position: Position) -> tuple[dict[str, np.ndarray] | None, int]:
    """Advance ``batches`` to the first micro-batch at or after ``position``; returns it and how many were
    skipped (0 unless the plan started before the restored checkpoint)."""
    skipped = 0
    for batch in batches:
        where = (int(batch["epoch"][0]), int(batch["step"][0]))
        if where >= (position.epoch, position.step):
            return batch, skipped
        skipped += 1
    return None, skipped


def latest_position(run_dir: Path, iters_per_epoch: int) -> Position:
    """Where a run resumes: the position saved in the latest checkpoint Ray recorded (else the start)."""
    from mgpt_train.checkpointing import latest_checkpoint_dir, read_train_state

    ckpt = latest_checkpoint_dir(run_dir)
    if ckpt is None:
        return Position()
    state = read_train_state(ckpt)
    position = Position(int(state["epoch"]), int(state["step_in_epoch"]), int(state["global_step"]))
    return position.normalised(iters_per_epoch)
