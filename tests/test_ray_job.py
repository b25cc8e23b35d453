"""The README's cluster section, run as written: a local head with token auth and the dashboard, then
``ray job submit ... -- uv run apps/cli train --address auto ...``; the job must SUCCEED and leave its run
directory on persistent storage, log progress as lines, and the dashboard shows it (a Chromium screenshot).

The head runs on free ports in its own temp dir with ``--block``, and only its processes are stopped
(never `ray stop`: other Ray instances on the machine stay up). The token lives in a file of the test
(``RAY_AUTH_TOKEN_PATH``), so the user's ``~/.ray/auth_token`` is neither needed nor touched.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from browser import headless_chromium, screenshot

ROOT = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).parent / "ray")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _get(url: str, token: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _stop_head(head: subprocess.Popen, temp_dir: Path) -> None:
    """SIGTERM the `ray start --block` we started (it stops its node), then any process still naming our
    temp dir (its workers). Nothing else is touched."""
    import psutil

    if head.poll() is None:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
    mine = [p for p in psutil.process_iter(["cmdline"]) if str(temp_dir) in " ".join(p.info["cmdline"] or [])]
    for p in mine:
        p.terminate()
    _, alive = psutil.wait_procs(mine, timeout=20)
    for p in alive:
        p.kill()


@pytest.fixture()
def head(tmp_path: Path):
    """A head node as the README starts it, plus the client environment the README exports."""
    temp_dir = Path(tempfile.mkdtemp(prefix="mgptray-", dir="/tmp"))  # short: Ray's socket paths are limited
    token_file = tmp_path / "auth_token"
    token = secrets.token_hex(32)
    token_file.write_text(token)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file),
           "RAY_USAGE_STATS_ENABLED": "0"}
    for name in ("RAY_ADDRESS", "RAY_ENABLE_UV_RUN_RUNTIME_ENV", "RAY_DEDUP_LOGS_SKIP_REGEX"):
        env.pop(name, None)  # a user's shell: mgpt sets these itself in the job's driver
    gcs, dash, client, agent_http, agent_grpc, metrics, runtime_env, node_mgr, obj_mgr = _free_ports(9)
    workers = _free_ports(1)[0]
    cmd = [RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(gcs),
           "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash), "--temp-dir", str(temp_dir),
           "--num-cpus", "2", "--ray-client-server-port", str(client),
           "--dashboard-agent-listen-port", str(agent_http), "--dashboard-agent-grpc-port", str(agent_grpc),
           "--metrics-export-port", str(metrics), "--runtime-env-agent-port", str(runtime_env),
           "--node-manager-port", str(node_mgr), "--object-manager-port", str(obj_mgr),
           "--min-worker-port", str(workers), "--max-worker-port", str(workers + 40), "--block"]
    log = (tmp_path / "head.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{dash}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                _get(f"{url}/api/jobs/", token)
                break
            except OSError as e:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log_text = (tmp_path / "head.log").read_text()[-4000:]
                    raise RuntimeError(f"head did not start:\n{log_text}") from e
                time.sleep(2)
        yield {"url": url, "env": env, "token": token, "temp_dir": temp_dir}
    finally:
        _stop_head(proc, temp_dir)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _log_in(browser, url: str, token: str) -> None:
    """Enter the token in the dashboard's own "Authentication Token Required" dialog, as a user does
    (it posts to /api/authenticate, which sets the session cookie, and reloads)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{url}/#/jobs")
    field = WebDriverWait(browser, 60, poll_frequency=1.0).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "input[placeholder='Enter your authentication token']"))
    field[0].send_keys(token)
    buttons = browser.find_elements(By.TAG_NAME, "button")
    next(b for b in buttons if b.text.strip().upper() == "SUBMIT").click()
    WebDriverWait(browser, 60, poll_frequency=1.0).until(
        lambda d: "Authentication Token Required" not in d.find_element(By.TAG_NAME, "body").text)


def test_ray_job_submit_as_the_readme_says(head, tmp_path: Path) -> None:
    url, env, token = head["url"], head["env"], head["token"]
    out, data = tmp_path / "runs", tmp_path / "data"
    submission = f"mgpt-test-{secrets.token_hex(4)}"
    started = time.monotonic()
    # the README's command (plus small-run flags): `--address auto` joins the cluster the job runs on
    submit = subprocess.Popen(
        [RAY, "job", "submit", "--address", url, "--working-dir", ".", "--submission-id", submission, "--",
         "uv", "run", "apps/cli", "train", "--preset", "tiny", "--address", "auto", "--workers", "1",
         "--output-dir", str(out), "--data-dir", str(data), "--run-name", "job",
         "--set", "eval.bootstrap_resamples=20"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    shot = tmp_path / "dashboard_job.png"
    page = ""
    with headless_chromium() as browser:
        _log_in(browser, url, token)
        deadline = time.monotonic() + 1500
        while not (out / "job" / "metrics.jsonl").is_file():  # training has started: screenshot now
            assert submit.poll() is None or (out / "job").is_dir(), submit.stdout.read()[-6000:]
            assert time.monotonic() < deadline, "the job never started training"
            time.sleep(2)
        page = screenshot(browser, f"{url}/#/jobs/{submission}", shot, wait_for_text=submission)
        actors = screenshot(browser, f"{url}/#/actors", tmp_path / "dashboard_actors.png",
                            wait_for_text="RayTrainWorker")
    logs, _ = submit.communicate(timeout=1500)
    wall = time.monotonic() - started
    (tmp_path / "job.log").write_text(logs)
    print(f"ray job wall time {wall:.0f} s; screenshots {shot}, {tmp_path / 'dashboard_actors.png'}")
    assert submit.returncode == 0, logs[-6000:]
    status = _get(f"{url}/api/jobs/{submission}", token)
    assert status["status"] == "SUCCEEDED", status

    run_dir = out / "job"  # the --output-dir given, not Ray's temporary working-dir copy
    settings = json.loads((run_dir / "settings.json").read_text())
    epochs, iters = settings["train"]["max_epoch"], settings["train"]["iters_per_epoch"]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["global_step"] for r in records] == list(range(1, epochs * iters + 1))
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("epoch_*")) == [f"epoch_{k}" for k in
                                                                                  range(epochs)]
    assert (run_dir / "eval" / "results.md").is_file() and (run_dir / "checkpoints" / "best.json").is_file()
    assert "runtime_resources" not in str(run_dir.resolve())
    # job logs: progress as log lines (no redrawn bar), the dashboard URL, the run directory
    steps = re.findall(r"train: step \d+/\d+ \(\d+%\) epoch", logs)
    assert 1 <= len(steps) <= 2 + wall / 30  # one line at the first record, then every 30 s, then the end
    assert not re.search(r"train: +\d+%\|", logs)  # no tqdm bar of the training loop
    assert "run directory: " + str(run_dir) in logs
    assert "Ray dashboard: http://127.0.0.1:" in logs
    assert submission in page and "Authentication Token Required" not in page
    assert "RayTrainWorker" in actors


def _train_cli(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MGPT_TRAIN__INCLUDE_DASHBOARD"}  # the user's default
    env["MGPT_LOG_LEVEL"] = "INFO"
    return subprocess.run(
        ["uv", "run", "apps/cli", "train", "--preset", "tiny", "--epochs", "1", "--workers", "1", "--no-eval",
         "--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "runs"), *flags],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def test_train_starts_the_dashboard_by_default_and_no_dashboard_turns_it_off(tmp_path: Path) -> None:
    on = _train_cli(tmp_path, "--run-name", "on")
    assert on.returncode == 0, on.stderr[-4000:]
    assert "Ray dashboard: http://127.0.0.1:" in on.stderr
    off = _train_cli(tmp_path, "--run-name", "off", "--no-dashboard")
    assert off.returncode == 0, off.stderr[-4000:]
    assert "Ray dashboard" not in off.stderr
    settings = json.loads((tmp_path / "runs" / "off" / "settings.json").read_text())
    assert settings["train"]["include_dashboard"] is False
