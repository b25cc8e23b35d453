"""The one place mgpt starts or joins Ray: every command, benchmark and test fixture comes here.

Policy (nothing happens at import):

* ``address=None`` outside a Ray job starts a **private local instance** (``ray.init(address="local")``)
  bound to 127.0.0.1 — it never joins a stale or foreign cluster found in ``/tmp/ray``. Inside a
  Ray job (``ray job submit``) it joins the job's cluster.
* ``address="auto"`` / ``"host:port"`` / ``"ray://host:port"`` joins a running cluster; when
  nothing answers there, :class:`RayUnavailableError` says so within seconds (Ray itself would retry
  for minutes).
* Ray's token authentication stays as Ray sets it (on by default in Ray 2.60); the dashboard, when
  asked for, binds the same host.
* Every process of a private instance listens on 127.0.0.1 only (GCS, raylet, object manager,
  workers' gRPC servers, dashboard and runtime-env agents). ``ray.init(_node_ip_address="127.0.0.1")``
  alone does not do it: Ray swaps a loopback node address for the machine's routable one
  (``ray._private.services.resolve_ip_for_localhost``) unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``
  (its single-machine mode, read when Ray is imported), and every C++ gRPC server and agent binds
  all interfaces unless the node address is loopback. :data:`PROCESS_ENV` therefore sets it; a
  process that joins a cluster is unaffected (its node address comes from the raylet it joins).

The process environment mgpt needs (offline model hubs, no usage stats, quiet logs, Ray workers
using this interpreter rather than re-running ``uv run``) is defined once, in :data:`PROCESS_ENV`,
and applied with :func:`apply_process_env` before Ray is imported.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

logger = logging.getLogger(__name__)

LOCALHOST = "127.0.0.1"

#: Nothing may reach a model hub; Ray sends no usage stats; tokenizers do not fork threads.
OFFLINE_ENV: dict[str, str] = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                               "RAY_USAGE_STATS_ENABLED": "0", "TOKENIZERS_PARALLELISM": "false"}

#: Read by Ray when it is imported, so applied first:
#: - under ``uv run``, Ray 2.60 would relaunch every worker through ``uv run`` in an uploaded copy of
#:   the working dir (minutes per start here); workers use this interpreter instead. Set it to 1 for
#:   a cluster whose nodes should build the environment with uv.
#: - Ray Train V2 polls the dashboard's state API each second and warns when the dashboard is off.
#: - ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``: a private instance keeps the loopback node address, so
#:   nothing of it listens beyond 127.0.0.1 (see the module docstring).
#: Read by Ray Train's controller, which ``trainer.fit`` starts with these variables of the driver's
#: environment (``ray.train.v2._internal.constants.ENV_VARS_TO_PROPAGATE``):
#: - ``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S=0.25``: a ``ray.train.report`` puts its result in a per-worker
#:   queue of size 1 that only the controller's poll drains, once per interval (2 s by default), so a
#:   report that follows another within the interval blocks until that poll, and every controller
#:   state change (start, finish) waits for one. 0.25 s costs well under 1 % of a core.
PROCESS_ENV: dict[str, str] = {
    **OFFLINE_ENV, "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_DEDUP_LOGS_SKIP_REGEX": "Failed to query Ray Train Controller actor state",
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.25"}

#: Added for a private local instance only: none of its nodes can be preempted, so Ray Train's
#: preemption-watcher actor would have nothing to watch.
PRIVATE_RAY_ENV: dict[str, str] = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}


def current_cluster_file() -> Path:
    """The file ``ray start --head`` leaves for ``address="auto"`` (Ray's own rule: ``$RAY_TMPDIR``, else
    ``$TMPDIR``, else /tmp, then ``ray/ray_current_cluster``; `ray._common.utils.get_ray_address_file`)."""
    base = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"
    return Path(base) / "ray" / "ray_current_cluster"


class RayUnavailableError(ConnectionError):
    """``address`` names a Ray cluster that does not answer."""


def apply_process_env(*, private: bool = False) -> None:
    """Set :data:`PROCESS_ENV` (and :data:`PRIVATE_RAY_ENV` when ``private``) unless the user set a
    value — call before ``import ray``."""
    for key, value in {**PROCESS_ENV, **(PRIVATE_RAY_ENV if private else {})}.items():
        os.environ.setdefault(key, value)


def in_ray_job() -> bool:
    """True inside a ``ray job submit`` entrypoint (the job supervisor sets these)."""
    return "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ


def _gcs_endpoint(address: str) -> tuple[str, int] | None:
    """host and port to probe for ``address`` (None when it cannot be told)."""
    if address == "auto":
        env = os.environ.get("RAY_ADDRESS")
        if env and env != "auto":
            address = env
        elif current_cluster_file().is_file():
            address = current_cluster_file().read_text().strip()
        else:
            return None
    address = address.removeprefix("ray://")
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host or LOCALHOST, int(port)


def check_reachable(address: str, *, timeout: float = 3.0) -> None:
    """Raise :class:`RayUnavailableError` unless something accepts connections at ``address``."""
    endpoint = _gcs_endpoint(address)
    if endpoint is None:
        if address == "auto":
            raise RayUnavailableError(
                "address 'auto' (--address / train.address): no running Ray cluster found on this machine "
                "(start one with `ray start --head --node-ip-address 127.0.0.1`, or give no address to use "
                "a private one)")
        return
    try:
        with socket.create_connection(endpoint, timeout=timeout):
            pass
    except OSError as e:
        raise RayUnavailableError(
            f"no Ray cluster answers at {endpoint[0]}:{endpoint[1]} (address {address!r}: "
            f"{e.strerror or e}); is the head node running? Give no address (--address / train.address) "
            "for a private local Ray") from e


def start_ray(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    include_dashboard: bool = False,
    host: str = LOCALHOST,
    worker_env: Mapping[str, str] | None = None,
    log_to_driver: bool = True,
) -> str | None:
    """Start a private local Ray, or join ``address``; a Ray already up in this process is kept.

    Returns the dashboard URL when this call started Ray with its dashboard, or joined a cluster that
    runs one (else None).

    ``worker_env``: extra environment variables for workers that join from other machines (local
    workers inherit this process's environment, which :func:`apply_process_env` has prepared).
    """
    apply_process_env()
    if "ray" in sys.modules and os.environ.get("RAY_ENABLE_UV_RUN_RUNTIME_ENV") == "0":
        from ray._private import ray_constants

        if ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV:
            logger.warning("ray was imported before mgpt set RAY_ENABLE_UV_RUN_RUNTIME_ENV=0: under `uv run` "
                           "its workers may start slowly through uv")
    import ray

    if ray.is_initialized():
        return None
    if address is None and in_ray_job():
        address = "auto"
    if address is None:
        apply_process_env(private=True)
        context = ray.init(address="local", num_cpus=num_cpus, include_dashboard=include_dashboard,
                           dashboard_host=host, _node_ip_address=host, log_to_driver=log_to_driver)
        url = f"http://{context.dashboard_url}" if include_dashboard and context.dashboard_url else None
        node_ip = ray.util.get_node_ip_address()
        if host == LOCALHOST and node_ip != host:
            logger.warning("this private Ray listens on %s, not only on %s: ray was imported before "
                           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 was set (call apply_process_env() first)",
                           node_ip, host)
        logger.info("started a private local Ray on %s (%s CPUs, dashboard %s)", host,
                    ray.cluster_resources().get("CPU"), url or "off")
        return url
    check_reachable(address)
    env = {**OFFLINE_ENV, **(worker_env or {})}
    context = ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=log_to_driver)
    logger.info("joined the Ray cluster at %s (%s CPUs)", address, ray.cluster_resources().get("CPU"))
    return f"http://{context.dashboard_url}" if getattr(context, "dashboard_url", None) else None
