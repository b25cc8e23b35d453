"""Start (or join) a local Ray for this package's own entry points (CLI ``prepare``, benchmarks).

Ray ≥ 2.4x re-runs workers through ``uv run`` when the driver was started by ``uv run``
(``RAY_ENABLE_UV_RUN_RUNTIME_ENV``, on by default): each worker re-creates the workspace from an
uploaded copy of the working dir, which fails in this workspace (members are missing from the
upload) and burns minutes of retries. Workers must instead use the driver's own interpreter, the
synced ``.venv``; the switch is read when ``ray`` is imported, so set it before that.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

logger = logging.getLogger(__name__)

WORKER_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0",
              "TOKENIZERS_PARALLELISM": "false"}


def disable_uv_run_workers() -> None:
    """Make Ray workers use this interpreter (call before ``import ray``; patched if it is too late)."""
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    if "ray" in sys.modules and os.environ["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] == "0":
        from ray._private import ray_constants  # read once at import: the only switch there is

        ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV = False


def deterministic_context() -> Any:
    """Make Ray Data keep row order in this process (datasets built afterwards keep it)."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.execution_options.preserve_order = True
    return ctx


def ensure_ray(num_cpus: int | None = None) -> None:
    """``ray.init`` a local instance unless one is running (offline env vars for workers)."""
    disable_uv_run_workers()
    for key, value in WORKER_ENV.items():
        os.environ.setdefault(key, value)
    import ray

    if ray.is_initialized():
        return
    # Local workers inherit this process's environment; a runtime_env with env_vars would make Ray
    # start dedicated worker processes instead of its pooled ones (seconds per dataset run here).
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    logger.info("started a local Ray with %s CPUs", ray.cluster_resources().get("CPU"))
