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
def test_inspect_meta_recipe_reports_the_real_shapes() -> None:
    result = invoke("inspect", "--preset", RECIPE, "--meta", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    params = report["params"]
    assert params["trainable"] == TRAINABLE_7B == 3_149_824
    assert params["trainable_tensors"] == {"projector.weight": [4096, 768], "projector.bias": [4096]}
    assert params["trainable_by_part"] == {"projector": TRAINABLE_7B}
    enc, lm = report["encoder"], report["lm"]
    d = enc["details"]
    assert (d["vision_tokens"], d["vision_width"], d["vision_depth"], d["vision_heads"]) == (
        257,
        1408,
        39,
        16,
    )
    assert (d["qformer_queries"], d["qformer_width"]) == (32, 768)
    assert (enc["name"], enc["tokens"], enc["width"], enc["frozen"]) == ("blip2_qformer", 32, 768, True)
    assert (lm["layers"], lm["hidden"], lm["vocab"], lm["model_type"]) == (32, 4096, 32000, "llama")
    assert lm["params"] == 6_738_415_616  # LLaMA-7B
    assert (lm["dtype"], lm["tuning"], lm["frozen"]) == ("bfloat16", "frozen", True)
    assert report["image_tokens"] == 32 and report["projector"]["layers"] == [[768, 4096]]
    assert params["total"] == enc["params"] + lm["params"] + TRAINABLE_7B
    mem = report["memory_bytes"]["total"]
    assert mem["bf16"] == mem["fp16"] == 2 * params["total"] and mem["fp32"] == 4 * params["total"]
    # int8: LM linear weights (all but lm_head and the embeddings) drop to one byte
    lm_linear = 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008)
    assert report["memory_bytes"]["lm"]["int8"] == 2 * lm["params"] - lm_linear
    assert report["meta"] is True and report["device"] == "meta"


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


def test_inspect_tiny_builds_real_modules() -> None:
    result = invoke("inspect", "--preset", "tiny", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    proj = report["projector"]
    assert report["meta"] is False and report["device"] == "cpu"
    assert report["encoder"]["name"] == "tiny_cnn" and report["encoder"]["frozen"] is True
    assert report["lm"]["name"] == "tiny-llama" and report["lm"]["frozen"] is True
    assert (
        report["params"]["trainable"]
        == proj["params"]
        == proj["in_features"] * proj["out_features"] + proj["out_features"]
    )
    text = invoke("inspect", "--preset", "tiny")
    assert text.exit_code == 0 and f"number of trainable parameters: {proj['params']}" in text.stdout


def test_inspect_set_overrides_reach_the_model() -> None:
    result = invoke("inspect", "--preset", RECIPE, "--meta", "--json", "--set", "bridge.projector=mlp")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["projector"]["layers"] == [[768, 4096], [4096, 4096]]
    assert report["params"]["trainable"] == TRAINABLE_7B + 4096 * 4096 + 4096


def test_inspect_default_loads_real_weights_and_trains_only_the_bridge() -> None:
    result = invoke("inspect", "--json")  # preset "default": EfficientNet-Lite0 + SmolLM2-135M, offline
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (
        report["encoder"]["name"] == "tf_efficientnet_lite0"
        and report["lm"]["name"] == "smollm2-135m-instruct"
    )
    assert (report["encoder"]["tokens"], report["encoder"]["width"], report["lm"]["hidden"]) == (
        16,
        1280,
        576,
    )
    assert report["params"]["trainable_by_part"] == {"projector": 1280 * 576 + 576}
    assert report["encoder"]["frozen"] and report["lm"]["frozen"] and report["lm"]["dtype"] == "float32"


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
