"""Multi-turn prompts (MiniGPT-4's ###Human/###Assistant and the LM's chat template) and streamed replies."""

from __future__ import annotations

import pytest
import torch

from mgpt_bridge import (
    Conversation,
    GenerationSettings,
    PromptTemplate,
    TemplateSettings,
    bos_prefix,
    build_generation_prompt,
    stream_reply,
)
from mgpt_bridge.streaming import _visible

N = 4  # image tokens of the conftest's tiny VLM


def ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"] if text else []


def test_minigpt4_turns_keep_history_and_splice_the_image_once(smol_tokenizer):
    conv = Conversation(PromptTemplate(TemplateSettings(), smol_tokenizer))
    assert conv.render("what is it?") == "###Human: <Img><ImageHere></Img> what is it? ###Assistant: "
    conv.add("what is it?", "a dog")
    conv.add("which colour?", "brown")
    expected = ("###Human: <Img><ImageHere></Img> what is it? ###Assistant: a dog"
                "###Human: which colour? ###Assistant: brown"
                "###Human: and the grass? ###Assistant: ")
    assert conv.render("and the grass?") == expected
    assert conv.segments("and the grass?") == ("###Human: <Img>", expected.split("<ImageHere>")[1])
    with pytest.raises(ValueError, match="already in the conversation"):
        conv.render("<Img><ImageHere></Img> again")
    conv.reset()
    assert conv.render("") == "###Human: <Img><ImageHere></Img> Describe this image in detail. ###Assistant: "


def test_one_turn_is_exactly_the_training_prompt(smol_tokenizer):
    for settings in (TemplateSettings(), TemplateSettings(style="chat", system="You describe pictures.",
                                                           end_sym="<|im_end|>")):
        template = PromptTemplate(settings, smol_tokenizer)
        conv = Conversation(template)
        instruction = template.instructions[0]
        assert conv.render(instruction) == template.render(instruction)
        assert torch.equal(conv.prompt(smol_tokenizer, instruction, N)["input_ids"],
                           build_generation_prompt(smol_tokenizer, template, [instruction], N)["input_ids"])


def test_chat_template_turns_token_by_token(smol_tokenizer):
    tok = smol_tokenizer
    settings = TemplateSettings(style="chat", system="You describe pictures.", end_sym="<|im_end|>")
    conv = Conversation(PromptTemplate(settings, tok))
    conv.add("what is it?", "a dog")
    batch = conv.prompt(tok, "which colour?", N)
    before = ("<|im_start|>system\nYou describe pictures.<|im_end|>\n<|im_start|>user\n<Img>")
    after = ("</Img> what is it?<|im_end|>\n<|im_start|>assistant\na dog<|im_end|>\n"
             "<|im_start|>user\nwhich colour?<|im_end|>\n<|im_start|>assistant\n")
    pad = tok.pad_token_id
    assert bos_prefix(tok) == []
    assert batch["input_ids"][0].tolist() == ids(tok, before) + [pad] * N + ids(tok, after)
    assert batch["image_mask"][0].nonzero().flatten().tolist() == list(range(len(ids(tok, before)),
                                                                            len(ids(tok, before)) + N))


def test_stage1_template_separates_turns_with_its_end_sym(smol_tokenizer):
    settings = TemplateSettings(prompt="{}", instructions=["<ImageHere>"], end_sym="\n")
    conv = Conversation(PromptTemplate(settings, smol_tokenizer))
    assert conv.image_tag == "<ImageHere>"
    conv.add("hi", "a cat")
    assert conv.render("more") == "<ImageHere> hi" + "a cat\n" + "more"


def test_visible_text_holds_back_a_possible_end_symbol():
    assert _visible("a dog #", "###") == "a dog "
    assert _visible("a dog ##", "###") == "a dog "
    assert _visible("a dog ###Human", "###") == "a dog "
    assert _visible("a dog", "###") == "a dog"


def test_streamed_reply_equals_generate(make_tiny_vlm):
    model = make_tiny_vlm(init_std=1.0, generation=GenerationSettings(max_new_tokens=12))
    pixels = torch.randn(1, 3, 16, 16)
    instruction = model.template.instructions[0]
    torch.manual_seed(3)
    expected = model.generate(pixels=pixels, instructions=[instruction], do_sample=True)[0]
    conv = Conversation(model.template)
    batch = conv.prompt(model.tokenizer, instruction, model.num_image_tokens)
    torch.manual_seed(3)
    reply = stream_reply(model, batch, model.encode_images(pixels), do_sample=True)
    chunks = list(reply)
    assert reply.text == expected and expected
    assert len(chunks) > 1 and "".join(chunks) == expected  # token by token, nothing lost


def test_beam_search_arrives_as_one_chunk(make_tiny_vlm):
    model = make_tiny_vlm(init_std=1.0)
    pixels = torch.randn(1, 3, 16, 16)
    batch = Conversation(model.template).prompt(model.tokenizer, "hi", model.num_image_tokens)
    reply = stream_reply(model, batch, model.encode_images(pixels), num_beams=3, max_new_tokens=6)
    chunks = list(reply)
    assert len(chunks) <= 1 and "".join(chunks) == reply.text
