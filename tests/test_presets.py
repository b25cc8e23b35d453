"""Every preset in configs/ loads and validates (litgpt's habit), and the names the docs promise exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from mgpt_train.compare import flatten
from mgpt_train.run_settings import RunSettings

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PRESETS = sorted(p.stem for p in CONFIGS.glob("*.toml"))


def test_contract_presets_exist() -> None:
    assert {"default", "tiny", "minigpt4_flickr30k", "minigpt4_stage1", "minigpt4_stage2"} <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_loads_and_validates(name: str) -> None:
    settings = RunSettings.load(name, configs_dir=CONFIGS)
    assert settings.train.max_epoch >= 1
    assert settings.bridge.template.end_sym


def test_default_preset_is_the_embedded_offline_stack() -> None:
    s = RunSettings.load("default", configs_dir=CONFIGS)
    assert (s.vision.encoder, s.bridge.lm, s.bridge.lm_tuning) == ("efficientnet_lite0", "smollm2", "frozen")
    assert s.vision.freeze_vision and s.train.workers == 2
    assert s.data.synthetic_images and s.data.sample_mode == "per_caption"


def test_stage1_uses_no_prompt_and_newline_end_symbol() -> None:
    s = RunSettings.load("minigpt4_stage1", configs_dir=CONFIGS)
    t = s.bridge.template
    assert (t.prompt, t.instructions, t.end_sym, t.max_txt_len) == ("{}", ["<ImageHere>"], "\n", 32)
    assert (s.train.init_lr, s.train.min_lr, s.train.warmup_steps) == (1e-4, 8e-5, 5000)


def test_toml_zero_means_none_for_optional_counts() -> None:
    s = RunSettings.load("minigpt4_flickr30k", configs_dir=CONFIGS)
    assert s.data.synthetic_images is None and s.data.max_words is None


def test_env_beats_preset_and_overrides_beat_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MGPT_TRAIN__INIT_LR", "0.5")
    monkeypatch.setenv("MGPT_TRAIN__BATCH_SIZE", "3")
    s = RunSettings.load("tiny", overrides={"train": {"batch_size": 5}}, configs_dir=CONFIGS)
    assert s.train.init_lr == 0.5  # env over the preset's 1e-3
    assert s.train.batch_size == 5  # flag over env
    assert s.train.max_epoch == 2  # preset over the package default


ABLATIONS = {  # each ablation preset is the default run with exactly these settings changed
    "ablation_mlp": {"bridge.projector": "mlp"},
    "ablation_mlp3": {"bridge.projector": "mlp", "bridge.projector_layers": 3},
    "ablation_ldp": {"bridge.projector": "ldp", "vision.num_tokens": 49},
    "ablation_ldpv2": {"bridge.projector": "ldpv2", "vision.num_tokens": 49},
    "ablation_lora": {"bridge.lm_tuning": "lora"},
    "ablation_lm_random": {"bridge.lm_init": "random", "bridge.lm_tuning": "full"},
}


def test_every_ablation_preset_is_listed() -> None:
    assert {p for p in PRESETS if p.startswith("ablation_")} == set(ABLATIONS)


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_ablation_changes_only_its_settings(name: str) -> None:
    default = flatten(RunSettings.load("default", configs_dir=CONFIGS).to_json_dict())
    ablation = flatten(RunSettings.load(name, configs_dir=CONFIGS).to_json_dict())
    changed = {k: v for k, v in ablation.items() if default[k] != v}
    assert changed == ABLATIONS[name]


@pytest.mark.parametrize("name", ["ablation_ldp", "ablation_ldpv2"])
def test_ldp_presets_feed_the_lm_as_many_tokens_as_the_default(name: str) -> None:
    """The whole 7×7 EfficientNet map (49 tokens) → LDP halves the grid side → 4×4, the default's 16."""
    from mgpt_bridge import build_vlm

    s = RunSettings.load(name, configs_dir=CONFIGS)
    summary = build_vlm(s.vision, s.bridge, meta=True).summary()
    assert (summary["encoder_tokens"], summary["image_tokens"]) == (49, 16)
    assert summary["projector"] == s.bridge.projector


@pytest.mark.parametrize("stage1,stage2", [("minigpt4_stage1", "minigpt4_stage2"),
                                           ("default_stage1", "default_stage2")])
def test_stage_presets_chain(stage1: str, stage2: str) -> None:
    """Stage 2 starts from stage 1's bridge (`--init-from`): the trainable tensors must be the same."""
    from mgpt_bridge import expected_trainable_shapes

    first, second = (RunSettings.load(n, configs_dir=CONFIGS) for n in (stage1, stage2))
    assert expected_trainable_shapes(first.vision, first.bridge) == expected_trainable_shapes(
        second.vision, second.bridge)
    t1, t2 = first.bridge.template, second.bridge.template
    assert (t1.prompt, t1.instructions, t1.end_sym, t1.max_txt_len) == ("{}", ["<ImageHere>"], "\n", 32)
    assert (first.data.sample_mode, second.data.sample_mode) == ("per_caption", "grounded")
    assert len(t2.instructions) == 4 and all("<Img><ImageHere></Img>" in i for i in t2.instructions)


def test_default_stage1_is_the_default_model_with_upstreams_stage1_text() -> None:
    default = flatten(RunSettings.load("default", configs_dir=CONFIGS).to_json_dict())
    stage1 = flatten(RunSettings.load("default_stage1", configs_dir=CONFIGS).to_json_dict())
    changed = {k for k, v in stage1.items() if default[k] != v}
    assert changed == {"bridge.template.style", "bridge.template.prompt", "bridge.template.instructions",
                       "bridge.template.end_sym", "bridge.template.max_txt_len", "bridge.template.system",
                       "train.max_epoch"}


@pytest.mark.parametrize("variant,preset", [("mlp-3", "ablation_mlp3"), ("ldp", "ablation_ldp"),
                                            ("lora", "ablation_lora")])
def test_ablate_variants_on_default_are_the_ablation_presets(variant: str, preset: str) -> None:
    from mgpt_bridge import build_vlm
    from mgpt_train.ablate import variant_settings

    made = variant_settings("default", variant)
    listed = RunSettings.load(preset, configs_dir=CONFIGS)
    differ = {k for k, v in flatten(made.to_json_dict()).items() if flatten(listed.to_json_dict())[k] != v}
    # ldp takes the whole grid: num_tokens None (any encoder) where the preset names EfficientNet's 49
    assert differ == ({"vision.num_tokens"} if variant == "ldp" else set())
    summaries = [build_vlm(s.vision, s.bridge, device="meta", meta=True).summary() for s in (made, listed)]
    assert summaries[0] == summaries[1]
