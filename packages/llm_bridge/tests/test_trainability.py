"""Trainability as settings: a fine-tuned Q-Former, lm_tuning frozen | lora | full (tiny LM and the
SmolLM2 structure), and lm_init pretrained | random."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from mgpt_bridge import BridgeSettings, build_vlm, load_lm
from mgpt_vision import VisionSettings, tiny_blip2_model

TINY_VISION = VisionSettings(encoder="tiny", num_tokens=4)


def _trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.fixture(scope="module")
def blip2_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny_blip2")
    tiny_blip2_model(patch_size=7, num_query_tokens=4).save_pretrained(path)
    return path


def test_unfrozen_qformer_trains_with_the_projector_and_the_vision_tower_stays_frozen(blip2_dir) -> None:
    vision = VisionSettings(encoder="blip2", weights_path=blip2_dir, freeze_qformer=False)
    vlm = build_vlm(vision, BridgeSettings(lm="tiny"))
    names = _trainable(vlm)
    assert {n.split(".")[0] for n in names} == {"encoder", "projector"}
    assert {n.split(".")[1] for n in names if n.startswith("encoder.")} == {"qformer"}
    assert "encoder.qformer.module.query_tokens" in names
    s = vlm.summary()
    assert s["encoder_trained"] == ["qformer"] and not s["encoder_frozen"] and s["image_tokens"] == 4

    vlm.train()
    assert vlm.encoder.qformer.training and not vlm.encoder.vision.training
    pixels = torch.rand(2, 3, 28, 28)
    loss = vlm(answers=["a dog", "a cat on a mat"], pixels=pixels).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert vlm.encoder.qformer.module.query_tokens.grad.abs().sum() > 0
    assert all(p.grad is None for p in vlm.encoder.vision.parameters())
    assert all(p.grad is None for p in vlm.lm.parameters())

    frozen = build_vlm(VisionSettings(encoder="blip2", weights_path=blip2_dir), BridgeSettings(lm="tiny"))
    assert {n.split(".")[0] for n in _trainable(frozen)} == {"projector"}


@pytest.mark.parametrize("tuning", ["frozen", "lora", "full"])
def test_lm_tuning_on_the_tiny_lm(tuning: str) -> None:
    bridge = BridgeSettings(
        lm="tiny", lm_tuning=tuning, lora_r=4, lora_alpha=8, lora_dropout=0.0,
        lora_target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj"],
    )
    vlm = build_vlm(TINY_VISION, bridge)
    names = _trainable(vlm)
    lm_names = {n for n in names if n.startswith("lm.")}
    hidden, inter, layers = 64, 128, 2
    if tuning == "frozen":
        assert not lm_names
    elif tuning == "full":
        assert sum(p.numel() for p in vlm.lm.parameters()) == sum(
            p.numel() for n, p in vlm.named_parameters() if n in lm_names
        )
    else:
        per_layer = 4 * 4 * (hidden + hidden) + 4 * (hidden + inter)  # r=4: q,k,v,o (64→64) + gate (64→128)
        assert sum(p.numel() for n, p in vlm.named_parameters() if n in lm_names) == layers * per_layer
        assert all(".lora_" in n for n in lm_names)
        assert vlm.summary()["lora"] == {
            "r": 4, "alpha": 8, "dropout": 0.0,
            "target_modules": ["gate_proj", "k_proj", "o_proj", "q_proj", "v_proj"],
        }
    assert vlm.summary()["lm_tuning"] == tuning
    vlm.train()
    loss = vlm(answers=["a b c"], pixels=torch.rand(1, 3, 32, 32)).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert {n for n, p in vlm.named_parameters() if p.grad is not None} <= names
    assert any(p.grad is not None for n, p in vlm.named_parameters() if n in lm_names) == (tuning != "frozen")


def test_lm_tuning_on_the_smollm2_structure() -> None:
    """SmolLM2-135M: 30 layers, hidden 576, 9 query / 3 key-value heads of 64 (k/v project to 192)."""
    lora = build_vlm(TINY_VISION, BridgeSettings(lm="smollm2", lm_tuning="lora", lora_r=8), meta=True)
    lm_trainable = sum(p.numel() for n, p in lora.lm.named_parameters() if p.requires_grad)
    assert lm_trainable == 30 * (8 * (576 + 576) + 8 * (576 + 192))  # q_proj + v_proj = 460,800
    full = build_vlm(TINY_VISION, BridgeSettings(lm="smollm2", lm_tuning="full"), meta=True)
    assert sum(p.numel() for n, p in full.named_parameters() if p.requires_grad and n.startswith("lm.")) == (
        full.lm.num_parameters()
    )
    with pytest.raises(ValueError, match=r"lora_target_modules \['c_attn'\] are not modules of the LM"):
        build_vlm(TINY_VISION, BridgeSettings(lm="smollm2", lm_tuning="lora", lora_target_modules=["c_attn"]),
                  meta=True)


# ------------------------------------------------------------------------------------------------ lm_init
@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory, smol_dir) -> Path:
    """A small LLaMA dir whose saved weights are far from any fresh init (std 1 instead of 0.02)."""
    tok = AutoTokenizer.from_pretrained(smol_dir, local_files_only=True)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256, initializer_range=0.02,
    )
    torch.manual_seed(1)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 1.0)
    path = tmp_path_factory.mktemp("pretrained_lm")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_lm_init_random_keeps_architecture_and_tokenizer_but_not_weights(lm_dir: Path) -> None:
    pretrained, tok_a = load_lm(BridgeSettings(lm="hf", lm_path=lm_dir))
    random_a, tok_b = load_lm(BridgeSettings(lm="hf", lm_path=lm_dir, lm_init="random", seed=5))
    random_b, _ = load_lm(BridgeSettings(lm="hf", lm_path=lm_dir, lm_init="random", seed=5))
    other_seed, _ = load_lm(BridgeSettings(lm="hf", lm_path=lm_dir, lm_init="random", seed=6))
    assert type(random_a) is type(pretrained) and random_a.config.to_dict() == pretrained.config.to_dict()
    assert tok_a.get_vocab() == tok_b.get_vocab()
    sd_p, sd_a, sd_b, sd_o = (m.state_dict() for m in (pretrained, random_a, random_b, other_seed))
    assert {k: v.shape for k, v in sd_a.items()} == {k: v.shape for k, v in sd_p.items()}
    weight = "model.layers.0.self_attn.q_proj.weight"
    assert sd_p[weight].std() > 0.5  # the saved weights (std 1)
    assert abs(sd_a[weight].std().item() - 0.02) < 0.005  # the model's own init (initializer_range)
    assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)  # seeded
    assert not torch.equal(sd_a[weight], sd_o[weight])
    assert torch.equal(sd_a["model.norm.weight"], torch.ones(64))  # RMSNorm init, as _init_weights does


def test_lm_init_random_on_the_vlm_reports_it(lm_dir: Path) -> None:
    vlm = build_vlm(TINY_VISION, BridgeSettings(lm="hf", lm_path=lm_dir, lm_init="random"))
    assert vlm.summary()["lm_init"] == "random"
    assert vlm.lm.model.layers[0].self_attn.q_proj.weight.std() < 0.1
    with pytest.raises(ValueError, match="does not apply to lm_init='random'"):
        BridgeSettings(lm="hf", lm_path=lm_dir, lm_init="random", load_in_8bit=True)


def test_lm_init_random_on_smollm2() -> None:
    """The default preset's LM from scratch: SmolLM2's config and tokenizer, fresh weights."""
    pretrained, tok_p = load_lm(BridgeSettings(lm="smollm2"))
    scratch, tok_r = load_lm(BridgeSettings(lm="smollm2", lm_init="random"))
    assert scratch.config.to_dict() == pretrained.config.to_dict() and tok_p.get_vocab() == tok_r.get_vocab()
    sd_p, sd_r = pretrained.state_dict(), scratch.state_dict()
    assert {k: v.shape for k, v in sd_r.items()} == {k: v.shape for k, v in sd_p.items()}
    assert all(not torch.equal(sd_p[k], sd_r[k]) for k in sd_p if k.endswith("proj.weight"))
    assert scratch.get_input_embeddings().weight is scratch.get_output_embeddings().weight  # still tied
