"""The dependency direction of ARCHITECTURE.md, checked by import-linter on every test run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    lint_imports = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    proc = subprocess.run([lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout, proc.stdout


def test_every_member_is_versioned_and_importable_alone() -> None:
    import importlib
    import tomllib

    members = sorted(ROOT.glob("packages/*/pyproject.toml")) + sorted(ROOT.glob("apps/*/pyproject.toml"))
    assert len(members) == 6
    for pyproject in members:
        project = tomllib.loads(pyproject.read_text())["project"]
        assert project["version"], pyproject
        module = project["name"].replace("-", "_")
        assert importlib.import_module(module).__name__ == module
        assert (pyproject.parent / "tests").is_dir(), f"{pyproject.parent} has no tests/"
