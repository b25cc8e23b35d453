"""Deterministic data order: which rows and which instruction each worker uses at each iteration.

Resume must reproduce an uninterrupted run exactly, so nothing here depends on Ray's block
scheduling: every worker sees the same row table (sorted by a stable key), and iteration ``step``
of ``epoch`` takes the next ``batch_size * world_size`` indices of a stream of permutations drawn
from ``(seed, epoch, pass)``; rank ``r`` takes its contiguous slice. Skipping done iterations is
pure arithmetic, no data is read for them.
"""

from __future__ import annotations

import numpy as np


def iters_in_one_pass(n_rows: int, batch_size: int, world_size: int) -> int:
    """Full global batches in one pass over ``n_rows`` (the last, partial one is dropped)."""
    per_step = batch_size * world_size
    if n_rows < per_step:
        raise ValueError(
            f"the train split has {n_rows} rows, fewer than one global batch "
            f"(batch_size {batch_size} x {world_size} workers = {per_step})"
        )
    return n_rows // per_step


def _permutation(n_rows: int, seed: int, epoch: int, pass_index: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch, pass_index]).permutation(n_rows)


def batch_indices(
    n_rows: int, *, seed: int, epoch: int, step: int, batch_size: int, world_size: int, rank: int
) -> list[int]:
    """Row indices of rank ``rank``'s micro-batch at iteration ``step`` of ``epoch``.

    ``step`` counts micro-batches (iteration × grad_accum_steps + micro index). When an epoch is
    longer than one pass, it continues into a fresh permutation of the same epoch.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world of {world_size}")
    per_step = batch_size * world_size
    start = step * per_step + rank * batch_size
    out: list[int] = []
    pos = start
    while len(out) < batch_size:
        pass_index, offset = divmod(pos, n_rows)
        perm = _permutation(n_rows, seed, epoch, pass_index)
        take = min(batch_size - len(out), n_rows - offset)
        out.extend(int(i) for i in perm[offset : offset + take])
        pos += take
    return out


def instruction_indices(seed: int, global_step: int, sample_ids: list[int], n_instructions: int) -> list[int]:
    """Instruction index per sample, a pure function of (seed, global_step, sample id)."""
    if n_instructions < 1:
        raise ValueError("the instruction pool is empty")
    return [int(np.random.default_rng([seed, global_step, s]).integers(n_instructions)) for s in sample_ids]


def epoch_plan(
    n_rows: int, *, seed: int, epoch: int, first_step: int, iters_per_epoch: int, grad_accum_steps: int,
    batch_size: int, world_size: int, n_instructions: int, stop_step: int | None = None,
) -> dict[str, np.ndarray]:
    """Every sample of ``epoch`` from iteration ``first_step`` up to ``stop_step`` (default: the epoch's
    end), in training order, as columns.

    Row ``k`` of the result is sample ``k`` of the stream: iteration ``step``, micro-batch ``micro``,
    rank ``rank``, position in the rank's micro-batch ``slot``; ``row`` indexes the sorted row table
    and ``instruction`` the template's pool. It equals `batch_indices` / `instruction_indices` called
    per micro-batch (tested), computed with one permutation per pass instead of one per call.
    """
    per_step = batch_size * world_size
    stop = iters_per_epoch if stop_step is None else min(stop_step, iters_per_epoch)
    first_micro, n_micro = first_step * grad_accum_steps, stop * grad_accum_steps
    position = np.arange(first_micro * per_step, n_micro * per_step, dtype=np.int64)
    pass_index, offset = np.divmod(position, n_rows)
    row = np.empty_like(position)
    for p in np.unique(pass_index):
        where = pass_index == p
        row[where] = _permutation(n_rows, seed, epoch, int(p))[offset[where]]
    micro_step, within = np.divmod(position, per_step)
    rank, slot = np.divmod(within, batch_size)
    step, micro = np.divmod(micro_step, grad_accum_steps)
    global_step = epoch * iters_per_epoch + step + 1
    instruction = np.asarray([instruction_indices(seed, int(g), [int(s)], n_instructions)[0]
                              for g, s in zip(global_step, position, strict=True)], dtype=np.int64)
    return {"epoch": np.full(len(position), epoch, np.int64), "step": step, "micro": micro, "rank": rank,
            "slot": slot, "global_step": global_step, "row": row, "instruction": instruction}
