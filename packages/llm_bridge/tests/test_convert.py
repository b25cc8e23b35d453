"""``convert_checkpoint`` at the recipe's real 7B shapes (from the CLI's tests) and its refusals: short
one-line messages that name the mismatch."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from mgpt_bridge import (
    TRAINABLE_FILE,
    BridgeSettings,
    CheckpointError,
    convert_checkpoint,
    load_trainable,
    save_trainable,
)
from mgpt_vision import VisionSettings

RECIPE = "minigpt4_flickr30k"
TARGET = f"preset {RECIPE!r}"
#: the recipe's vision + bridge (configs/minigpt4_flickr30k.toml): Q-Former → Linear(768→4096) → LLaMA-7B
RECIPE_SETTINGS = (
    VisionSettings(encoder="blip2", dtype="float16"),
    BridgeSettings(lm="hf", lm_dtype="bfloat16"),
)
TINY = (VisionSettings(encoder="tiny", num_tokens=4), BridgeSettings(lm="tiny"))


def convert(src: Path, dst: Path, settings=RECIPE_SETTINGS, **kwargs):
    return convert_checkpoint(src, dst, *settings, target=TARGET, **kwargs)


def refused(error_type, src: Path, dst: Path, *needles: str, settings=RECIPE_SETTINGS, **kwargs) -> str:
    """The conversion fails with ``error_type``: one short line naming the problem; nothing is written."""
    with pytest.raises(error_type) as err:
        convert(src, dst, settings, **kwargs)
    message = str(err.value)
    assert "\n" not in message and len(message) < 300, message
    for needle in needles:
        assert needle in message, message
    return message


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
    r1 = convert(tmp_path / "checkpoint_4.pth", tmp_path / "ours.safetensors")
    assert r1.params == 3_149_824
    ours, meta = load_trainable(tmp_path / "ours.safetensors")
    assert set(ours) == {"projector.weight", "projector.bias"}
    assert _bits_equal(ours["projector.weight"], upstream["llama_proj.weight"])
    assert (
        meta["source"] == "minigpt4"
        and meta["epoch"] == 4
        and meta["minigpt4_config"]["run"]["init_lr"] == 3e-5
    )

    convert(tmp_path / "ours.safetensors", tmp_path / "back.pth")
    back = torch.load(tmp_path / "back.pth", weights_only=True)
    assert set(back["model"]) == set(upstream) and back["epoch"] == 4
    for key, tensor in upstream.items():
        assert _bits_equal(back["model"][key], tensor)
    assert back["config"]["run"] == {"init_lr": 3e-5, "max_epoch": 5}  # upstream config carried through
    assert back["optimizer"]["param_groups"][0]["lr"] == 3e-5  # AdamW groups from that config


def test_convert_ours_to_minigpt4_and_back_is_bit_exact(tmp_path: Path) -> None:
    t = _real_shape_tensors(2)
    ours = {"projector.weight": t["weight"], "projector.bias": t["bias"]}
    ckpt = tmp_path / "run" / "checkpoints" / "epoch_3"
    save_trainable(ckpt / TRAINABLE_FILE, ours, {"epoch": "3", "global_step": "2000"})
    torch.save({"optimizer": {}}, ckpt / "train_state.pt")
    r1 = convert(ckpt, tmp_path / "up.pth", to="minigpt4")  # a checkpoint folder
    up = torch.load(tmp_path / "up.pth", weights_only=True)
    assert set(up["model"]) == {"llama_proj.weight", "llama_proj.bias"} and up["epoch"] == 3
    assert up["config"]["model"] == {"arch": "minigpt4", "has_qformer": True}
    assert up["config"]["mgpt"]["metadata"]["global_step"] == "2000"
    assert [item.what for item in r1.ignored] == ["train_state.pt"]  # reported, not silently dropped
    convert(tmp_path / "up.pth", tmp_path / "again.safetensors", to="ours")
    again, _ = load_trainable(tmp_path / "again.safetensors")
    assert set(again) == set(ours)
    for key, tensor in ours.items():
        assert _bits_equal(again[key], tensor)


def test_export_writes_fp32_as_upstream_trains_it(tmp_path: Path) -> None:
    t = _real_shape_tensors(5)
    ours = {
        "projector.weight": t["weight"].to(torch.bfloat16),
        "projector.bias": t["bias"].to(torch.bfloat16),
    }
    save_trainable(tmp_path / "bf16.safetensors", ours, {})
    result = convert(tmp_path / "bf16.safetensors", tmp_path / "up.pth")
    up = torch.load(tmp_path / "up.pth", weights_only=True)
    assert result.dtypes == {"llama_proj.weight": "float32", "llama_proj.bias": "float32"}
    assert torch.equal(up["model"]["llama_proj.weight"], ours["projector.weight"].float())  # lossless
    assert up["epoch"] == 0 and any("no epoch" in note for note in result.notes)


def test_convert_rejects_a_13b_checkpoint_naming_both_shapes(tmp_path: Path) -> None:
    _write_upstream(tmp_path / "vicuna13b.pth", width=5120)
    out = tmp_path / "x.safetensors"
    refused(CheckpointError, tmp_path / "vicuna13b.pth", out, "(5120, 768)", "(4096, 768)", RECIPE)
    assert not out.exists()
    # and the other way: a 5120-wide safetensors file does not export under the 7B preset
    t = _real_shape_tensors(3, width=5120)
    save_trainable(
        tmp_path / "wide.safetensors", {"projector.weight": t["weight"], "projector.bias": t["bias"]}, {}
    )
    refused(
        CheckpointError, tmp_path / "wide.safetensors", tmp_path / "wide.pth", "(5120, 768)", "(4096, 768)"
    )
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
    refused(
        CheckpointError, bad, tmp_path / "x.safetensors", "weights_only=True", "refusing to load", "io.open"
    )
    assert not marker.exists() and not (tmp_path / "x.safetensors").exists()


def test_convert_other_user_errors(tmp_path: Path) -> None:
    _write_upstream(
        tmp_path / "lora.pth", extra={"llama_model.layers.0.q_proj.lora_A.weight": torch.zeros(8, 4096)}
    )
    refused(
        CheckpointError,
        tmp_path / "lora.pth",
        tmp_path / "a.safetensors",
        "llama_model.layers.0.q_proj.lora_A.weight",
    )
    refused(FileNotFoundError, tmp_path / "missing.pth", tmp_path / "b.safetensors", "no such file")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    refused(CheckpointError, tmp_path / "garbage.pth", tmp_path / "c.safetensors", "garbage.pth")
    _write_upstream(tmp_path / "ok.pth")
    (tmp_path / "exists.safetensors").write_bytes(b"")
    refused(FileExistsError, tmp_path / "ok.pth", tmp_path / "exists.safetensors", "--force")
    assert convert(tmp_path / "ok.pth", tmp_path / "exists.safetensors", force=True).params == 3_149_824
    refused(CheckpointError, tmp_path / "ok.pth", tmp_path / "d.bin", ".safetensors")
    (tmp_path / "ok.txt").write_bytes(b"")
    refused(CheckpointError, tmp_path / "ok.txt", tmp_path / "e.pth", "--to ours")
    refused(CheckpointError, tmp_path / "ok.pth", tmp_path / "f.safetensors", "sideways", to="sideways")


# ------------------------------------------------------------------------ refusals on upstream-layout files
def _tiny_upstream(
    upstream, tmp_path: Path, *, lora_r: int = 0, qformer: bool = True, **config_model
) -> Path:
    torch.manual_seed(0)
    model = upstream.UpstreamMiniGPT(replace(upstream.TINY, lora_r=lora_r), qformer=qformer)
    config = upstream.run_config("v2" if lora_r else "minigpt4", lora_r=lora_r or 64)
    config["model"].update(config_model)
    optimizer = upstream.upstream_optimizer(model)
    return upstream.save_checkpoint(model, optimizer, config, None, 0, tmp_path / "checkpoint_0.pth"), model


def test_lora_in_a_preset_without_lora_is_refused(upstream, tmp_path: Path) -> None:
    path, _ = _tiny_upstream(upstream, tmp_path, lora_r=4, qformer=False)
    refused(
        CheckpointError,
        path,
        tmp_path / "x.safetensors",
        "8 LoRA tensors",
        "lora_A.weight",
        "trains no LoRA",
        "bridge.lm_tuning=lora",
        "bridge.lora_r=4",
        settings=TINY,
    )
    wrong_rank = (TINY[0], BridgeSettings(lm="tiny", lm_tuning="lora", lora_r=8))
    refused(
        CheckpointError,
        path,
        tmp_path / "x.safetensors",
        "is (4, 64), the model's is (8, 64)",
        settings=wrong_rank,
    )
    other_alpha = (TINY[0], BridgeSettings(lm="tiny", lm_tuning="lora", lora_r=4, lora_alpha=32))
    refused(
        CheckpointError,
        path,
        tmp_path / "x.safetensors",
        "lora_alpha 16",
        "bridge.lora_alpha=16",
        settings=other_alpha,
    )


def test_wrong_width_is_refused(upstream, tmp_path: Path) -> None:
    path, _ = _tiny_upstream(upstream, tmp_path, qformer=False)
    wide = (TINY[0], BridgeSettings(lm="smollm2"))  # 576 wide
    refused(
        CheckpointError,
        path,
        tmp_path / "x.safetensors",
        "llama_proj.weight is (64, 32)",
        "the model's is (576, 32)",
        "LLM width",
        settings=wide,
    )
    more_tokens = (VisionSettings(encoder="blip2_noqformer"), TINY[1])
    refused(CheckpointError, path, tmp_path / "x.safetensors", "(64, 32)", "(64, 5632)", settings=more_tokens)
    mlp = (TINY[0], BridgeSettings(lm="tiny", projector="mlp"))
    refused(
        CheckpointError,
        path,
        tmp_path / "x.safetensors",
        "llama_proj.",
        "bridge.projector=linear",
        settings=mlp,
    )


def test_missing_projector_is_refused(upstream, tmp_path: Path) -> None:
    _, model = _tiny_upstream(upstream, tmp_path)
    model.llama_proj.requires_grad_(False)  # a run that trained nothing: only buffers are left in the file
    path = upstream.save_checkpoint(
        model, upstream.upstream_optimizer(model), {}, None, 0, tmp_path / "none.pth"
    )
    refused(
        CheckpointError, path, tmp_path / "x.safetensors", "no projector", "llama_proj.weight", settings=TINY
    )


def test_trainable_tensors_we_cannot_place_are_refused(upstream, tmp_path: Path) -> None:
    _, model = _tiny_upstream(upstream, tmp_path)
    model.query_tokens.requires_grad_(True)  # freeze_qformer: False
    model.Qformer.requires_grad_(True)
    path = upstream.save_checkpoint(
        model, upstream.upstream_optimizer(model), {}, None, 0, tmp_path / "qf.pth"
    )
    message = refused(
        CheckpointError, path, tmp_path / "x.safetensors", "no place for", "Qformer.", settings=TINY
    )
    assert "(+" in message  # a count and a few examples, never every key


def test_export_refuses_what_upstream_cannot_hold(tmp_path: Path) -> None:
    mlp = {
        "projector.0.weight": torch.zeros(64, 32),
        "projector.0.bias": torch.zeros(64),
        "projector.2.weight": torch.zeros(64, 64),
        "projector.2.bias": torch.zeros(64),
    }
    save_trainable(tmp_path / "mlp.safetensors", mlp, {})
    mlp_settings = (TINY[0], BridgeSettings(lm="tiny", projector="mlp"))
    refused(
        CheckpointError,
        tmp_path / "mlp.safetensors",
        tmp_path / "x.pth",
        "4 trainable tensors",
        "no place in upstream",
        "projector.0.weight",
        settings=mlp_settings,
    )
