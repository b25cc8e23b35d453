"""MiniGPT-4's ``LinearWarmupCosineLRScheduler`` as a pure function, stepped every iteration.

Upstream (minigpt4/common/optims.py) computes, with ``T = epoch * iters_per_epoch + step``::

    if T < warmup_steps:
        lr = min(init_lr, warmup_lr + (init_lr - warmup_lr) * step / max(warmup_steps, 1))
    else:
        lr = min_lr + (init_lr - min_lr) * 0.5 * (1 + cos(pi * T / (max_epoch * iters_per_epoch)))

The warmup branch uses the **within-epoch** ``step``, not ``T`` — an upstream quirk we keep on
purpose for exact reproduction: when warmup spans more than one epoch, the warmup lr drops back
to ``warmup_lr`` at the start of each epoch until ``T`` reaches ``warmup_steps``.
"""

from __future__ import annotations

import math


def linear_warmup_cosine_lr(
    epoch: int,
    step_in_epoch: int,
    iters_per_epoch: int,
    max_epoch: int,
    init_lr: float,
    min_lr: float,
    warmup_lr: float,
    warmup_steps: int,
) -> float:
    """Learning rate for iteration ``step_in_epoch`` (0-based) of ``epoch`` (0-based)."""
    if iters_per_epoch < 1 or max_epoch < 1:
        raise ValueError(f"iters_per_epoch and max_epoch must be >= 1, got {iters_per_epoch}, {max_epoch}")
    if epoch < 0 or step_in_epoch < 0:
        raise ValueError(f"epoch and step_in_epoch must be >= 0, got {epoch}, {step_in_epoch}")
    total_step = epoch * iters_per_epoch + step_in_epoch
    if total_step < warmup_steps:
        return min(init_lr, warmup_lr + (init_lr - warmup_lr) * step_in_epoch / max(warmup_steps, 1))
    progress = total_step / (max_epoch * iters_per_epoch)
    return min_lr + (init_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
