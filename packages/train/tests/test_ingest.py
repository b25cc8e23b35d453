"""The training plan through Ray Data: per-rank shards are exactly the planned samples, in order, every
time; the plan starts where Ray's latest checkpoint left off; micro-batch checks catch a misaligned plan."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from mgpt_train.data_order import epoch_plan
from mgpt_train.ingest import RankShards, TrainPlan, check_micro_batch, latest_position, skip_to
from mgpt_train.plan import PlanSpec, RankRows, expand_epochs, plan_items
from mgpt_train.train_state import Position

ROWS = pa.table({"image_id": [f"i{k}" for k in range(11)], "path": [f"/x/{k}.jpg" for k in range(11)],
                 "caption": [f"c{k}" for k in range(11)]})
SPEC = PlanSpec(seed=7, batch_size=2, grad_accum_steps=2, world_size=2, iters_per_epoch=3, max_epoch=2,
                n_instructions=3)


def _shard_rows(plan: TrainPlan, rank: int) -> list[tuple]:
    shards = RankShards(plan).configure({"train": plan()}, SPEC.world_size, None, None)
    out = []
    for batch in shards[rank]["train"].iter_batches(batch_size=SPEC.batch_size, batch_format="numpy"):
        out += list(zip(*(batch[k].tolist() for k in ("epoch", "step", "micro", "slot", "image_id",
                                                       "instruction")), strict=True))
    return out


def _planned(rank: int, first_epoch: int = 0, first_step: int = 0) -> list[tuple]:
    out = []
    for epoch in range(first_epoch, SPEC.max_epoch):
        start = first_step if epoch == first_epoch else 0
        cols = epoch_plan(ROWS.num_rows, seed=SPEC.seed, epoch=epoch, first_step=start,
                          iters_per_epoch=SPEC.iters_per_epoch, grad_accum_steps=SPEC.grad_accum_steps,
                          batch_size=SPEC.batch_size, world_size=SPEC.world_size,
                          n_instructions=SPEC.n_instructions)
        for k in np.flatnonzero(cols["rank"] == rank):
            out.append((epoch, int(cols["step"][k]), int(cols["micro"][k]), int(cols["slot"][k]),
                        f"i{int(cols['row'][k])}", int(cols["instruction"][k])))
    return out


@pytest.mark.ray
def test_each_rank_gets_exactly_its_planned_samples_in_order_every_time(ray_session, tmp_path: Path) -> None:
    plan = TrainPlan(ROWS, SPEC, tmp_path)
    for rank in range(SPEC.world_size):
        first = _shard_rows(plan, rank)
        assert first == _planned(rank) == _shard_rows(plan, rank)  # deterministic across executions
        assert len(first) == SPEC.max_epoch * SPEC.iters_per_epoch * SPEC.grad_accum_steps * SPEC.batch_size


def _fake_checkpoint(run_dir: Path, name: str, epoch: int, step: int, global_step: int) -> None:
    ckpt = run_dir / "checkpoints" / name
    ckpt.mkdir(parents=True)
    torch.save({"epoch": epoch, "step_in_epoch": step, "global_step": global_step}, ckpt / "train_state.pt")
    (run_dir / "checkpoints" / "checkpoint_manager_snapshot.json").write_text(
        json.dumps({"latest_checkpoint_result": {"checkpoint_dir_name": name, "metrics": {}}}))


@pytest.mark.ray
def test_a_resumed_plan_starts_at_the_checkpoint(ray_session, tmp_path: Path) -> None:
    assert latest_position(tmp_path, SPEC.iters_per_epoch) == Position()
    _fake_checkpoint(tmp_path, "step_2", 0, 2, 2)
    assert latest_position(tmp_path, SPEC.iters_per_epoch) == Position(0, 2, 2)
    plan = TrainPlan(ROWS, SPEC, tmp_path)
    assert _shard_rows(plan, 1) == _planned(1, 0, 2)  # nothing before epoch 0 step 2 is planned (or read)


def test_a_finished_epoch_rolls_over(tmp_path: Path) -> None:
    _fake_checkpoint(tmp_path, "epoch_0", 0, 3, 3)  # step == iters_per_epoch
    assert latest_position(tmp_path, SPEC.iters_per_epoch) == Position(1, 0, 3)


def test_micro_batch_checks_and_skipping() -> None:
    batch = {"epoch": np.array([1, 1]), "step": np.array([2, 2]), "micro": np.array([0, 0])}
    check_micro_batch(batch, 1, 2, 0)
    with pytest.raises(RuntimeError, match="out of step"):
        check_micro_batch(batch, 1, 2, 1)
    batches = iter([{"epoch": np.array([0]), "step": np.array([s])} for s in range(4)])
    first, skipped = skip_to(batches, Position(0, 2, 2))
    assert int(first["step"][0]) == 2 and skipped == 2 and int(next(batches)["step"][0]) == 3


def test_plan_blocks_are_whole_iterations_one_first_then_tiling_each_epoch(monkeypatch) -> None:
    monkeypatch.setattr("mgpt_train.plan.BLOCK_ROWS", 8)  # 4 samples of a rank per iteration: 2 per block
    items = plan_items(SPEC, 0, 1)
    assert [(i["epoch"], i["first_step"], i["stop_step"]) for i in items] == [(0, 1, 2), (0, 2, 3), (1, 0, 2),
                                                                               (1, 2, 3)]
    whole = epoch_plan(ROWS.num_rows, seed=SPEC.seed, epoch=1, first_step=0, iters_per_epoch=3,
                       grad_accum_steps=2, batch_size=2, world_size=2, n_instructions=3)
    parts = [expand_epochs({"epoch": np.array([1]), "first_step": np.array([s]), "stop_step": np.array([e])},
                           ROWS, SPEC) for s, e in ((0, 2), (2, 3))]
    assert pa.concat_tables(parts)["instruction"].to_pylist() == whole["instruction"].tolist()
    assert pa.concat_tables(parts)["image_id"].to_pylist() == [f"i{r}" for r in whole["row"]]
    rank_1 = RankRows(ROWS, SPEC, 1)({"epoch": np.array([1]), "first_step": np.array([0]),
                                      "stop_step": np.array([3])})
    assert rank_1["image_id"].tolist() == [f"i{r}" for r in whole["row"][whole["rank"] == 1]]
    assert set(rank_1["rank"].tolist()) == {1}


@pytest.mark.ray
def test_a_plan_of_many_blocks_gives_each_rank_the_same_samples(ray_session, tmp_path: Path,
                                                                monkeypatch) -> None:
    monkeypatch.setattr("mgpt_train.plan.BLOCK_ROWS", 4)  # a rank's 4 samples per iteration: 6 blocks
    plan = TrainPlan(ROWS, SPEC, tmp_path)
    assert plan().materialize().num_blocks() == SPEC.max_epoch * SPEC.iters_per_epoch
    for rank in range(SPEC.world_size):
        assert _shard_rows(plan, rank) == _planned(rank)


def test_a_plan_task_imports_neither_torch_nor_ray_train() -> None:
    """What a fresh Ray worker imports to run a plan task (the UDF and its spec, pickled by reference)."""
    import subprocess
    import sys

    code = ("import pickle, sys; import pyarrow as pa; from mgpt_train.plan import PlanSpec, RankRows; "
            "pickle.loads(pickle.dumps(RankRows(pa.table({'x': [1]}), PlanSpec(0, 1, 1, 1, 1, 1, 1), 0))); "
            "print(sorted(m for m in ('torch', 'ray.train', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out


@pytest.mark.ray
@pytest.mark.parametrize("compute", ["tasks", "actors"])
def test_pixel_shards_decode_each_ranks_planned_rows_in_the_plans_own_call(ray_session, tmp_path: Path,
                                                                           tiny_data_dir: Path, compute,
                                                                           monkeypatch) -> None:
    """From pixels, a rank's shard is its planned rows (same order as without pixels) with the pixels
    of the local preprocessor (expanded and decoded in one Ray Data call)."""
    from mgpt_data import DataSettings
    from mgpt_data.flickr30k import read_local
    from mgpt_data.preprocess import ImagePreprocessor
    from mgpt_train.ingest import PixelStage
    from mgpt_vision import VisionSettings, build_encoder

    monkeypatch.setattr("mgpt_train.plan.BLOCK_ROWS", 8)
    local_rows = read_local(tiny_data_dir, split="train").rows[:11]
    rows = pa.table({"image_id": [str(r["image_id"]) for r in local_rows],
                     "path": [r["path"] for r in local_rows], "caption": [r["caption"] for r in local_rows]})
    spec = build_encoder(VisionSettings(), meta=True).preprocess.as_dict()
    data = DataSettings(data_dir=tiny_data_dir, num_preprocess_workers=2, preprocess_num_cpus=0.5,
                        preprocess_compute=compute)
    plan = TrainPlan(rows, SPEC, tmp_path)
    stage = PixelStage(spec, data.model_dump(mode="json"))
    shards = RankShards(plan, stage).configure({"train": plan()}, SPEC.world_size, None, None)
    bare = RankShards(plan).configure({"train": plan()}, SPEC.world_size, None, None)
    local = ImagePreprocessor(spec)
    for rank in range(SPEC.world_size):
        got = list(shards[rank]["train"].iter_batches(batch_size=SPEC.batch_size, batch_format="numpy"))
        want = list(bare[rank]["train"].iter_batches(batch_size=SPEC.batch_size, batch_format="numpy"))
        assert len(got) == len(want) == SPEC.max_epoch * SPEC.iters_per_epoch * SPEC.grad_accum_steps
        for g, w in zip(got, want, strict=True):
            assert g["image_id"].tolist() == w["image_id"].tolist()
            assert g["step"].tolist() == w["step"].tolist()
            assert g["valid"].all()
            np.testing.assert_array_equal(g["pixels"], local({"path": w["path"]})["pixels"])
