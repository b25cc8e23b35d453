"""LoRA outputs other tools read (a PEFT adapter folder, a merged LM); checkpoints that say what they hold."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

from mgpt_bridge import (
    BridgeSettings,
    build_vlm,
    export_merged_lm,
    load_lm,
    load_trainable,
    read_contents,
    save_lora_adapter,
    save_trainable,
    write_lora_adapter,
)
from mgpt_vision import VisionSettings

VISION = VisionSettings(encoder="tiny", num_tokens=16)
LORA = BridgeSettings(
    lm="tiny", lm_tuning="lora", lora_r=4, lora_alpha=8, lora_target_modules=["q_proj", "v_proj"]
)


@pytest.fixture(scope="module")
def trained():
    """A LoRA VLM after a few SGD steps (lora_B moves away from its zero init)."""
    torch.manual_seed(0)
    vlm = build_vlm(VISION, LORA)
    optimizer = torch.optim.SGD([p for p in vlm.parameters() if p.requires_grad], lr=0.5)
    vlm.train()
    for _ in range(3):
        optimizer.zero_grad()
        vlm(answers=["a red square", "a blue circle"], pixels=torch.rand(2, 3, 32, 32)).loss.backward()
        optimizer.step()
    vlm.eval()
    lora_b = [p for n, p in vlm.named_parameters() if "lora_B" in n]
    assert all(p.abs().sum() > 0 for p in lora_b)
    return vlm


def _logits(lm, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return lm.eval()(input_ids=ids).logits


IDS = torch.randint(5, 1000, (2, 12), generator=torch.Generator().manual_seed(0))


def test_the_adapter_folder_loads_with_peft_and_gives_our_checkpoints_logits(trained, tmp_path) -> None:
    ckpt = save_trainable(tmp_path / "trainable.safetensors", trained.trainable_state_dict(), {})
    ours = build_vlm(VISION, LORA)  # fresh model + our trainable checkpoint
    ours.load_trainable_state_dict(load_trainable(ckpt)[0])
    expected = _logits(ours.lm, IDS)
    assert not torch.allclose(expected, _logits(load_lm(LORA)[0], IDS))  # the LoRA changes something

    live = save_lora_adapter(trained, tmp_path / "adapter_live")
    from_checkpoint = write_lora_adapter(tmp_path / "adapter_ckpt", load_trainable(ckpt)[0], LORA)
    for folder in (live, from_checkpoint):
        assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in folder.iterdir()}
        config = json.loads((folder / "adapter_config.json").read_text())
        assert (config["r"], config["lora_alpha"]) == (4, 8)
        assert sorted(config["target_modules"]) == ["q_proj", "v_proj"]
        base, _ = load_lm(LORA)  # a freshly built base LM
        peft_lm = PeftModel.from_pretrained(base, folder)
        assert torch.allclose(_logits(peft_lm, IDS), expected, rtol=0, atol=1e-6)


def test_write_lora_adapter_refuses_tensors_that_do_not_fit(trained, tmp_path) -> None:
    sd = trained.trainable_state_dict()
    with pytest.raises(ValueError, match="do not fit bridge settings r=4 on \\['q_proj'\\]"):
        write_lora_adapter(tmp_path / "a", sd, LORA.model_copy(update={"lora_target_modules": ["q_proj"]}))
    with pytest.raises(ValueError, match="holds no LoRA tensors"):
        write_lora_adapter(tmp_path / "b", {k: v for k, v in sd.items() if "lora" not in k}, LORA)
    with pytest.raises(ValueError, match="not LoRA-tuned"):
        save_lora_adapter(build_vlm(VISION, BridgeSettings(lm="tiny")), tmp_path / "c")


def test_merged_export_is_a_plain_lm_with_the_same_logits(trained, tmp_path) -> None:
    before = _logits(trained.lm, IDS)
    folder = export_merged_lm(trained, tmp_path / "merged")
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    merged = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    assert torch.allclose(_logits(merged, IDS), before, rtol=0, atol=1e-5)
    assert torch.equal(_logits(trained.lm, IDS), before)  # the model itself keeps its LoRA


def test_checkpoint_files_say_what_they_hold(trained, tmp_path) -> None:
    path = save_trainable(tmp_path / "t.safetensors", trained.trainable_state_dict(), {"epoch": 1})
    contents = read_contents(path)
    assert (contents.projector, contents.lm_tuning, contents.lora_r) == ("linear", "lora", 4)
    assert contents.lora_target_modules == ("q_proj", "v_proj") and contents.encoder_trained == ()
    assert contents.describe() == "a linear projector, LoRA r=4 on q_proj,v_proj, a frozen encoder"
    plain = tmp_path / "plain.safetensors"  # a file written without our header: told from its tensors
    save_file({k: v.contiguous() for k, v in trained.trainable_state_dict().items()}, str(plain))
    assert read_contents(plain) == contents


def test_a_mismatch_is_told_in_one_line(trained, tmp_path) -> None:
    mlp3 = build_vlm(VISION, BridgeSettings(lm="tiny", projector="mlp", projector_layers=3))
    linear = build_vlm(VISION, BridgeSettings(lm="tiny"))
    with pytest.raises(ValueError) as err:
        linear.load_trainable_state_dict(mlp3.trainable_state_dict())
    message = str(err.value)
    assert message.startswith("checkpoint holds an mlp-3 projector; this model has a linear projector | ")
    assert "missing keys ['projector.bias', 'projector.weight']" in message and "\n" not in message
    expected = (
        r"^checkpoint holds a linear projector and LoRA r=4 on q_proj,v_proj; "
        r"this model has an ldp projector and a frozen LM \| "
    )
    with pytest.raises(ValueError, match=expected):
        build_vlm(VISION, BridgeSettings(lm="tiny", projector="ldp")).load_trainable_state_dict(
            trained.trainable_state_dict()
        )
    wide = build_vlm(VISION, LORA.model_copy(update={"lora_target_modules": ["q_proj", "k_proj", "v_proj"]}))
    with pytest.raises(ValueError) as err:  # LoRA-sized key lists (here 12 tensors) stay short
        linear.load_trainable_state_dict(wide.trainable_state_dict())
    assert "(+9 more)" in str(err.value) and str(err.value).count(".lora_") == 3  # check_state_dict keeps 3
