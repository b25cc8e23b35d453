"""Checkpoint folders: atomic write, strict read-back with weights_only, RNG round trip."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from mgpt_train.checkpointing import (
    STATE_FILE,
    TRAINABLE_FILE,
    capture_rng_state,
    list_checkpoints,
    read_checkpoint_dir,
    read_trainable,
    restore_rng_state,
    write_checkpoint_dir,
)


def _state(step: int) -> dict:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    return {"optimizer": opt.state_dict(), "scaler": scaler.state_dict(), "epoch": 1, "step_in_epoch": step,
            "global_step": 10 + step, "iters_per_epoch": 5, "world_size": 1, "rng": [capture_rng_state()]}


def test_round_trip(tmp_path) -> None:
    trainable = {"projector.weight": torch.randn(4, 3), "projector.bias": torch.randn(4)}
    dest = write_checkpoint_dir(tmp_path / "checkpoints" / "epoch_0", trainable, _state(2),
                                {"train": {"seed": 1}})
    assert sorted(p.name for p in dest.iterdir()) == ["settings.json", STATE_FILE, TRAINABLE_FILE]
    got, state = read_checkpoint_dir(dest)
    assert set(got) == set(trainable) and all(got[k].equal(trainable[k]) for k in trainable)
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (1, 2, 12)
    assert state["optimizer"]["state"][0]["exp_avg"].shape == (2, 3)
    assert read_trainable(dest)["projector.bias"].equal(trainable["projector.bias"])
    assert read_trainable(dest / TRAINABLE_FILE)["projector.bias"].equal(trainable["projector.bias"])
    # nothing temporary is left beside it
    assert [p.name for p in dest.parent.iterdir()] == ["epoch_0"]


def test_rewrite_replaces_and_a_failed_write_leaves_the_old_one(tmp_path, monkeypatch) -> None:
    dest = tmp_path / "epoch_0"
    write_checkpoint_dir(dest, {"w": torch.zeros(2, 2)}, _state(0), {})
    write_checkpoint_dir(dest, {"w": torch.ones(2, 2)}, _state(1), {})
    assert read_checkpoint_dir(dest)[0]["w"].equal(torch.ones(2, 2))

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        write_checkpoint_dir(dest, {"w": torch.full((2, 2), 7.0)}, _state(2), {})
    assert read_checkpoint_dir(dest)[0]["w"].equal(torch.ones(2, 2))
    assert [p.name for p in tmp_path.iterdir()] == ["epoch_0"]


def test_missing_files_raise(tmp_path) -> None:
    (tmp_path / "epoch_0").mkdir()
    with pytest.raises(FileNotFoundError, match="lacks"):
        read_checkpoint_dir(tmp_path / "epoch_0")


def test_rng_state_round_trip_through_weights_only_load(tmp_path) -> None:
    state = capture_rng_state()
    torch.save({"rng": state}, tmp_path / "s.pt")
    loaded = torch.load(tmp_path / "s.pt", weights_only=True)["rng"]
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    restore_rng_state(loaded)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected


def test_list_checkpoints_in_epoch_order(tmp_path) -> None:
    for name in ("epoch_10", "epoch_2", "step_5", "epoch_x"):
        (tmp_path / "checkpoints" / name).mkdir(parents=True)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["epoch_2", "epoch_10"]
