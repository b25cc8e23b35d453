"""Stopping a command the tests started in the background (``mgpt demo``, ``mgpt serve``, ...)."""

from __future__ import annotations

import signal
import subprocess


def stop(proc: subprocess.Popen, timeout: float = 120) -> None:
    """Ctrl-C ``proc`` (it cleans up: Serve, Ray, gradio), killing it if it has not ended in ``timeout`` s."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
