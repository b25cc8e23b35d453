"""AdamW parameter groups: decay on matrices, none on biases/norms/1-d and frozen params excluded."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mgpt_train.optim import build_optimizer, no_weight_decay, param_groups


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 8)
        self.ln_vision = nn.LayerNorm(8)
        self.bn = nn.BatchNorm1d(8)
        self.scale = nn.Parameter(torch.ones(8))  # 1-d, no keyword
        self.layer_norm_gain = nn.Parameter(torch.ones(2, 8))  # 2-d but named *norm*
        self.frozen = nn.Linear(8, 8)
        self.frozen.requires_grad_(False)


def test_groups_split_by_ndim_and_name() -> None:
    model = Toy()
    groups = param_groups(model, 0.05)
    assert [g["weight_decay"] for g in groups] == [0.05, 0.0]
    decay_ids = {id(p) for p in groups[0]["params"]}
    skip_ids = {id(p) for p in groups[1]["params"]}
    assert decay_ids == {id(model.proj.weight)}
    assert skip_ids == {id(p) for p in (model.proj.bias, model.ln_vision.weight, model.ln_vision.bias,
                                        model.bn.weight, model.bn.bias, model.scale, model.layer_norm_gain)}
    frozen = {id(p) for p in model.frozen.parameters()}
    assert not frozen & (decay_ids | skip_ids)


def test_no_weight_decay_rule() -> None:
    assert no_weight_decay("projector.weight", torch.zeros(3)) is True
    assert no_weight_decay("projector.weight", torch.zeros(3, 3)) is False
    assert no_weight_decay("blocks.0.ln_1.weight", torch.zeros(3, 3)) is True
    assert no_weight_decay("projector.bias", torch.zeros(3, 3)) is True


def test_optimizer_is_adamw_with_betas() -> None:
    opt = build_optimizer(Toy(), lr=1e-3, weight_decay=0.05, betas=(0.9, 0.999))
    assert isinstance(opt, torch.optim.AdamW)
    assert all(g["betas"] == (0.9, 0.999) and g["lr"] == 1e-3 for g in opt.param_groups)


def test_no_trainable_parameters_raises() -> None:
    with pytest.raises(ValueError, match="no trainable"):
        param_groups(nn.Linear(2, 2).requires_grad_(False), 0.05)
