"""Every workspace member stands alone: its wheel (``uv build --package NAME --wheel``) installs into a fresh
venv with only its declared dependencies (sibling wheels found by ``--find-links``), imports its public
API, and runs one call. This catches a package that secretly needs a sibling, a dev dependency or a file
missing from its wheel (the ``lazy_loader`` stubs ``__init__.pyi``).

Versions are pinned to the lock (``uv export`` as constraints: they add no package, only fix versions, so
the uv cache serves nearly everything), and the root's ``override-dependencies`` apply, as they do for a
workspace install (the package READMEs say so).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UV = shutil.which("uv") or "uv"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

# one call per package; each prints "OK <value>" that the test checks
CALLS = {
    "mgpt-vision": ("mgpt_vision", """
        import torch
        from mgpt_vision import VisionSettings, build_encoder
        encoder = build_encoder(VisionSettings(encoder="tiny", num_tokens=4))
        side = encoder.preprocess.image_size
        tokens = encoder.module(torch.zeros(1, 3, side, side))
        print("OK", list(tokens.shape) == [1, encoder.num_tokens, encoder.token_dim])
    """),
    "mgpt-data": ("mgpt_data", """
        import tempfile
        from mgpt_data import read_local, write_synthetic_scenes
        folder = write_synthetic_scenes(tempfile.mkdtemp() + "/scenes", 4, image_size=32, progress=False)
        read = read_local(folder)
        print("OK", len({r["image_id"] for r in read.rows}) == 4 and not read.rejects)
    """),
    "mgpt-eval": ("mgpt_eval", """
        from mgpt_eval import score_captions
        report = score_captions({"1": ["a red circle on the left", "a red disc at the left"],
                                 "2": ["a blue square on the right", "a blue box at the right"]},
                                {"1": "a red circle on the left", "2": "a green triangle"},
                                metrics=["BLEU-1", "BLEU-4"])
        print("OK", 0 < report.scores["BLEU-1"] < 1)
    """),
    "mgpt-bridge": ("mgpt_bridge", """
        import math, torch
        from mgpt_bridge import BridgeSettings, build_vlm
        from mgpt_vision import VisionSettings
        model = build_vlm(VisionSettings(encoder="tiny", num_tokens=4), BridgeSettings(lm="tiny"))
        side = model.preprocess.image_size
        loss = model(answers=["a red circle"], pixels=torch.zeros(1, 3, side, side)).loss
        print("OK", math.isfinite(float(loss)))
    """),
    "mgpt-train": ("mgpt_train", """
        import tempfile
        from pathlib import Path
        from mgpt_train import RunSettings
        preset = Path(tempfile.mkdtemp()) / "mine.toml"
        preset.write_text('[vision]\\nencoder = "tiny"\\n[bridge]\\nlm = "tiny"\\n[train]\\nmax_epoch = 3\\n')
        settings = RunSettings.load(preset, ["train.workers=1"])
        got = (settings.train.max_epoch, settings.train.workers, settings.vision.encoder)
        print("OK", got == (3, 1, "tiny"))
    """),
    "mgpt-cli": ("mgpt_cli", """
        import importlib.util, subprocess, sys
        from pathlib import Path
        mgpt = Path(sys.executable).parent / "mgpt"
        out = subprocess.run([str(mgpt), "--help"], capture_output=True, text=True, check=True).stdout
        tracked = importlib.util.find_spec("mlflow") is not None  # the default preset's tracker comes along
        print("OK", tracked and all(c in out for c in ("train", "eval", "caption", "convert")))
    """),
}
STUBS = {"mgpt-vision": "mgpt_vision/__init__.pyi", "mgpt-train": "mgpt_train/__init__.pyi"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Wheels of every member, the lock's versions as constraints, and the root's overrides."""
    out = tmp_path_factory.mktemp("wheels")
    for name in CALLS:
        subprocess.run([UV, "build", "--package", name, "--wheel", "-o", str(out)], cwd=ROOT, check=True,
                       capture_output=True, timeout=600)
    constraints = out / "constraints.txt"
    exported = subprocess.run([UV, "export", "--frozen", "--no-hashes", "--format", "requirements-txt",
                               "--no-emit-workspace", "--all-extras", "--all-groups", "-q"],
                              cwd=ROOT, check=True, capture_output=True, text=True, timeout=300).stdout
    constraints.write_text(exported)
    overrides = out / "overrides.txt"
    uv_table = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]
    overrides.write_text("\n".join(uv_table.get("override-dependencies", [])) + "\n")
    return {"dir": out, "constraints": constraints, "overrides": overrides}


def _wheel(folder: Path, name: str) -> Path:
    [wheel] = folder.glob(f"{name.replace('-', '_')}-*.whl")
    return wheel


@pytest.mark.parametrize("name", list(CALLS))
def test_wheel_installs_alone_and_runs(name: str, built: dict[str, Path], tmp_path: Path) -> None:
    module, code = CALLS[name]
    wheel = _wheel(built["dir"], name)
    files = zipfile.ZipFile(wheel).namelist()
    assert f"{module}/__init__.py" in files
    if name in STUBS:
        assert STUBS[name] in files  # lazy_loader.attach_stub reads it at import time
    venv = tmp_path / "venv"
    subprocess.run([UV, "venv", "-q", "--python", sys.executable, str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [UV, "pip", "install", "-q", "--python", str(python), str(wheel), "--find-links", str(built["dir"]),
         "-c", str(built["constraints"]), "--overrides", str(built["overrides"])],
        capture_output=True, text=True, timeout=1200)
    assert install.returncode == 0, install.stderr[-4000:]
    # run from an empty folder, so nothing of the repository is importable by accident
    run = subprocess.run([str(python), "-c", textwrap.dedent(code)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600, env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()),
                                                       "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 0, run.stderr[-4000:]
    assert run.stdout.strip().splitlines()[-1] == "OK True", run.stdout
    installed = subprocess.run([UV, "pip", "list", "--python", str(python), "--format", "freeze"],
                               capture_output=True, text=True, check=True).stdout
    siblings = {line.split("==")[0] for line in installed.splitlines() if line.startswith("mgpt")}
    assert siblings == {name} | _closure(_siblings(name)), "only declared siblings are installed"


def _member_dir(name: str) -> Path:
    short = name.removeprefix("mgpt-")
    for folder in (ROOT / "packages" / short, ROOT / "packages" / "llm_bridge", ROOT / "apps" / short):
        project = folder / "pyproject.toml"
        if project.is_file() and tomllib.loads(project.read_text())["project"]["name"] == name:
            return folder
    raise FileNotFoundError(name)


def _dependencies(name: str) -> list[str]:
    return tomllib.loads((_member_dir(name) / "pyproject.toml").read_text())["project"]["dependencies"]


def _siblings(name: str) -> set[str]:
    """The workspace members ``name`` declares (extras and versions stripped)."""
    return {re.match(r"[A-Za-z0-9_.-]+", d).group() for d in _dependencies(name) if d.startswith("mgpt")}


def _closure(names: set[str]) -> set[str]:
    out = set(names)
    for name in names:
        out |= _closure(_siblings(name))
    return out
