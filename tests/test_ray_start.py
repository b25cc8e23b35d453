"""Joining vs starting Ray is explicit (`mgpt_data.ray_runtime.start_ray`): with a stale
``ray_current_cluster`` file and a stale ``RAY_ADDRESS`` pointing at a dead port, no ``--address``
starts a private instance on 127.0.0.1, and ``--address auto`` fails with `RayUnavailableError` in
seconds (Ray itself retries the dead GCS for minutes). The private instance keeps Ray's token
authentication: its runtime-env agent answers a request without the token with 401.

The stale file lives in a private ``RAY_TMPDIR`` (Ray's own rule for where the file is, which
`current_cluster_file` follows), so the real ``/tmp/ray/ray_current_cluster`` that other Ray
instances on this machine may use is never read or written.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from mgpt_data.ray_runtime import RayUnavailableError, check_reachable, current_cluster_file

ROOT = Path(__file__).resolve().parents[1]


def _dead_port() -> int:
    """A loopback port nothing listens on (bound once to get a free number, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def stale_cluster(monkeypatch: pytest.MonkeyPatch) -> tuple[str, dict[str, str]]:
    """A private Ray temp dir whose ``ray_current_cluster`` names a dead GCS; returns the dead address
    and the environment (``RAY_TMPDIR`` set, ``RAY_ADDRESS`` unset) for subprocesses."""
    tmp = Path(tempfile.mkdtemp(prefix="mgr", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    dead = f"127.0.0.1:{_dead_port()}"
    monkeypatch.setenv("RAY_TMPDIR", str(tmp))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    current_cluster_file().parent.mkdir(parents=True)
    current_cluster_file().write_text(dead + "\n")
    assert current_cluster_file() == tmp / "ray" / "ray_current_cluster"
    yield dead, {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    shutil.rmtree(tmp, ignore_errors=True)


def test_the_cluster_file_is_the_one_ray_itself_reads(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from ray._common.utils import get_ray_address_file

    for env in ({"RAY_TMPDIR": str(tmp_path / "a"), "TMPDIR": str(tmp_path / "b")},
                {"TMPDIR": str(tmp_path / "b")}, {}):
        for key in ("RAY_TMPDIR", "TMPDIR"):
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        assert current_cluster_file() == Path(get_ray_address_file(None))


def test_address_auto_with_a_stale_cluster_file_fails_in_seconds(stale_cluster, monkeypatch) -> None:
    dead, _ = stale_cluster
    t0 = time.perf_counter()
    with pytest.raises(RayUnavailableError, match=f"no Ray cluster answers at {dead} .*address 'auto'"):
        check_reachable("auto")
    print(f"--address auto, stale ray_current_cluster: RayUnavailableError after "
          f"{time.perf_counter() - t0:.3f} s")
    monkeypatch.setenv("RAY_ADDRESS", dead)  # a stale RAY_ADDRESS is probed the same way
    with pytest.raises(RayUnavailableError, match=f"no Ray cluster answers at {dead}"):
        check_reachable("auto")
    current_cluster_file().unlink()
    monkeypatch.delenv("RAY_ADDRESS")
    with pytest.raises(RayUnavailableError, match="no running Ray cluster found on this machine"):
        check_reachable("auto")


def test_cli_train_address_auto_on_a_dead_cluster_is_one_error_line(stale_cluster, tmp_path: Path) -> None:
    dead, env = stale_cluster
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "apps/cli", "train", "--preset", "tiny", "--address", "auto", "--no-eval",
         "--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "runs")],
        cwd=ROOT, env={**env, "MGPT_LOG_LEVEL": "WARNING"}, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert f"error: no Ray cluster answers at {dead}" in proc.stderr
    assert "Traceback" not in proc.stderr and "Failed to connect to GCS" not in proc.stderr
    print(f"mgpt train --address auto on a dead cluster: exit 2 after {seconds:.1f} s (CLI start included)")


START = textwrap.dedent(
    """
    import json, sys, time
    t0 = time.perf_counter()
    from mgpt_data.ray_runtime import start_ray
    start_ray(num_cpus=1, log_to_driver=False)
    import ray
    seconds = time.perf_counter() - t0
    import urllib.error, urllib.request
    agent = ray._private.worker.global_worker.node.runtime_env_agent_address  # Ray's HTTP agent
    try:  # no token: Ray's token authentication must refuse it
        urllib.request.urlopen(urllib.request.Request(agent + "/get_runtime_envs_info", data=b"",
                                                      method="POST"), timeout=30)
        status = 200
    except urllib.error.HTTPError as e:
        status = e.code
    out = {"gcs": ray.get_runtime_context().gcs_address, "node_ip": ray.util.get_node_ip_address(),
           "alive": [n["Alive"] for n in ray.nodes()], "seconds": seconds, "agent": agent,
           "no_token_status": status}
    ray.shutdown()
    print("RESULT " + json.dumps(out))
    """
)


@pytest.mark.timeout(600)
def test_without_address_a_private_instance_starts_despite_stale_file_and_env(stale_cluster) -> None:
    dead, env = stale_cluster
    proc = subprocess.run([sys.executable, "-c", START], cwd=ROOT, env={**env, "RAY_ADDRESS": dead},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line.removeprefix("RESULT "))
    assert out["gcs"] != dead and out["gcs"].startswith("127.0.0.1:") and out["alive"] == [True]
    assert out["node_ip"] == "127.0.0.1" and out["agent"].startswith("http://127.0.0.1:")
    assert out["no_token_status"] == 401  # token authentication is on
    assert "Failed to connect to GCS" not in proc.stderr
    print(f"no --address, stale ray_current_cluster and RAY_ADDRESS={dead}: private Ray at {out['gcs']} "
          f"in {out['seconds']:.1f} s")
