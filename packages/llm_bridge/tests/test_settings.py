"""BridgeSettings / TemplateSettings / GenerationSettings: defaults, env overrides, validation messages."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mgpt_bridge import MINIGPT4_INSTRUCTIONS, BridgeSettings, GenerationSettings, TemplateSettings


def test_defaults_are_the_minigpt4_stage2_template():
    s = BridgeSettings()
    assert (s.lm, s.lm_dtype, s.projector, s.lm_tuning, s.load_in_8bit, s.seed) == (
        "smollm2",
        "float32",
        "linear",
        "frozen",
        False,
        42,
    )
    t = s.template
    assert t.style == "minigpt4" and t.prompt == "###Human: {} ###Assistant: "
    assert t.end_sym == "###" and t.max_txt_len == 160 and t.image_placeholder == "<ImageHere>"
    assert t.instructions == list(MINIGPT4_INSTRUCTIONS) and len(t.instructions) == 4
    assert all(i.startswith("<Img><ImageHere></Img> ") for i in t.instructions)
    assert t.instructions[0] == "<Img><ImageHere></Img> Describe this image in detail."
    g = s.generation
    assert (g.max_new_tokens, g.num_beams, g.do_sample) == (30, 1, False)


def test_env_overrides_nested_fields(monkeypatch):
    monkeypatch.setenv("MGPT_BRIDGE__LM", "tiny")
    monkeypatch.setenv("MGPT_BRIDGE__TEMPLATE__MAX_TXT_LEN", "32")
    monkeypatch.setenv("MGPT_BRIDGE__TEMPLATE__END_SYM", "\n")
    monkeypatch.setenv("MGPT_BRIDGE__GENERATION__NUM_BEAMS", "3")
    s = BridgeSettings()
    assert s.lm == "tiny" and s.template.max_txt_len == 32 and s.template.end_sym == "\n"
    assert s.generation.num_beams == 3


def test_unknown_fields_are_rejected():
    with pytest.raises(ValidationError, match="extra"):
        BridgeSettings(lm_name="x")
    with pytest.raises(ValidationError, match="extra"):
        TemplateSettings(promt="{}")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": "no slot"}, "exactly one '{}'"),
        ({"instructions": ["Describe the image."]}, "exactly one '<ImageHere>'"),
        ({"instructions": ["<ImageHere> and <ImageHere>"]}, "exactly one '<ImageHere>'"),
        ({"instructions": []}, "at least one instruction"),
        ({"max_txt_len": 0}, "greater than or equal to 1"),
        ({"end_sym": ""}, "at least 1 character"),
    ],
)
def test_template_validation(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        TemplateSettings(**kwargs)


def test_placeholder_may_live_in_the_prompt_and_chat_style_ignores_prompt():
    stage1 = TemplateSettings(prompt="<Img><ImageHere></Img> {}", instructions=["Caption:"])
    assert stage1.instructions == ["Caption:"]
    chat = TemplateSettings(style="chat", prompt="unused")
    assert chat.style == "chat"


def test_bridge_validation_messages():
    with pytest.raises(ValidationError, match="tiny random one"):
        BridgeSettings(lm="tiny", load_in_8bit=True)
    with pytest.raises(ValidationError, match="cannot train int8"):
        BridgeSettings(lm="hf", load_in_8bit=True, lm_tuning="full")
    with pytest.raises(ValidationError, match="lm_tuning"):
        BridgeSettings(lm_tuning="half")


def test_generation_settings_demo_and_kwargs():
    demo = GenerationSettings.minigpt4_demo()
    assert demo.generate_kwargs() == {
        "max_new_tokens": 300,
        "num_beams": 1,
        "do_sample": True,
        "repetition_penalty": 1.05,
        "temperature": 1.0,
        "top_p": 0.9,
    }
    greedy = GenerationSettings().generate_kwargs()
    assert greedy == {"max_new_tokens": 30, "num_beams": 1, "do_sample": False, "repetition_penalty": 1.0}
    with pytest.raises(ValidationError):
        GenerationSettings(top_p=1.5)
    with pytest.raises(ValidationError):
        GenerationSettings(temperature=0)
