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
