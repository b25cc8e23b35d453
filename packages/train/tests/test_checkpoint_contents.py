"""Training checkpoints say what they hold, carry a PEFT adapter when the LM is LoRA-tuned, and a trainable
Q-Former turns the feature cache off."""

from __future__ import annotations

import torch
from peft import PeftModel

from mgpt_bridge import load_lm, load_trainable
from mgpt_train.checkpointing import TRAINABLE_FILE, read_trainable, write_checkpoint_dir
from mgpt_train.modeling import build_model, features_cacheable

STATE = {"epoch": 0, "step_in_epoch": 3, "global_step": 3}
IDS = torch.randint(5, 1000, (2, 10), generator=torch.Generator().manual_seed(0))


def _logits(lm) -> torch.Tensor:
    with torch.no_grad():
        return lm.eval()(input_ids=IDS).logits


def test_a_lora_checkpoint_folder_holds_a_peft_adapter(tmp_path, make_settings) -> None:
    settings = make_settings(tmp_path, bridge={"lm_tuning": "lora", "lora_r": 4, "lora_alpha": 8})
    model = build_model(settings)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1)  # as after training (the init is zeros)
    dest = write_checkpoint_dir(tmp_path / "epoch_0", model.trainable_state_dict(), STATE,
                                settings.to_json_dict())
    files = {p.name for p in (dest / "adapter").iterdir()}
    assert files >= {"adapter_config.json", "adapter_model.safetensors"}
    base, _ = load_lm(settings.bridge)
    adapter = PeftModel.from_pretrained(base, dest / "adapter")
    assert torch.allclose(_logits(adapter), _logits(model.lm), rtol=0, atol=1e-6)

    _, metadata = load_trainable(dest / TRAINABLE_FILE)
    assert metadata["lora"] == {"r": 4, "alpha": 8, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}
    assert (metadata["lm"], metadata["lm_init"], metadata["global_step"]) == ("tiny", "pretrained", "3")
    assert metadata["contents"]["lm_tuning"] == "lora" and metadata["contents"]["projector"] == "linear"
    reloaded = build_model(settings, checkpoint=dest)
    assert torch.equal(_logits(reloaded.lm), _logits(model.lm))
    assert set(read_trainable(dest)) == set(model.trainable_state_dict())


def test_a_projector_only_checkpoint_has_no_adapter(tmp_path, make_settings) -> None:
    settings = make_settings(tmp_path, bridge={"projector": "mlp", "projector_layers": 3})
    model = build_model(settings)
    dest = write_checkpoint_dir(tmp_path / "epoch_0", model.trainable_state_dict(), STATE,
                                settings.to_json_dict())
    assert not (dest / "adapter").exists()
    _, metadata = load_trainable(dest / TRAINABLE_FILE)
    assert metadata["lora"] is None
    contents = metadata["contents"]
    assert (contents["projector_kind"], contents["projector_layers"]) == ("mlp", 3)
    assert contents["projector"] == "mlp-3" and contents["lm_tuning"] == "frozen"


def test_a_trainable_qformer_turns_the_feature_cache_off(tmp_path, make_settings) -> None:
    frozen = make_settings(tmp_path, vision={"encoder": "blip2", "freeze_qformer": True})
    assert features_cacheable(frozen) == (True, "")
    tuned = make_settings(tmp_path, vision={"encoder": "blip2", "freeze_qformer": False})
    assert features_cacheable(tuned) == (False, "the encoder is trainable")
