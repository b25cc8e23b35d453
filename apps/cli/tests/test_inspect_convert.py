"""`mgpt inspect` and `mgpt convert`: the real recipe's shapes on the meta device, checkpoint round trips."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from typer.testing import CliRunner

from mgpt_bridge.checkpoint import load_trainable
from mgpt_cli.main import app

REPO = Path(__file__).resolve().parents[3]
RECIPE = "minigpt4_flickr30k"
TRAINABLE_7B = 4096 * 768 + 4096  # Linear(768→4096): 3,149,824

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def _assert_clean_failure(result, *needles: str) -> None:
    """Non-zero exit, a message naming the problem on stderr, no traceback."""
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.stderr, result.stderr


# ------------------------------------------------------------------------------------------------ inspect
def test_inspect_command_line_prints_the_seed_line() -> None:
    """The literal command, in a fresh process: `uv run apps/cli inspect --preset ... --meta`."""
    uv = os.environ.get("UV", "uv")
    cmd = [uv, "run", "apps/cli", "inspect", "--preset", RECIPE, "--meta"]
    if not _has(uv):
        cmd = [sys.executable, "apps/cli", "inspect", "--preset", RECIPE, "--meta"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "number of trainable parameters: 3149824" in out
    assert "257 tokens × 1408, depth 39" in out and "32 queries × 768" in out
    assert "32 layers, hidden 4096, vocab 32000" in out and "Linear(768→4096)" in out
    assert "bf16 14.59 GiB" in out  # 7,832,679,936 params × 2 bytes


def _has(program: str) -> bool:
    from shutil import which

    return which(program) is not None


def test_inspect_json_is_the_package_report() -> None:
    from mgpt_bridge import inspect_model
    from mgpt_train.run_settings import RunSettings

    result = invoke("inspect", "--preset", "tiny", "--json", "--set", "bridge.projector=mlp")
    assert result.exit_code == 0, result.output
    settings = RunSettings.load("tiny", ["bridge.projector=mlp"])
    assert json.loads(result.stdout) == inspect_model(settings.vision, settings.bridge, preset="tiny")
    text = invoke("inspect", "--preset", "tiny")
    assert text.exit_code == 0 and "number of trainable parameters:" in text.stdout


def test_inspect_user_errors_are_one_clean_message() -> None:
    _assert_clean_failure(
        invoke("inspect", "--preset", "no_such_preset", "--meta"), "no preset 'no_such_preset'"
    )
    _assert_clean_failure(invoke("inspect", "--preset", "tiny", "--set", "train.batch_size=0"), "batch_size")
    _assert_clean_failure(invoke("inspect", "--preset", "tiny", "--set", "oops"), "section.key=value")


# ------------------------------------------------------------------------------------------------ convert
# The conversion itself is tested in packages/llm_bridge/tests (test_convert.py, test_minigpt4_interop.py).
def test_convert_command_round_trip_prints_what_it_ignored(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(1)
    upstream = {
        "llama_proj.weight": torch.randn(4096, 768, generator=g),
        "llama_proj.bias": torch.randn(4096),
    }
    torch.save(
        {"model": upstream, "optimizer": {"state": {}}, "config": {"run": {}}, "scaler": None, "epoch": 4},
        tmp_path / "checkpoint_4.pth",
    )
    r1 = invoke("convert", str(tmp_path / "checkpoint_4.pth"), str(tmp_path / "ours.safetensors"))
    assert r1.exit_code == 0, r1.output
    assert "3,149,824 parameters" in r1.stdout and f"fits preset {RECIPE!r}" in r1.stdout
    assert "ignored: optimizer" in r1.stdout and "ignored: epoch" in r1.stdout
    ours, meta = load_trainable(tmp_path / "ours.safetensors")
    assert torch.equal(ours["projector.weight"], upstream["llama_proj.weight"]) and meta["epoch"] == 4

    r2 = invoke("convert", str(tmp_path / "ours.safetensors"), str(tmp_path / "back.pth"), "--to", "minigpt4")
    assert r2.exit_code == 0, r2.output
    back = torch.load(tmp_path / "back.pth", weights_only=True)
    assert torch.equal(back["model"]["llama_proj.bias"], upstream["llama_proj.bias"]) and back["epoch"] == 4

    wide = invoke(
        "convert",
        str(tmp_path / "ours.safetensors"),
        str(tmp_path / "x.pth"),
        "--set",
        "bridge.lora_r=4",
        "--set",
        "bridge.lm_tuning=lora",
    )
    assert wide.exit_code == 2 and wide.stderr.startswith("error: ") and "Traceback" not in wide.output
    assert "lacks" in wide.stderr and not (tmp_path / "x.pth").exists()
