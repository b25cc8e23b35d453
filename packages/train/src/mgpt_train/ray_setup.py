"""Connect to Ray: a local instance bound to 127.0.0.1, or an existing cluster (``address``)."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mgpt_train.settings import TrainSettings

logger = logging.getLogger(__name__)

#: Passed to every Ray worker: offline, quiet, and the same cache folder as the driver.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0",
               "TOKENIZERS_PARALLELISM": "false"}

#: Ray Train V2's placement-group cleaner asks the state API (served by the dashboard, off unless
#: ``train.include_dashboard``) every second and warns each time it cannot; Ray's documented log filter drops
#: those lines on the driver. Read when Ray is imported, so set here, before any `import ray`.
SKIP_LOG_REGEX = "Failed to query Ray Train Controller actor state"


def quiet_ray_logs() -> None:
    """Set ``RAY_DEDUP_LOGS_SKIP_REGEX`` (unless the user did) before Ray is imported."""
    os.environ.setdefault("RAY_DEDUP_LOGS_SKIP_REGEX", SKIP_LOG_REGEX)


quiet_ray_logs()


def worker_env() -> dict[str, str]:
    """Environment variables for Ray workers (``runtime_env={"env_vars": ...}``)."""
    from mgpt_vision.paths import cache_dir

    return {**OFFLINE_ENV, "MGPT_CACHE_DIR": str(cache_dir())}


def ensure_ray(settings: TrainSettings) -> None:
    """``ray.init`` unless Ray is already up in this process (then it is used as it is)."""
    import ray

    if ray.is_initialized():
        return
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    runtime_env = {"env_vars": worker_env()}
    if settings.address is None:
        ray.init(_node_ip_address="127.0.0.1", include_dashboard=settings.include_dashboard,
                 runtime_env=runtime_env, log_to_driver=True)
        logger.info("started a local Ray on 127.0.0.1 (%s CPUs)", ray.cluster_resources().get("CPU"))
    else:
        ray.init(address=settings.address, runtime_env=runtime_env)
        logger.info("joined the Ray cluster at %s", settings.address)
