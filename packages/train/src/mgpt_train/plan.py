"""The training plan's Ray Data UDF and its blocks: what each plan task runs, kept light.

A plan task's process imports only this module (numpy, pyarrow and `mgpt_train.data_order`), never
torch or Ray Train: when the UDF lived beside `TrainPlan` (`mgpt_train.ingest`), every fresh Ray
worker running it imported torch and Ray Train first (~6 s of CPU each), and on 2 cores the first
batch of the main job waited ~55 s for the plan. From pixels, `RankRows` runs inside the decode
stage's own task (``mgpt_data.add_pixels(expand=...)``); from the feature cache, alone, `PLAN_TASKS`
at a time per rank.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mgpt_train.data_order import epoch_plan

if TYPE_CHECKING:
    import pyarrow as pa

PLAN_TASK_CPUS = 0.25  # expanding a plan block is integer arithmetic
# one plan task at a time per rank (feature-cache runs): a block takes milliseconds, and each task
# beyond the first only started another Ray worker process
PLAN_TASKS = 1
# samples of one rank per block (rounded to whole iterations): the unit of decode work, one call of
# the decode stage; 128 photos are ~0.4 s of decoding, so the per-call cost of Ray Data stays small
BLOCK_ROWS = 128


@dataclass(frozen=True)
class PlanSpec:
    """What the order of samples is a pure function of (besides the sorted row table)."""

    seed: int
    batch_size: int
    grad_accum_steps: int
    world_size: int
    iters_per_epoch: int
    max_epoch: int
    n_instructions: int


def expand_epochs(batch: dict[str, np.ndarray], rows: pa.Table, spec: PlanSpec,
                  rank: int | None = None) -> pa.Table:
    """``{epoch, first_step, stop_step}`` items (`plan_items`) → the plan rows of those iterations, in
    training order: every rank's, or only ``rank``'s."""
    import pyarrow as pa

    tables = []
    for epoch, first_step, stop in zip(batch["epoch"], batch["first_step"], batch["stop_step"], strict=True):
        cols = epoch_plan(rows.num_rows, seed=spec.seed, epoch=int(epoch), first_step=int(first_step),
                          iters_per_epoch=spec.iters_per_epoch, grad_accum_steps=spec.grad_accum_steps,
                          batch_size=spec.batch_size, world_size=spec.world_size,
                          n_instructions=spec.n_instructions, stop_step=int(stop))
        if rank is not None:
            mine = cols["rank"] == rank
            cols = {k: v[mine] for k, v in cols.items()}
        picked = rows.take(pa.array(cols.pop("row")))
        tables.append(pa.Table.from_pydict({**cols, **{c: picked[c] for c in picked.column_names}}))
    return pa.concat_tables(tables) if tables else pa.table({})


@dataclass(frozen=True)
class RankRows:
    """Ray Data UDF: plan items → rank ``rank``'s plan rows of those iterations, as numpy columns."""

    rows: pa.Table
    spec: PlanSpec
    rank: int

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        table = expand_epochs(batch, self.rows, self.spec, rank=self.rank)
        return {c: table[c].to_numpy(zero_copy_only=False) for c in table.column_names}


def plan_items(spec: PlanSpec, epoch: int, step: int) -> list[dict[str, int]]:
    """The plan's blocks from iteration ``step`` of ``epoch`` on: runs of whole iterations of about
    `BLOCK_ROWS` samples of each rank; the very first is one iteration, so that the first step waits
    for one iteration's decoding, not a block's."""
    per_step = spec.batch_size * spec.grad_accum_steps
    steps = max(1, BLOCK_ROWS // per_step)
    items = []
    for e in range(epoch, spec.max_epoch):
        s = step if e == epoch else 0
        while s < spec.iters_per_epoch:
            stop = min(s + (1 if not items else steps), spec.iters_per_epoch)
            items.append({"epoch": e, "first_step": s, "stop_step": stop})
            s = stop
    return items
