"""load_lm: SmolLM2 (GGUF converted once) produces sensible text; tiny and hf LMs; pad token; int8 errors."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors import safe_open

from mgpt_bridge import BridgeSettings, ensure_pad_token, load_lm, smollm2_gguf_path
from mgpt_bridge.lm_loading import SMOLLM2_DIRNAME, ensure_smollm2_dir


def test_smollm2_dir_is_a_plain_hf_dir(smol_dir):
    assert (
        smol_dir.name == SMOLLM2_DIRNAME and ensure_smollm2_dir() == smol_dir
    )  # converted once, then reused
    config = json.loads((smol_dir / "config.json").read_text())
    assert "quantization_config" not in config and config["hidden_size"] == 576
    assert (smol_dir / "model.safetensors").is_file() and (smol_dir / "tokenizer.json").is_file()
    assert smollm2_gguf_path().suffix == ".gguf"


def test_smollm2_greedy_chat_reply_is_sensible(smol_dir):
    lm, tok = load_lm(BridgeSettings(lm="smollm2"))
    assert sum(p.numel() for p in lm.parameters()) == 134_515_008 and lm.dtype == torch.float32
    assert tok.pad_token == "<|im_end|>"  # SmolLM2 ships a pad token
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = lm.generate(**prompt, max_new_tokens=12, do_sample=False)
    reply = tok.decode(out[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in reply, reply


def test_tiny_lm_is_small_seeded_and_uses_the_smollm2_tokenizer(smol_tokenizer):
    lm, tok = load_lm(BridgeSettings(lm="tiny"))
    c = lm.config
    assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads) == (64, 2, 4)
    assert c.vocab_size == len(tok) == len(smol_tokenizer) and tok.pad_token_id is not None
    again, _ = load_lm(BridgeSettings(lm="tiny"))
    other, _ = load_lm(BridgeSettings(lm="tiny", seed=1))
    assert torch.equal(lm.model.layers[0].mlp.up_proj.weight, again.model.layers[0].mlp.up_proj.weight)
    assert not torch.equal(lm.model.layers[0].mlp.up_proj.weight, other.model.layers[0].mlp.up_proj.weight)


def test_hf_loads_a_local_dir_in_the_requested_dtype(tmp_path):
    lm, tok = load_lm(BridgeSettings(lm="tiny"))
    lm.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded, loaded_tok = load_lm(BridgeSettings(lm="hf", lm_path=tmp_path, lm_dtype="bfloat16"))
    assert loaded.dtype == torch.bfloat16 and len(loaded_tok) == len(tok)
    with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as f:
        saved = f.get_tensor("model.norm.weight")
    assert torch.equal(loaded.model.norm.weight, saved.to(torch.bfloat16))
    meta, _ = load_lm(BridgeSettings(lm="hf", lm_path=tmp_path), meta=True)  # shapes from config.json
    assert meta.model.norm.weight.is_meta and meta.config.hidden_size == 64


def test_hf_errors(tmp_path):
    with pytest.raises(ValueError, match="needs lm_path"):
        load_lm(BridgeSettings(lm="hf"))
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_lm(BridgeSettings(lm="hf", lm_path=tmp_path))


def test_int8_needs_cuda(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        load_lm(BridgeSettings(lm="hf", lm_path=tmp_path, load_in_8bit=True), device="cpu")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        load_lm(BridgeSettings(lm="smollm2", load_in_8bit=True), device="cpu")


def test_int8_without_bitsandbytes_names_the_extra(tmp_path, monkeypatch):
    import importlib.util

    (tmp_path / "config.json").write_text("{}")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "bitsandbytes" else real_find_spec(name, *a),
    )
    with pytest.raises(ImportError, match=r"mgpt-bridge\[int8\]"):
        load_lm(BridgeSettings(lm="hf", lm_path=tmp_path, load_in_8bit=True), device="cuda")


def test_pad_token_falls_back_to_unk_then_eos(smol_tokenizer):
    tok = copy.deepcopy(smol_tokenizer)
    tok.pad_token = None
    assert ensure_pad_token(tok).pad_token == tok.unk_token == "<|endoftext|>"
    tok = copy.deepcopy(smol_tokenizer)
    tok.pad_token, tok.unk_token = None, None
    assert ensure_pad_token(tok).pad_token == tok.eos_token == "<|im_end|>"


@pytest.mark.slow
def test_fresh_conversion_matches_the_cached_dir(smol_dir, tmp_path, monkeypatch):
    """Converting the GGUF into an empty cache (~25 s) gives the same tensors as the shared cached copy."""
    monkeypatch.setenv("MGPT_CACHE_DIR", str(tmp_path))
    fresh = ensure_smollm2_dir()
    assert fresh == tmp_path / "lm" / SMOLLM2_DIRNAME and [p.name for p in fresh.parent.iterdir()] == [
        fresh.name
    ]
    with (
        safe_open(str(fresh / "model.safetensors"), "pt") as a,
        safe_open(str(smol_dir / "model.safetensors"), "pt") as b,
    ):
        assert set(a.keys()) == set(b.keys())
        for key in a.keys():
            assert torch.equal(a.get_tensor(key), b.get_tensor(key)), key
