"""Trainable checkpoints (safetensors) and MiniGPT-4 .pth import/export at the real 7B shapes."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from mgpt_bridge import (
    BridgeSettings,
    CheckpointError,
    PromptTemplate,
    TemplateSettings,
    VisionLanguageModel,
    build_projector,
    check_fits,
    export_minigpt4,
    import_minigpt4,
    load_lm,
    load_trainable,
    save_trainable,
)


def test_save_load_round_trip_is_bit_exact(tmp_path):
    g = torch.Generator().manual_seed(0)
    sd = {
        "projector.weight": torch.randn(64, 24, generator=g),
        "projector.bias": torch.randn(64, generator=g),
        "lm.x.lora_A.default.weight": torch.randn(4, 64, generator=g).to(torch.bfloat16),
    }
    meta = {"epoch": 3, "step": 120, "settings": {"bridge": {"lm": "tiny"}}, "note": "ü"}
    path = save_trainable(tmp_path / "ckpt" / "trainable.safetensors", sd, meta)
    assert path.is_file() and [p.name for p in path.parent.iterdir()] == [
        "trainable.safetensors"
    ]  # no temp left
    loaded, loaded_meta = load_trainable(path)
    assert loaded_meta.pop("contents") == {  # what the tensors are, told by save_trainable itself
        "projector": "linear",
        "projector_kind": "linear",
        "projector_layers": None,
        "lm_tuning": "lora",
        "lora_r": 4,
        "lora_target_modules": ["x"],
        "encoder_trained": [],
    }
    assert loaded_meta == meta
    assert set(loaded) == set(sd)
    for name, tensor in sd.items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor)
    with safe_open(str(path), framework="pt") as f:  # metadata is JSON in the safetensors header
        assert json.loads(f.metadata()["mgpt"])["step"] == 120


def test_save_refuses_an_empty_state_dict_and_load_a_missing_file(tmp_path):
    with pytest.raises(ValueError, match="empty state dict"):
        save_trainable(tmp_path / "x.safetensors", {}, {})
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_trainable(tmp_path / "missing.safetensors")


def _upstream(tmp_path, width: int, name: str = "checkpoint_4.pth", extra: dict | None = None):
    g = torch.Generator().manual_seed(1)
    model = {
        "llama_proj.weight": torch.randn(width, 768, generator=g),
        "llama_proj.bias": torch.randn(width, generator=g),
    }
    model.update(extra or {})
    path = tmp_path / name
    torch.save(
        {"model": model, "optimizer": {"state": {}}, "config": {"run": {"init_lr": 3e-5}}, "epoch": 4}, path
    )
    return path, model


SHAPES_7B = {"projector.weight": (4096, 768), "projector.bias": (4096,)}


def _fits(imported, expected=SHAPES_7B) -> None:
    found = {k: tuple(v.shape) for k, v in imported.state_dict.items()}
    check_fits(found, expected, source="file", target="7B", display=imported.upstream_names.get)


def test_import_export_minigpt4_round_trip_at_7b_shapes(tmp_path):
    path, upstream = _upstream(tmp_path, 4096)
    imported = import_minigpt4(path)
    _fits(imported)
    sd = imported.state_dict
    assert set(sd) == {"projector.weight", "projector.bias"}
    assert torch.equal(sd["projector.weight"], upstream["llama_proj.weight"])
    assert sum(t.numel() for t in sd.values()) == 3_149_824
    assert imported.epoch == 4 and imported.config == {"run": {"init_lr": 3e-5}}
    assert [i.what for i in imported.ignored] == ["optimizer", "config", "epoch"]
    out = tmp_path / "export.pth"
    export_minigpt4(sd, out, {"epoch": 4, "lm": "vicuna-7b"}, epoch=4)
    back = torch.load(out, weights_only=True)
    assert (
        set(back["model"]) == {"llama_proj.weight", "llama_proj.bias"} and back["config"]["lm"] == "vicuna-7b"
    )
    for key, tensor in upstream.items():
        assert torch.equal(back["model"][key], tensor)
    assert import_minigpt4(out).state_dict.keys() == sd.keys()


def test_import_13b_into_a_7b_preset_names_both_shapes(tmp_path):
    path, _ = _upstream(tmp_path, 5120)
    with pytest.raises(
        CheckpointError, match=r"llama_proj.weight is \(5120, 768\), the model's is \(4096, 768\)"
    ):
        _fits(import_minigpt4(path))


def test_import_never_drops_keys_silently(tmp_path):
    path, _ = _upstream(tmp_path, 64, extra={"llama_model.lora_A.weight": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match=r"no place for \(e.g. llama_model.lora_A.weight\)"):
        import_minigpt4(path)
    torch.save({"state_dict": {}}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not a MiniGPT-4 checkpoint"):
        import_minigpt4(tmp_path / "other.pth")


def test_export_needs_a_linear_projector(tmp_path):
    with pytest.raises(ValueError, match="no place in upstream MiniGPT-4"):
        export_minigpt4(
            {
                "projector.0.weight": torch.zeros(2, 2),
                "projector.weight": torch.zeros(2, 2),
                "projector.bias": torch.zeros(2),
            },
            tmp_path / "x.pth",
            {},
            epoch=0,
        )


class _Meta768(torch.nn.Module):
    def forward(self, pixels):  # pragma: no cover - never run on meta
        raise AssertionError


def test_7b_recipe_on_meta_counts_params_and_rejects_13b(tmp_path):
    """MiniGPT-4 7B shapes, no weights: Linear(768→4096) = 3,149,824 params; a 13B projector is refused."""
    lm, tokenizer = load_lm(BridgeSettings(lm="hf"), meta=True)
    assert tokenizer is None and lm.config.hidden_size == 4096 and lm.config.num_hidden_layers == 32
    assert lm.config.vocab_size == 32000 and lm.model.embed_tokens.weight.is_meta
    with torch.device("meta"):
        projector = build_projector("linear", 768, 4096)
    model = VisionLanguageModel(
        _Meta768(),
        projector,
        lm.requires_grad_(False),
        None,
        PromptTemplate(TemplateSettings()),
        num_encoder_tokens=32,
        token_dim=768,
        encoder_name="blip2 (meta)",
        lm_name="llama-7b-shapes",
    )
    summary = model.summary()
    assert summary["trainable_params"] == 3_149_824 and summary["lm_hidden"] == 4096
    assert summary["total_params"] == 3_149_824 + 6_738_415_616  # LLaMA-7B
    path, _ = _upstream(tmp_path, 5120)
    with pytest.raises(ValueError, match=r"checkpoint \(5120, 768\) vs model \(4096, 768\)"):
        model.load_trainable_state_dict(import_minigpt4(path).state_dict)
    with pytest.raises(RuntimeError, match="no tokenizer"):
        model(answers=["a"], features=torch.zeros(1, 32, 768))
