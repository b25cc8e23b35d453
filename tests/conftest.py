"""Fixtures of the end-to-end tests (the shared ones are in the repository's root conftest.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


@pytest.fixture
def tmpfs(tmp_path: Path):
    """``tmpfs(name, size, read_only=False)`` mounts a small tmpfs at ``tmp_path/name`` (a full or
    read-only output folder); unmounted afterwards. Skips, saying why, where mounting is not allowed
    (it needs root, or CAP_SYS_ADMIN)."""
    mounted: list[Path] = []

    def mount(name: str, size: str, *, read_only: bool = False) -> Path:
        path = tmp_path / name
        path.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip() or proc.returncode}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)
