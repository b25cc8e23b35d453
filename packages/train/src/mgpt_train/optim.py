"""AdamW with MiniGPT-4's parameter groups: no weight decay on biases, norms and 1-d tensors."""

from __future__ import annotations

import logging

import torch
from torch import nn

logger = logging.getLogger(__name__)

# Upstream (runner_base.py) tests `"bias" in n or "ln" in n or "bn" in n` (substrings); we add "norm".
NO_DECAY_SUBSTRINGS = ("bias", "ln", "bn", "norm")


def no_weight_decay(name: str, param: torch.Tensor) -> bool:
    """True for parameters that get no weight decay: ndim < 2 or a bias/ln/bn/norm name."""
    return param.ndim < 2 or any(key in name for key in NO_DECAY_SUBSTRINGS)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split the trainable parameters into a decay and a no-decay group (empty groups dropped)."""
    decay: list[nn.Parameter] = []
    skip: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (skip if no_weight_decay(name, param) else decay).append(param)
    if not decay and not skip:
        raise ValueError("the model has no trainable parameters")
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": skip, "weight_decay": 0.0}]
    logger.info("optimizer groups: %d tensors with weight decay %.3g, %d without",
                len(decay), weight_decay, len(skip))
    return [g for g in groups if g["params"]]


def build_optimizer(
    model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float]
) -> torch.optim.AdamW:
    """AdamW over `param_groups`; the lr is overwritten every iteration by the schedule."""
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas)
