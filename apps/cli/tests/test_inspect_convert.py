"""`mgpt inspect` and `mgpt convert`: the real recipe's shapes on the meta device, checkpoint round trips."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from typer.testing import CliRunner

from mgpt_bridge.checkpoint import load_trainable, save_trainable
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
def _real_shape_tensors(seed: int, width: int = 4096) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"weight": torch.randn(width, 768, generator=g), "bias": torch.randn(width, generator=g)}


def _write_upstream(path: Path, width: int = 4096, extra: dict | None = None, seed: int = 1) -> dict:
    t = _real_shape_tensors(seed, width)
    model = {"llama_proj.weight": t["weight"], "llama_proj.bias": t["bias"], **(extra or {})}
    torch.save(
        {
            "model": model,
            "optimizer": {
                "state": {},
                "param_groups": [{"lr": 3e-5, "weight_decay": 0.05, "params": [0, 1]}],
            },
            "config": {"run": {"init_lr": 3e-5, "max_epoch": 5}, "model": {"arch": "mini_gpt4"}},
            "scaler": None,
            "epoch": 4,
        },
        path,
    )
    return model


def _bits_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.view(torch.int32), b.view(torch.int32))


def test_convert_minigpt4_to_ours_and_back_is_bit_exact(tmp_path: Path) -> None:
    upstream = _write_upstream(tmp_path / "checkpoint_4.pth")
    r1 = invoke("convert", str(tmp_path / "checkpoint_4.pth"), str(tmp_path / "ours.safetensors"))
    assert r1.exit_code == 0, r1.output
    assert "3,149,824 parameters" in r1.stdout
    ours, meta = load_trainable(tmp_path / "ours.safetensors")
    assert set(ours) == {"projector.weight", "projector.bias"}
    assert _bits_equal(ours["projector.weight"], upstream["llama_proj.weight"])
    assert (
        meta["source"] == "minigpt4"
        and meta["epoch"] == 4
        and meta["minigpt4_config"]["run"]["init_lr"] == 3e-5
    )

    r2 = invoke("convert", str(tmp_path / "ours.safetensors"), str(tmp_path / "back.pth"))
    assert r2.exit_code == 0, r2.output
    back = torch.load(tmp_path / "back.pth", weights_only=True)
    assert set(back["model"]) == set(upstream) and back["epoch"] == 4
    for key, tensor in upstream.items():
        assert _bits_equal(back["model"][key], tensor)
    assert back["config"]["run"] == {"init_lr": 3e-5, "max_epoch": 5}  # upstream config carried through


def test_convert_ours_to_minigpt4_and_back_is_bit_exact(tmp_path: Path) -> None:
    t = _real_shape_tensors(2)
    ours = {"projector.weight": t["weight"], "projector.bias": t["bias"]}
    ckpt = tmp_path / "run" / "checkpoints" / "epoch_3"
    save_trainable(ckpt / "trainable.safetensors", ours, {"epoch": "3", "global_step": "2000"})
    r1 = invoke("convert", str(ckpt), str(tmp_path / "up.pth"), "--to", "minigpt4")  # a checkpoint folder
    assert r1.exit_code == 0, r1.output
    up = torch.load(tmp_path / "up.pth", weights_only=True)
    assert set(up["model"]) == {"llama_proj.weight", "llama_proj.bias"} and up["epoch"] == 3
    r2 = invoke("convert", str(tmp_path / "up.pth"), str(tmp_path / "again.safetensors"), "--to", "ours")
    assert r2.exit_code == 0, r2.output
    again, _ = load_trainable(tmp_path / "again.safetensors")
    assert set(again) == set(ours)
    for key, tensor in ours.items():
        assert _bits_equal(again[key], tensor)


def test_convert_rejects_a_13b_checkpoint_naming_both_shapes(tmp_path: Path) -> None:
    _write_upstream(tmp_path / "vicuna13b.pth", width=5120)
    out = tmp_path / "x.safetensors"
    result = invoke("convert", str(tmp_path / "vicuna13b.pth"), str(out))
    _assert_clean_failure(result, "(5120, 768)", "(4096, 768)", RECIPE)
    assert not out.exists()
    # and the other way: a 5120-wide safetensors file does not export under the 7B preset
    t = _real_shape_tensors(3, width=5120)
    save_trainable(
        tmp_path / "wide.safetensors", {"projector.weight": t["weight"], "projector.bias": t["bias"]}, {}
    )
    result = invoke("convert", str(tmp_path / "wide.safetensors"), str(tmp_path / "wide.pth"))
    _assert_clean_failure(result, "(5120, 768)", "(4096, 768)")
    assert not (tmp_path / "wide.pth").exists()


class Sneaky:
    """Unpickling this (outside weights_only) would create a file: proof that nothing was executed."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_convert_refuses_pickles_with_arbitrary_objects(tmp_path: Path) -> None:
    marker = tmp_path / "executed.txt"
    bad = tmp_path / "bad.pth"
    t = _real_shape_tensors(4)
    torch.save(
        {
            "model": {"llama_proj.weight": t["weight"], "llama_proj.bias": t["bias"]},
            "config": Sneaky(marker),
            "epoch": 0,
        },
        bad,
    )
    result = invoke("convert", str(bad), str(tmp_path / "x.safetensors"))
    _assert_clean_failure(result, "weights_only=True", "refusing to load", "io.open")
    assert not marker.exists() and not (tmp_path / "x.safetensors").exists()


def test_convert_other_user_errors(tmp_path: Path) -> None:
    _write_upstream(
        tmp_path / "lora.pth", extra={"llama_model.layers.0.q_proj.lora_A.weight": torch.zeros(8, 4096)}
    )
    _assert_clean_failure(
        invoke("convert", str(tmp_path / "lora.pth"), str(tmp_path / "a.safetensors")),
        "llama_model.layers.0.q_proj.lora_A.weight",
    )
    _assert_clean_failure(
        invoke("convert", str(tmp_path / "missing.pth"), str(tmp_path / "b.safetensors")), "no such file"
    )
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    _assert_clean_failure(
        invoke("convert", str(tmp_path / "garbage.pth"), str(tmp_path / "c.safetensors")), "garbage.pth"
    )
    _write_upstream(tmp_path / "ok.pth")
    (tmp_path / "exists.safetensors").write_bytes(b"")
    _assert_clean_failure(
        invoke("convert", str(tmp_path / "ok.pth"), str(tmp_path / "exists.safetensors")), "--force"
    )
    forced = invoke("convert", str(tmp_path / "ok.pth"), str(tmp_path / "exists.safetensors"), "--force")
    assert forced.exit_code == 0, forced.output
    _assert_clean_failure(
        invoke("convert", str(tmp_path / "ok.pth"), str(tmp_path / "d.bin")), ".safetensors"
    )
    (tmp_path / "ok.txt").write_bytes(b"")
    _assert_clean_failure(invoke("convert", str(tmp_path / "ok.txt"), str(tmp_path / "e.pth")), "--to ours")
