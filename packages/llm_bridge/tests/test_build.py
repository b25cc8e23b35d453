"""build_vlm from settings: the tiny preset, projector/tuning switches, the 7B recipe on meta."""

from __future__ import annotations

import torch

from mgpt_bridge import BridgeSettings, build_vlm, load_trainable, save_trainable
from mgpt_vision import VisionSettings

TINY_VISION = VisionSettings(encoder="tiny", num_tokens=4)


def test_tiny_preset_trains_saves_and_reloads(tmp_path):
    vlm = build_vlm(TINY_VISION, BridgeSettings(lm="tiny"))
    s = vlm.summary()
    assert (s["encoder"], s["lm"], s["image_tokens"], s["token_dim"], s["lm_hidden"]) == (
        "tiny_cnn",
        "tiny-llama",
        4,
        32,
        64,
    )
    size = vlm.preprocess.image_size
    pixels = torch.rand(2, 3, size, size)
    vlm.train()
    vlm(answers=["a", "b c"], pixels=pixels).loss.backward()
    assert {n for n, p in vlm.named_parameters() if p.grad is not None} == {
        "projector.weight",
        "projector.bias",
    }
    path = save_trainable(tmp_path / "t.safetensors", vlm.trainable_state_dict(), {"summary": s})
    fresh = build_vlm(TINY_VISION, BridgeSettings(lm="tiny"))
    with torch.no_grad():
        fresh.projector.weight.zero_()
    sd, meta = load_trainable(path)
    fresh.load_trainable_state_dict(sd)
    assert meta["summary"]["encoder"] == "tiny_cnn"
    assert torch.equal(fresh.projector.weight, vlm.projector.weight)
    assert len(fresh.generate(pixels=pixels, max_new_tokens=3)) == 2


def test_mlp_projector_and_lora_from_settings():
    vlm = build_vlm(
        TINY_VISION,
        BridgeSettings(
            lm="tiny",
            projector="mlp",
            lm_tuning="lora",
            lora_r=4,
            lora_target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        ),
    )
    names = {n for n, p in vlm.named_parameters() if p.requires_grad}
    assert {n for n in names if n.startswith("projector.")} == {
        "projector.0.weight",
        "projector.0.bias",
        "projector.2.weight",
        "projector.2.bias",
    }
    lora = {n for n in names if ".lora_" in n}
    assert names == lora | {n for n in names if n.startswith("projector.")} and len(lora) == 2 * 4 * 2
    assert vlm.projector[0].weight.shape == (64, 32) and vlm.projector[2].weight.shape == (64, 64)


def test_unfrozen_encoder_comes_from_the_vision_settings():
    vlm = build_vlm(
        VisionSettings(encoder="tiny", num_tokens=4, freeze_vision=False), BridgeSettings(lm="tiny")
    )
    trainable = {n.split(".")[0] for n, p in vlm.named_parameters() if p.requires_grad}
    assert trainable == {"encoder", "projector"} and not vlm.summary()["encoder_frozen"]


def test_minigpt4_7b_recipe_on_meta():
    """BLIP-2 Q-Former (32×768) → Linear(768→4096) → LLaMA-7B shapes, nothing loaded: 3,149,824 trainable."""
    vlm = build_vlm(VisionSettings(encoder="blip2"), BridgeSettings(lm="hf"), meta=True)
    s = vlm.summary()
    assert (s["image_tokens"], s["token_dim"], s["lm_hidden"]) == (32, 768, 4096)
    assert s["trainable_params"] == 3_149_824 and s["device"] == "meta"
    assert vlm.lm.model.embed_tokens.weight.is_meta and vlm.tokenizer is None


def test_projector_init_follows_the_global_seed():
    """Callers (mgpt_train) seed once around build_vlm so every rank starts from the same projector."""
    torch.manual_seed(3)
    a = build_vlm(TINY_VISION, BridgeSettings(lm="tiny"))
    torch.manual_seed(3)
    b = build_vlm(TINY_VISION, BridgeSettings(lm="tiny"))
    c = build_vlm(TINY_VISION, BridgeSettings(lm="tiny"))
    assert torch.equal(a.projector.weight, b.projector.weight)
    assert not torch.equal(b.projector.weight, c.projector.weight)
    up = [m.lm.model.layers[0].mlp.up_proj.weight for m in (a, c)]
    assert torch.equal(*up)  # the tiny LM is seeded by settings.seed, not by the global RNG


def test_bf16_lm_with_fp32_projector():
    vlm = build_vlm(TINY_VISION, BridgeSettings(lm="tiny", lm_dtype="bfloat16"))
    s = vlm.summary()
    assert s["dtype"] == "bfloat16" and s["projector_dtype"] == "float32"
    size = vlm.preprocess.image_size
    vlm.train()
    loss = vlm(answers=["a b"], pixels=torch.rand(1, 3, size, size)).loss
    loss.backward()
    assert torch.isfinite(loss) and vlm.projector.weight.grad.dtype == torch.float32
    assert vlm.projector.weight.grad.abs().sum() > 0
