"""linear_warmup_cosine_lr against hand-computed values of the upstream formula."""

from __future__ import annotations

import math

import pytest

from mgpt_train.schedule import linear_warmup_cosine_lr

SEED_RUN = dict(iters_per_epoch=500, max_epoch=5, init_lr=3e-5, min_lr=1e-5, warmup_lr=1e-6, warmup_steps=200)


def lr(epoch: int, step: int, **overrides: float) -> float:
    return linear_warmup_cosine_lr(epoch, step, **{**SEED_RUN, **overrides})


def test_warmup_starts_at_warmup_lr_and_is_linear() -> None:
    assert lr(0, 0) == pytest.approx(1e-6, rel=1e-12)
    assert lr(0, 100) == pytest.approx(1e-6 + 29e-6 * 100 / 200, rel=1e-12)  # 15.5e-6
    assert lr(0, 199) == pytest.approx(1e-6 + 29e-6 * 199 / 200, rel=1e-12)


def test_cosine_after_warmup() -> None:
    # T = 200 of 2500: 1e-5 + 2e-5 * 0.5 * (1 + cos(0.08 pi)) = 2.9685831e-5
    assert lr(0, 200) == pytest.approx(2.9685831e-5, rel=1e-7)
    # halfway (T = 1250): exactly the mean of init and min
    assert lr(2, 250) == pytest.approx(2e-5, rel=1e-12)


def test_cosine_ends_at_min_lr() -> None:
    assert lr(5, 0) == pytest.approx(1e-5, rel=1e-12)
    last = lr(4, 499)  # T = 2499
    assert 1e-5 < last < 1e-5 + 1e-11
    assert last == pytest.approx(1e-5 + 2e-5 * 0.5 * (1 + math.cos(math.pi * 2499 / 2500)), rel=1e-12)


def test_warmup_uses_the_within_epoch_step_upstream_quirk() -> None:
    # 100 iterations per epoch, 250 warmup steps: epoch 1 step 50 is T = 150 < 250, so warmup --
    # computed from step = 50 (6.8e-6), not from T = 150 (18.4e-6).
    got = lr(1, 50, iters_per_epoch=100, warmup_steps=250)
    assert got == pytest.approx(1e-6 + 29e-6 * 50 / 250, rel=1e-12)
    assert got == pytest.approx(6.8e-6, rel=1e-9)
    # ... and warmup restarts at warmup_lr at the start of epoch 2 (T = 200 < 250)
    assert lr(2, 0, iters_per_epoch=100, warmup_steps=250) == pytest.approx(1e-6, rel=1e-12)


def test_no_warmup_and_cap_at_init_lr() -> None:
    assert lr(0, 0, warmup_steps=0) == pytest.approx(3e-5, rel=1e-12)
    # warmup_lr above the line is capped by min(init_lr, ...)
    assert lr(0, 199, warmup_lr=3e-5) == pytest.approx(3e-5, rel=1e-12)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="iters_per_epoch"):
        linear_warmup_cosine_lr(0, 0, 0, 5, 3e-5, 1e-5, 1e-6, 0)
    with pytest.raises(ValueError, match="step_in_epoch"):
        linear_warmup_cosine_lr(0, -1, 10, 5, 3e-5, 1e-5, 1e-6, 0)
