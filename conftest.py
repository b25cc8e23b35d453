"""Shared pytest fixtures for every package's tests: offline environment and one Ray per session."""

from __future__ import annotations

import os

import pytest

# Nothing may reach a model hub, in tests as in CI.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under `uv run`, Ray 2.60 would start every worker through `uv run` in an uploaded copy of the repo,
# which is no workspace member and hangs for minutes: workers inherit this venv instead.
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for the whole test session (never `ray stop`: it kills every Ray on the box)."""
    import ray

    if not ray.is_initialized():
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            _node_ip_address="127.0.0.1",
        )  # no runtime_env: local workers inherit this environment, and pooled workers get reused
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory: pytest.TempPathFactory):
    """A run directory laid out as `mgpt train` writes it (settings.json, checkpoints/epoch_0..1) on the
    tiny preset, made in seconds: each checkpoint is the seeded initial bridge plus seeded noise, so
    the two epochs and the untrained bridge differ. (Real training is tested in tests/test_cli_e2e.py.)"""
    from pathlib import Path

    import torch

    from mgpt_train.checkpointing import write_checkpoint_dir
    from mgpt_train.modeling import build_model
    from mgpt_train.run_settings import load_run_settings
    from mgpt_train.rundir import SETTINGS_FILE, write_json

    root = tmp_path_factory.mktemp("tiny_run")
    run_dir = root / "runs" / "tiny"
    settings = load_run_settings(Path(__file__).parent / "configs" / "tiny.toml",
                                 {"data": {"data_dir": str(root / "data")},
                                  "train": {"output_dir": str(root / "runs"), "run_name": "tiny"}})
    write_json(run_dir / SETTINGS_FILE, settings.to_json_dict())
    initial = build_model(settings).trainable_state_dict()
    generator = torch.Generator().manual_seed(0)
    for epoch in range(2):
        trainable = {k: v + 0.5 * torch.randn(v.shape, generator=generator) for k, v in initial.items()}
        write_checkpoint_dir(run_dir / "checkpoints" / f"epoch_{epoch}", trainable,
                             {"epoch": epoch + 1, "step_in_epoch": 0, "global_step": 2 * (epoch + 1)},
                             settings.to_json_dict())
    return run_dir
