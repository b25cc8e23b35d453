"""Ray Train runs on the tiny preset (2 workers): smoke, lr column, resume == straight, failure recovery.

Four trainer runs in all (~1 min each on 2 cores): one straight run shared by three tests, a run
stopped at step 2 and resumed, and a run that loses a worker once.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mgpt_train.checkpointing import read_checkpoint_dir
from mgpt_train.fit import fit
from mgpt_train.metrics_log import read_metrics
from mgpt_train.schedule import linear_warmup_cosine_lr

pytestmark = [pytest.mark.ray, pytest.mark.timeout(900)]

EPOCHS, ITERS = 2, 3


@pytest.fixture(scope="module")
def straight(ray_session, make_settings, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    settings = make_settings(out)
    result = fit(settings, out / "straight", progress=False)
    return settings, out / "straight", result


def _losses(run_dir: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(run_dir / "metrics.jsonl")]


def test_two_worker_run_writes_checkpoints_and_metrics(straight) -> None:
    settings, run_dir, result = straight
    assert settings.train.workers == 2
    records = read_metrics(run_dir / "metrics.jsonl")
    assert [r["global_step"] for r in records] == list(range(1, EPOCHS * ITERS + 1))
    assert [(r["epoch"], r["step"]) for r in records] == [(e, s) for e in range(EPOCHS) for s in range(ITERS)]
    assert all(math.isfinite(r["loss"]) and r["loss"] > 0 for r in records)
    for k in range(EPOCHS):
        trainable, state = read_checkpoint_dir(run_dir / "checkpoints" / f"epoch_{k}")
        assert set(trainable) == {"projector.weight", "projector.bias"}
        assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (k + 1, 0, (k + 1) * ITERS)
        assert len(state["rng"]) == 2 and state["optimizer"]["state"]
    assert Path(result.checkpoint.path) == run_dir / "checkpoints" / f"epoch_{EPOCHS - 1}"
    assert result.metrics["global_step"] == EPOCHS * ITERS
    assert (run_dir / "settings.json").is_file() and (run_dir / "summary.json").is_file()


def test_ray_train_gets_the_controller_settings_and_metrics_carry_cpu_time(straight) -> None:
    """The driver's environment (`PROCESS_ENV`, `PRIVATE_RAY_ENV` on this private Ray) is what
    ``trainer.fit`` hands the controller: its 0.25 s poll and no preemption watcher."""
    import os

    from ray.train.v2._internal.constants import get_env_vars_to_propagate

    from mgpt_data.ray_runtime import PRIVATE_RAY_ENV, PROCESS_ENV

    propagated = get_env_vars_to_propagate()
    for key in ("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"):
        assert key in {**PROCESS_ENV, **PRIVATE_RAY_ENV} and propagated[key] == os.environ[key]
    _, run_dir, _ = straight
    records = read_metrics(run_dir / "metrics.jsonl")
    assert all(0 < r["cpu_sec"] and 0 <= r["data_sec"] < r["sec_per_it"] for r in records)


def test_metrics_lr_column_is_the_schedule(straight) -> None:
    settings, run_dir, _ = straight
    t = settings.train
    for r in read_metrics(run_dir / "metrics.jsonl"):
        want = linear_warmup_cosine_lr(r["epoch"], r["step"], ITERS, EPOCHS, t.init_lr, t.min_lr,
                                       t.warmup_lr, t.warmup_steps)
        assert r["lr"] == pytest.approx(want, rel=1e-12)


def test_training_changed_the_projector(straight) -> None:
    _, run_dir, _ = straight
    first, _ = read_checkpoint_dir(run_dir / "checkpoints" / "epoch_0")
    last, _ = read_checkpoint_dir(run_dir / "checkpoints" / "epoch_1")
    assert not first["projector.weight"].equal(last["projector.weight"])


def test_stop_at_step_2_then_resume_equals_straight_run(straight, make_settings, tmp_path) -> None:
    _, straight_dir, _ = straight
    run_dir = tmp_path / "resumed"
    fit(make_settings(tmp_path, train={"stop_at_step": 2}), run_dir, progress=False)
    assert [r["global_step"] for r in read_metrics(run_dir / "metrics.jsonl")] == [1, 2]
    _, state = read_checkpoint_dir(run_dir / "checkpoints" / "step_2")
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (0, 2, 2)  # mid-epoch
    with pytest.raises(FileExistsError, match="resume"):
        fit(make_settings(tmp_path), run_dir, progress=False)
    fit(make_settings(tmp_path), run_dir, resume=True, progress=False)
    assert _losses(run_dir) == _losses(straight_dir)
    resumed, _ = read_checkpoint_dir(run_dir / "checkpoints" / "epoch_1")
    reference, _ = read_checkpoint_dir(straight_dir / "checkpoints" / "epoch_1")
    assert all(resumed[k].equal(reference[k]) for k in reference)


def test_worker_failure_recovers_from_last_checkpoint(straight, make_settings, tmp_path) -> None:
    _, straight_dir, _ = straight
    run_dir = tmp_path / "flaky"
    settings = make_settings(tmp_path, train={"fail_at_step": 5, "max_failures": 1})
    result = fit(settings, run_dir, progress=False)
    assert (run_dir / ".injected_failure_at_step_5").is_file()  # it did fail once
    records = read_metrics(run_dir / "metrics.jsonl")
    assert [r["global_step"] for r in records] == list(range(1, EPOCHS * ITERS + 1))  # no duplicates
    assert _losses(run_dir) == _losses(straight_dir)
    assert Path(result.checkpoint.path) == run_dir / "checkpoints" / f"epoch_{EPOCHS - 1}"
