"""Upstream MiniGPT-4 checkpoints in their real layouts: written by a copy of upstream's save logic over
models with upstream's module names (``upstream_minigpt4.py``), imported bit-exact, exported back into
upstream's own ``load_state_dict(strict=False)`` and re-imported."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from mgpt_bridge import (
    BridgeSettings,
    CheckpointError,
    Direction,
    convert_checkpoint,
    load_trainable,
)
from mgpt_bridge.lm_loading import LLAMA_7B_CONFIG
from mgpt_vision import VisionSettings

TINY_VISION = VisionSettings(encoder="tiny", num_tokens=4)  # 4 tokens × 32
TINY_LORA_R = 4
#: layout → (UpstreamMiniGPT kwargs, LoRA rank); the tiny upstream widths fit the tiny preset's model
LAYOUTS = {
    "v1_stage1": ({"v1_order": True}, 0),  # mini_gpt4.py + runner at the first commit, transformers 4.28
    "v1_stage2": ({"v1_order": True}, 0),
    "minigpt4": ({}, 0),  # minigpt4.py (later code over minigpt_base.py), transformers 4.30
    "llama2": ({"qformer": False}, 0),  # has_qformer: False, llama_proj on 4 grouped patch tokens
    "v2": ({"qformer": False}, TINY_LORA_R),  # minigpt_v2.py: no Q-Former, LoRA q_proj/v_proj (peft 0.2.0)
}


def tiny_bridge(lora_r: int) -> BridgeSettings:
    if lora_r:
        return BridgeSettings(lm="tiny", lm_tuning="lora", lora_r=lora_r, lora_alpha=16)
    return BridgeSettings(lm="tiny")


def _write_upstream(upstream, tmp_path: Path, layout: str, *, seed: int = 0, w=None, device="cpu", step=True):
    """Build the layout's upstream model, train one AdamW step, save it as upstream's runner does."""
    kwargs, lora_r = LAYOUTS[layout]
    w = replace(upstream.TINY, lora_r=lora_r) if w is None else w
    torch.manual_seed(seed)
    model = upstream.UpstreamMiniGPT(w, device=device, **kwargs)
    optimizer = upstream.upstream_optimizer(model)
    if step:
        upstream.train_one_step(model, optimizer)
    config = upstream.run_config(layout, lora_r=w.lora_r or 64)
    path = tmp_path / f"{layout}_checkpoint_3.pth"
    upstream.save_checkpoint(model, optimizer, config, torch.amp.GradScaler("cpu"), 3, path)
    return model, path


def _trainable(model) -> dict[str, torch.Tensor]:
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


def _expected_buffers(layout: str, layers: int, prefix: str = "llama_model.model") -> set[str]:
    lora = LAYOUTS[layout][1]
    prefix = "llama_model.base_model.model.model" if lora else prefix
    rotary = {f"{prefix}.layers.{i}.self_attn.rotary_emb.inv_freq" for i in range(layers)}
    return rotary | (
        {"Qformer.bert.embeddings.position_ids"} if LAYOUTS[layout][0].get("qformer", True) else set()
    )


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_upstream_layout_imports_bit_exact(upstream, tmp_path: Path, layout: str) -> None:
    model, path = _write_upstream(upstream, tmp_path, layout)
    theirs = torch.load(path, weights_only=True)
    # what upstream's file holds: the trainable parameters plus the persistent buffers, nothing frozen
    assert set(theirs) == {"model", "optimizer", "config", "scaler", "epoch"}
    trainable = _trainable(model)
    assert set(theirs["model"]) == set(trainable) | _expected_buffers(layout, upstream.TINY.lm_layers)
    lora_r = LAYOUTS[layout][1]
    assert sum(".lora_" in k for k in theirs["model"]) == 4 * upstream.TINY.lm_layers * bool(lora_r)

    result = convert_checkpoint(path, tmp_path / "ours.safetensors", TINY_VISION, tiny_bridge(lora_r))
    ours, meta = load_trainable(result.dst)
    assert result.direction is Direction.ours and len(ours) == len(trainable)
    for name, tensor in trainable.items():
        mine = (
            "projector." + name.split(".")[-1]
            if name.startswith("llama_proj")
            else ("lm." + name.removeprefix("llama_model.").replace(".weight", ".default.weight"))
        )
        assert ours[mine].dtype == tensor.dtype == torch.float32 and torch.equal(ours[mine], tensor), name
    ignored = {item.what: item for item in result.ignored}
    assert set(ignored) == {"model buffers", "optimizer", "scaler", "config", "epoch"}
    assert set(ignored["model buffers"].keys) == _expected_buffers(layout, upstream.TINY.lm_layers)
    assert f"({len(trainable)} parameters' moments)" in ignored["optimizer"].reason
    assert meta["epoch"] == 3 and meta["minigpt4_config"]["run"]["weight_decay"] == 0.05
    assert meta["ignored"] == [item.describe() for item in result.ignored]
    assert any(line.startswith("ignored: model buffers") for line in result.report())


@pytest.mark.parametrize("layout", ["v1_stage2", "llama2", "v2"])
def test_export_loads_into_upstream_and_round_trips(upstream, tmp_path: Path, layout: str) -> None:
    original, path = _write_upstream(upstream, tmp_path, layout)
    lora_r = LAYOUTS[layout][1]
    bridge = tiny_bridge(lora_r)
    ours = convert_checkpoint(path, tmp_path / "ours.safetensors", TINY_VISION, bridge).dst
    exported = convert_checkpoint(ours, tmp_path / "back.pth", TINY_VISION, bridge)
    assert exported.direction is Direction.minigpt4

    ckpt = torch.load(exported.dst, weights_only=True)
    assert set(ckpt) == {"model", "optimizer", "config", "scaler", "epoch"} and ckpt["epoch"] == 3
    assert list(ckpt["model"]) == list(_trainable(original))  # upstream's keys and order, less the buffers
    assert all(t.dtype == torch.float32 for t in ckpt["model"].values())
    # upstream's loader: a fresh model (another seed), load_state_dict(strict=False) as from_config does
    kwargs, _ = LAYOUTS[layout]
    torch.manual_seed(1)
    theirs = upstream.UpstreamMiniGPT(replace(upstream.TINY, lora_r=lora_r), **kwargs)
    msg = theirs.load_state_dict(ckpt["model"], strict=False)
    assert msg.unexpected_keys == []
    assert set(msg.missing_keys) == theirs.frozen_keys()  # only the frozen parameters and the buffers
    for name, tensor in _trainable(original).items():
        assert torch.equal(_trainable(theirs)[name], tensor), name
    # upstream's resume (_load_checkpoint): its optimizer and GradScaler take what we wrote
    optimizer = upstream.upstream_optimizer(theirs)
    optimizer.load_state_dict(ckpt["optimizer"])
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.05, 0]
    torch.amp.GradScaler("cpu").load_state_dict(ckpt["scaler"])
    # ... and its save logic, imported again: bit-exact against the first file
    again = upstream.save_checkpoint(
        theirs, optimizer, ckpt["config"], None, ckpt["epoch"], tmp_path / "re.pth"
    )
    final, _ = load_trainable(
        convert_checkpoint(again, tmp_path / "final.safetensors", TINY_VISION, bridge).dst
    )
    first, _ = load_trainable(ours)
    assert final.keys() == first.keys() and all(torch.equal(final[k], first[k]) for k in first)


def _llama_dir(tmp_path: Path, smol_tokenizer, hidden: int, layers: int, inter: int) -> Path:
    """A config-only HF dir (plus a tokenizer, which load_lm reads): the LLM's shapes for a meta build."""
    from transformers import LlamaConfig

    folder = tmp_path / f"llama-{hidden}"
    cfg = {
        **LLAMA_7B_CONFIG,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": layers,
        "num_key_value_heads": layers,
        "intermediate_size": inter,
    }
    LlamaConfig(**cfg).save_pretrained(folder)
    smol_tokenizer.save_pretrained(folder)
    return folder


REAL = {  # name → (layout, vision encoder, upstream widths attr, LoRA r): the published projector shapes
    "vicuna7b_768_4096": ("v1_stage2", "blip2", "REAL_7B", 0),
    "vicuna13b_768_5120": ("v1_stage2", "blip2", "REAL_13B", 0),
    "llama2_5632_4096": ("llama2", "blip2_noqformer", "REAL_7B", 0),
}


@pytest.mark.parametrize("case", list(REAL))
def test_real_projector_shapes_import_bit_exact(upstream, tmp_path: Path, smol_tokenizer, case: str) -> None:
    layout, encoder, widths, _ = REAL[case]
    w = getattr(upstream, widths)
    model, path = _write_upstream(upstream, tmp_path, layout, w=w, device="meta", step=False)
    lm_path = None if w.lm_hidden == 4096 else _llama_dir(tmp_path, smol_tokenizer, 5120, 40, 13824)
    bridge = BridgeSettings(lm="hf", lm_path=lm_path, lm_dtype="bfloat16")
    result = convert_checkpoint(path, tmp_path / "ours.safetensors", VisionSettings(encoder=encoder), bridge)
    ours, _ = load_trainable(result.dst)
    in_dim = 768 if encoder == "blip2" else 5632
    assert result.shapes == {"projector.weight": (w.lm_hidden, in_dim), "projector.bias": (w.lm_hidden,)}
    assert torch.equal(ours["projector.weight"], model.llama_proj.weight.detach())
    assert torch.equal(ours["projector.bias"], model.llama_proj.bias.detach())
    assert len(dict((i.what, i) for i in result.ignored)["model buffers"].keys) == w.lm_layers + (
        in_dim == 768
    )


@pytest.mark.slow
def test_real_minigpt_v2_with_lora_imports_bit_exact(upstream, tmp_path: Path) -> None:
    """MiniGPT-v2 at its real size: llama_proj 5632→4096 and LoRA r 64 on q/v of 32 layers (~230 MB)."""
    w = replace(upstream.REAL_7B, lora_r=64)
    model, path = _write_upstream(upstream, tmp_path, "v2", w=w, device="meta", step=False)
    bridge = BridgeSettings(lm="hf", lm_dtype="bfloat16", lm_tuning="lora", lora_r=64, lora_alpha=16)
    result = convert_checkpoint(
        path, tmp_path / "ours.safetensors", VisionSettings(encoder="blip2_noqformer"), bridge
    )
    ours, _ = load_trainable(result.dst)
    assert len(ours) == 2 + 4 * 32 and result.params == 5632 * 4096 + 4096 + 32 * 2 * 2 * 64 * 4096
    lora_b = model.llama_model.base_model.model.model.layers[31].self_attn.v_proj.lora_B.weight
    assert torch.equal(
        ours["lm.base_model.model.model.layers.31.self_attn.v_proj.lora_B.default.weight"], lora_b
    )


def test_a_13b_file_does_not_fit_the_7b_recipe(upstream, tmp_path: Path) -> None:
    _, path = _write_upstream(upstream, tmp_path, "v1_stage2", w=upstream.REAL_13B, device="meta", step=False)
    recipe = (VisionSettings(encoder="blip2"), BridgeSettings(lm="hf", lm_dtype="bfloat16"))
    with pytest.raises(CheckpointError) as err:
        convert_checkpoint(path, tmp_path / "x.safetensors", *recipe, target="preset 'minigpt4_flickr30k'")
    message = str(err.value)
    assert len(message) < 300 and "\n" not in message, message
    assert (
        "llama_proj.weight is (5120, 768), the model's is (4096, 768)" in message and "Vicuna-13B" in message
    )
    assert not (tmp_path / "x.safetensors").exists()
