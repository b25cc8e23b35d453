"""Deterministic per-epoch order and instruction sampling (what makes resume exact)."""

from __future__ import annotations

import pytest

from mgpt_train.data_order import batch_indices, instruction_indices, iters_in_one_pass


def test_one_pass_covers_every_row_once_across_ranks() -> None:
    n, bs, world = 24, 3, 2
    steps = iters_in_one_pass(n, bs, world)
    assert steps == 4
    seen = [i for s in range(steps) for r in range(world)
            for i in batch_indices(n, seed=1, epoch=0, step=s, batch_size=bs, world_size=world, rank=r)]
    assert sorted(seen) == list(range(n))


def test_order_depends_on_epoch_and_seed_only() -> None:
    kw = dict(step=2, batch_size=4, world_size=2, rank=1)
    a = batch_indices(50, seed=7, epoch=3, **kw)
    assert a == batch_indices(50, seed=7, epoch=3, **kw)
    assert a != batch_indices(50, seed=7, epoch=4, **kw)
    assert a != batch_indices(50, seed=8, epoch=3, **kw)


def test_long_epoch_wraps_into_a_fresh_permutation() -> None:
    rows = [i for s in range(5) for i in batch_indices(10, seed=0, epoch=0, step=s, batch_size=4,
                                                         world_size=1, rank=0)]
    assert sorted(rows[:10]) == list(range(10))
    assert sorted(rows[10:20]) == list(range(10))


def test_too_few_rows_and_bad_rank_raise() -> None:
    with pytest.raises(ValueError, match="fewer than one global batch"):
        iters_in_one_pass(5, 4, 2)
    with pytest.raises(ValueError, match="rank"):
        batch_indices(10, seed=0, epoch=0, step=0, batch_size=2, world_size=2, rank=2)


def test_instruction_indices_are_a_function_of_seed_step_and_sample() -> None:
    a = instruction_indices(42, 10, list(range(32)), 4)
    assert a == instruction_indices(42, 10, list(range(32)), 4)
    assert all(0 <= i < 4 for i in a) and len(set(a)) > 1
    assert a != instruction_indices(42, 11, list(range(32)), 4)


def test_epoch_plan_equals_the_per_batch_functions() -> None:
    from mgpt_train.data_order import epoch_plan

    n, b, w, accum, iters = 13, 3, 2, 2, 4  # 4 iterations x 2 micro x 2 ranks x 3 = 48 samples > 13: 4 passes
    plan = epoch_plan(n, seed=5, epoch=1, first_step=1, iters_per_epoch=iters, grad_accum_steps=accum,
                      batch_size=b, world_size=w, n_instructions=4)
    k = 0
    for step in range(1, iters):
        for micro in range(accum):
            for rank in range(w):
                micro_step = step * accum + micro
                rows = batch_indices(n, seed=5, epoch=1, step=micro_step, batch_size=b, world_size=w,
                                     rank=rank)
                first = (micro_step * w + rank) * b
                instr = instruction_indices(5, iters + step + 1, list(range(first, first + b)), 4)
                for slot in range(b):
                    got = {key: int(plan[key][k]) for key in plan}
                    assert got == {"epoch": 1, "step": step, "micro": micro, "rank": rank, "slot": slot,
                                   "global_step": iters + step + 1, "row": rows[slot],
                                   "instruction": instr[slot]}
                    k += 1
    assert k == len(plan["row"])
