"""Nothing mgpt starts listens beyond loopback by default: ``prepare`` (Ray Data engine), ``train``
(tiny), ``demo`` (gradio) and ``serve`` (Ray Serve) each run as a real CLI process while a watcher
lists, every 0.3 s, the LISTEN sockets (``psutil.net_connections(kind="inet")``) of that process and
all its descendants — Ray's GCS, raylet, object manager, dashboard and runtime-env agents and every
worker's gRPC server included. Every address seen must be loopback (127.0.0.0/8, ::1, or IPv4-mapped
::ffff:127.x). Sampling can miss a socket that lives less than a poll; each command also has to show
the sockets it must have (Ray's gcs_server and raylet, the HTTP port).

One allow-list entry, exact (``train`` must show exactly one such socket): the **torch.distributed
TCPStore** that rank 0 of the Ray Train worker group hosts. PyTorch's TCPStore server binds every
interface whatever host name it is given (torch 2.15: ``TCPStore("127.0.0.1", 0, is_master=True)``
listens on ``::``, with or without libuv); only ``TCPStore(master_listen_fd=...)`` binds elsewhere, and
Ray Train 2.60 creates the store itself inside ``init_process_group`` (``TorchConfig.init_method`` is
``env`` or ``tcp``, both a plain TCPStore) with no way to pass one. It has no authentication: on a
machine with untrusted neighbours, firewall the port range or run training in a network namespace.

Before `mgpt_data.ray_runtime.PROCESS_ENV` set ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, a private Ray
listened on ``::`` (gcs_server, raylet, workers), ``0.0.0.0`` (dashboard agent) and the machine's
address (runtime-env agent), although ``ray.init`` was given ``_node_ip_address="127.0.0.1"``.

``train`` runs with ``--no-eval`` (the evaluation starts Ray the same way; it only adds minutes).
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from processes import stop

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "MGPT_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # 4 CLI runs, 3 of them start Ray: ~6 min


def is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%", 1)[0])
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


class ListenWatch:
    """Collects ``(pid, ip, port)`` of every LISTEN socket of ``root`` and its descendants, and every
    name each such process had (Ray renames its workers as they take on tasks)."""

    def __init__(self, root: int, every: float = 0.3) -> None:
        self.root, self.every = root, every
        self.seen: set[tuple[int, str, int]] = set()
        self.names: dict[int, set[str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree(self) -> dict[int, str]:
        try:
            procs = [psutil.Process(self.root)]
            procs += procs[0].children(recursive=True)
        except psutil.NoSuchProcess:
            return {}
        names = {}
        for p in procs:
            try:
                names[p.pid] = p.name()
            except psutil.Error:
                pass
        return names

    def _run(self) -> None:
        while not self._stop.is_set():
            names = self._tree()
            for c in psutil.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN and c.pid in names:
                    self.seen.add((c.pid, c.laddr.ip, c.laddr.port))
                    self.names.setdefault(c.pid, set()).add(names[c.pid])
            self._stop.wait(self.every)

    def stop(self) -> ListenWatch:
        self._stop.set()
        self._thread.join()
        return self

    def process_names(self) -> set[str]:
        return {n for names in self.names.values() for n in names}


def _is_train_worker(watch: ListenWatch, pid: int) -> bool:
    return any(n.startswith("ray::RayTrainWorker") for n in watch.names[pid])


def _check(watch: ListenWatch, command: str, *, train_store: bool = False) -> None:
    """No socket beyond loopback; with ``train_store``, exactly one: the rank-0 training worker's TCPStore."""
    exposed = sorted(s for s in watch.seen if not is_loopback(s[1]))
    store = [s for s in exposed if train_store and _is_train_worker(watch, s[0])]
    print(f"{command}: {len(watch.seen)} listening sockets of {sorted(watch.process_names())}; beyond "
          f"loopback: {[(sorted(watch.names[p]), ip, port) for p, ip, port in exposed]}")
    assert [s for s in exposed if s not in store] == [], f"{command} listens beyond loopback: {exposed}"
    if train_store:
        assert len(store) == 1, store  # the allow-list entry is exact: one store, on rank 0


def _run_to_end(args: list[str], timeout: int = 900) -> ListenWatch:
    proc = subprocess.Popen([sys.executable, "apps/cli", *args], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    watch = ListenWatch(proc.pid)
    out, _ = proc.communicate(timeout=timeout)
    seen = watch.stop()
    assert proc.returncode == 0, out[-5000:]
    return seen


def _run_until(args: list[str], ready: str, log: Path, timeout: int = 600) -> ListenWatch:
    """Start a server command, wait for its ``ready`` line, watch 5 s more, then stop it (SIGINT)."""
    with log.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "apps/cli", *args], cwd=ROOT, env=ENV, stdout=sink,
                                stderr=subprocess.STDOUT, text=True)
    watch = ListenWatch(proc.pid)
    try:
        deadline = time.monotonic() + timeout
        while ready not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-5000:]
            time.sleep(1)
        time.sleep(5)
    finally:
        seen = watch.stop()
        stop(proc, 120)
    return seen


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_core(watch: ListenWatch) -> set[str]:
    return watch.process_names() & {"gcs_server", "raylet"}


def test_prepare_and_train_listen_on_loopback_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    seen = _run_to_end(["prepare", "--preset", "tiny", "--data-dir", str(data), "--synthetic", "20",
                        "--engine", "ray", "--json"])
    _check(seen, "prepare --engine ray")
    assert _ray_core(seen) == {"gcs_server", "raylet"}
    seen = _run_to_end(["train", "--preset", "tiny", "--data-dir", str(data), "--output-dir",
                        str(tmp_path / "runs"), "--run-name", "sockets", "--no-eval"])
    _check(seen, "train --preset tiny", train_store=True)
    assert _ray_core(seen) == {"gcs_server", "raylet"}
    assert any(name.startswith("ray::") for name in seen.process_names())  # workers / agents seen too


def test_demo_and_serve_listen_on_loopback_only(tiny_run_dir: Path, tmp_path: Path) -> None:
    port = _free_port()
    seen = _run_until(["demo", "--run", str(tiny_run_dir), "--port", str(port)], "demo running at ",
                      tmp_path / "demo.log")
    _check(seen, "demo")
    assert port in {p for _, _, p in seen.seen}
    port = _free_port()
    seen = _run_until(["serve", "--run", str(tiny_run_dir), "--port", str(port), "--replicas", "1"],
                      "serving captions at ", tmp_path / "serve.log")
    _check(seen, "serve")
    assert port in {p for _, _, p in seen.seen} and _ray_core(seen) == {"gcs_server", "raylet"}
