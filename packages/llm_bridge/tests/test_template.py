"""Prompt template, label mask and padding, token by token (SmolLM2 and a BOS-adding tokenizer)."""

from __future__ import annotations

import random

import pytest
import torch

from mgpt_bridge import (
    IGNORE_INDEX,
    PromptTemplate,
    TemplateSettings,
    bos_prefix,
    build_batch,
    build_generation_prompt,
    normalize_caption,
)

N = 3  # image tokens


def ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"] if text else []


def test_minigpt4_style_token_by_token_with_padding(smol_tokenizer):
    tok = smol_tokenizer
    template = PromptTemplate(TemplateSettings(), tok)
    instr = template.instructions[0]
    answers = ["a dog runs on the grass", "cat"]
    batch = build_batch(tok, template, [instr, instr], answers, N)

    before = ids(tok, "###Human: <Img>")
    after = ids(tok, "</Img> Describe this image in detail. ###Assistant: ")
    pad = tok.pad_token_id
    assert bos_prefix(tok) == []  # SmolLM2's tokenizer never prepends its bos_token
    for row, answer in enumerate(answers):
        target = ids(tok, answer + "###")
        assert target[-1] == tok.convert_tokens_to_ids("###")
        expected = before + [pad] * N + after + target
        length = len(expected)
        assert batch["input_ids"][row, :length].tolist() == expected
        assert batch["labels"][row, :length].tolist() == [IGNORE_INDEX] * (length - len(target)) + target
        assert batch["attention_mask"][row, :length].tolist() == [1] * length
        # right padding: pad id, attention 0, label -100
        assert (batch["input_ids"][row, length:] == pad).all()
        assert (batch["attention_mask"][row, length:] == 0).all()
        assert (batch["labels"][row, length:] == IGNORE_INDEX).all()
        assert batch["image_positions"][row].tolist() == list(range(len(before), len(before) + N))
    assert batch["attention_mask"][1].sum() < batch["attention_mask"][0].sum()  # row 1 really is padded
    assert batch["image_mask"].sum(dim=1).tolist() == [N, N]
    assert batch["input_ids"].dtype == batch["labels"].dtype == torch.long


def test_bos_is_prepended_once_when_the_tokenizer_uses_one(bos_tokenizer):
    tok = bos_tokenizer
    template = PromptTemplate(TemplateSettings(), tok)
    instr = template.instructions[2]
    batch = build_batch(tok, template, [instr], ["two people"], N)
    row = batch["input_ids"][0].tolist()
    assert row[0] == tok.bos_token_id and row.count(tok.bos_token_id) == 1
    before = ids(tok, "###Human: <Img>")
    assert row[1 : 1 + len(before)] == before
    assert batch["image_positions"][0, 0].item() == 1 + len(before)
    assert batch["labels"][0, 0].item() == IGNORE_INDEX
    gen = build_generation_prompt(tok, template, [instr], N)
    assert gen["input_ids"][0].tolist().count(tok.bos_token_id) == 1


def test_multi_segment_prompts_and_mixed_instructions(smol_tokenizer):
    tok = smol_tokenizer
    settings = TemplateSettings(
        prompt="USER: {} ASSISTANT:",
        instructions=["Look <ImageHere> then describe it.", "<ImageHere>", "Here is a photo: <ImageHere>"],
        end_sym="\n",
    )
    template = PromptTemplate(settings, tok)
    answers = ["red square", "a blue circle on the left", "green"]
    batch = build_batch(tok, template, settings.instructions, answers, N)
    for row, (instr, answer) in enumerate(zip(settings.instructions, answers, strict=True)):
        text_before, text_after = ("USER: " + instr + " ASSISTANT:").split("<ImageHere>")
        before, after, target = ids(tok, text_before), ids(tok, text_after), ids(tok, answer + "\n")
        expected = before + [tok.pad_token_id] * N + after + target
        assert batch["input_ids"][row, : len(expected)].tolist() == expected
        positions = batch["image_positions"][row].tolist()
        assert positions == list(range(len(before), len(before) + N))
        assert torch.nonzero(batch["image_mask"][row]).flatten().tolist() == positions
        labelled = batch["labels"][row][batch["labels"][row] != IGNORE_INDEX].tolist()
        assert labelled == target
    assert len(set(batch["image_positions"][:, 0].tolist())) == 3  # the slots really differ by row


def test_answer_truncated_to_max_txt_len(smol_tokenizer):
    tok = smol_tokenizer
    template = PromptTemplate(TemplateSettings(max_txt_len=5), tok)
    answer = "one two three four five six seven eight"
    batch = build_batch(tok, template, template.instructions[:1], [answer], N)
    labelled = batch["labels"][0][batch["labels"][0] != IGNORE_INDEX].tolist()
    assert labelled == ids(tok, answer + "###")[:5]
    assert (
        batch["attention_mask"][0].sum().item()
        == batch["image_positions"][0, -1].item()
        + 1
        + len(ids(tok, "</Img> Describe this image in detail. ###Assistant: "))
        + 5
    )


def test_empty_answer_still_learns_end_sym(smol_tokenizer):
    tok = smol_tokenizer
    template = PromptTemplate(TemplateSettings(), tok)
    batch = build_batch(tok, template, template.instructions[:1], [""], N)
    labelled = batch["labels"][0][batch["labels"][0] != IGNORE_INDEX].tolist()
    assert labelled == ids(tok, "###") and len(labelled) == 1


def test_chat_style_uses_the_tokenizer_chat_template(smol_tokenizer):
    tok = smol_tokenizer
    template = PromptTemplate(TemplateSettings(style="chat", end_sym="<|im_end|>"), tok)
    instr = template.instructions[1]
    text = template.render(instr)
    assert text == tok.apply_chat_template(
        [{"role": "user", "content": instr}], tokenize=False, add_generation_prompt=True
    )
    assert (
        text.endswith("<|im_start|>assistant\n") and "<|im_start|>user\n<Img><ImageHere></Img> Take" in text
    )
    before, after = template.segments(instr)
    batch = build_batch(tok, template, [instr, instr], ["a cat", "two red cubes and a sphere"], N)
    for row, answer in enumerate(["a cat", "two red cubes and a sphere"]):
        target = ids(tok, answer) + [tok.convert_tokens_to_ids("<|im_end|>")]
        expected = ids(tok, before) + [tok.pad_token_id] * N + ids(tok, after) + target
        assert batch["input_ids"][row, : len(expected)].tolist() == expected
        assert batch["labels"][row][batch["labels"][row] != IGNORE_INDEX].tolist() == target
    assert ids(tok, before)[0] == tok.convert_tokens_to_ids("<|im_start|>")  # special markers kept as ids


def test_chat_style_system_message_replaces_the_default(smol_tokenizer):
    tok = smol_tokenizer
    default = PromptTemplate(TemplateSettings(style="chat", end_sym="<|im_end|>"), tok)
    short = PromptTemplate(
        TemplateSettings(style="chat", end_sym="<|im_end|>", system="Describe images."), tok
    )
    instr = short.instructions[0]
    text = short.render(instr)
    assert text.startswith("<|im_start|>system\nDescribe images.<|im_end|>\n<|im_start|>user\n")
    assert "SmolLM" in default.render(instr) and "SmolLM" not in text  # the template's default is gone
    assert len(tok(text)["input_ids"]) < len(tok(default.render(instr))["input_ids"])


def test_chat_style_with_bos_tokenizer_keeps_one_bos(bos_tokenizer):
    tok = bos_tokenizer
    tok_template = tok.chat_template
    tok.chat_template = "{{ bos_token }}" + tok_template  # LLaMA-2 style templates write the BOS text
    try:
        template = PromptTemplate(TemplateSettings(style="chat"), tok)
        row = build_batch(tok, template, template.instructions[:1], ["x"], N)["input_ids"][0].tolist()
    finally:
        tok.chat_template = tok_template
    assert row[0] == tok.bos_token_id and row.count(tok.bos_token_id) == 1


def test_chat_style_needs_a_chat_template(smol_tokenizer):
    with pytest.raises(ValueError, match="chat_template"):
        PromptTemplate(TemplateSettings(style="chat"), None)


def test_no_row_ever_has_every_label_masked(smol_tokenizer, bos_tokenizer):
    """The 'loss stuck at 0' bug: a template/tokenisation mismatch that masks every label."""
    rng = random.Random(0)
    words = "a red blue square circle left right on the of two ### . , ! dog".split()
    for tok in (smol_tokenizer, bos_tokenizer):
        for settings in (
            TemplateSettings(),
            TemplateSettings(max_txt_len=1),
            TemplateSettings(style="chat"),
            TemplateSettings(prompt="{}", instructions=["<ImageHere>"], end_sym="\n", max_txt_len=32),
            TemplateSettings(normalize_answers=True),
        ):
            template = PromptTemplate(settings, tok)
            for _ in range(5):
                size = rng.randint(1, 5)
                answers = [" ".join(rng.choices(words, k=rng.randint(0, 40))) for _ in range(size)]
                instrs = [rng.choice(template.instructions) for _ in range(size)]
                batch = build_batch(tok, template, instrs, answers, rng.randint(1, 8))
                per_row = (batch["labels"] != IGNORE_INDEX).sum(dim=1)
                assert (per_row >= 1).all() and (per_row <= settings.max_txt_len).all()
                # every label sits on a real token and is the token itself
                lab = batch["labels"] != IGNORE_INDEX
                assert (batch["attention_mask"][lab] == 1).all()
                assert torch.equal(batch["labels"][lab], batch["input_ids"][lab])
                assert not (lab & batch["image_mask"]).any()


def test_bad_inputs_raise(smol_tokenizer):
    tok = smol_tokenizer
    template = PromptTemplate(TemplateSettings(), tok)
    with pytest.raises(ValueError, match="2 instructions for 1 answers"):
        build_batch(tok, template, template.instructions[:2], ["a"], N)
    with pytest.raises(TypeError, match="list of strings"):
        build_batch(tok, template, template.instructions[0], ["a"], N)
    with pytest.raises(ValueError, match="exactly one '<ImageHere>'"):
        build_batch(tok, template, ["no image here"], ["a"], N)
    with pytest.raises(ValueError, match="num_image_tokens"):
        build_batch(tok, template, template.instructions[:1], ["a"], 0)


def test_generation_prompt_is_left_padded(smol_tokenizer):
    tok = smol_tokenizer
    settings = TemplateSettings(
        instructions=["<ImageHere>", "A much longer instruction <ImageHere> with text after."]
    )
    template = PromptTemplate(settings, tok)
    gen = build_generation_prompt(tok, template, settings.instructions, N)
    train = build_batch(tok, template, settings.instructions, ["x", "x"], N)
    for row in range(2):
        prompt_len = int(
            (train["labels"][row] == IGNORE_INDEX).logical_and(train["attention_mask"][row] == 1).sum()
        )
        prompt = train["input_ids"][row, :prompt_len].tolist()
        assert gen["input_ids"][row, -prompt_len:].tolist() == prompt  # ends where the answer starts
        offset = gen["input_ids"].shape[1] - prompt_len
        assert gen["attention_mask"][row].tolist() == [0] * offset + [1] * prompt_len
        assert gen["image_positions"][row].tolist() == (train["image_positions"][row] + offset).tolist()
        assert (
            torch.nonzero(gen["image_mask"][row]).flatten().tolist() == gen["image_positions"][row].tolist()
        )
    assert gen["attention_mask"][0, 0] == 0  # the short prompt is padded on the left


def test_normalize_caption():
    assert normalize_caption("A Dog, runs!  On the (green) grass.") == "a dog, runs on the green grass"
    assert normalize_caption(" ".join(["w"] * 60)) == " ".join(["w"] * 50)
    assert normalize_caption("Wait: ~tilde* #hash;") == "wait tilde hash"


def test_normalize_answers_option(smol_tokenizer):
    tok = smol_tokenizer
    template = PromptTemplate(TemplateSettings(normalize_answers=True), tok)
    batch = build_batch(tok, template, template.instructions[:1], ["A Red Square!"], N)
    labelled = batch["labels"][0][batch["labels"][0] != IGNORE_INDEX].tolist()
    assert labelled == ids(tok, "a red square###")
