"""mgpt_train's door to the one Ray start (`mgpt_data.ray_runtime.start_ray`) with a run's settings."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mgpt_data.ray_runtime import OFFLINE_ENV, start_ray

if TYPE_CHECKING:
    from mgpt_train.settings import TrainSettings

logger = logging.getLogger(__name__)


def worker_env() -> dict[str, str]:
    """Environment variables for Ray workers: offline, quiet, and the driver's cache folder."""
    from mgpt_vision.paths import cache_dir

    return {**OFFLINE_ENV, "MGPT_CACHE_DIR": str(cache_dir())}


def ensure_ray(settings: TrainSettings, *, num_cpus: int | None = None) -> str | None:
    """Start (or join ``settings.address``) with the run's dashboard choice, and say where the dashboard is
    (`start_ray` returns its URL); ``num_cpus``: logical CPUs of a private local instance (ignored when
    joining a cluster)."""
    url = start_ray(settings.address, num_cpus=num_cpus, include_dashboard=settings.include_dashboard,
                    worker_env=worker_env())
    if url:
        logger.info("Ray dashboard: %s (Jobs: this run, its TrainController and RayTrainWorker actors; Logs)",
                    url)
    return url
