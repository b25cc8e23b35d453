"""VisionLanguageModel on tiny parts: loss, trainability, generation (stop, batching), trainable state."""

from __future__ import annotations

import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from mgpt_bridge import TemplateSettings, VisionLanguageModel


class ForceText(LogitsProcessor):
    """Forces the generated tokens to spell a script, and counts decoding steps."""

    def __init__(self, token_ids: list[int]):
        self.token_ids = token_ids
        self.calls = 0

    def __call__(self, input_ids, scores):
        self.calls += 1
        step = min(input_ids.shape[1], len(self.token_ids) - 1)  # inputs_embeds: input_ids = new tokens
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.token_ids[step]] = 0.0
        return forced


def pixels(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_forward_gives_a_loss_and_only_the_projector_gets_gradients(make_tiny_vlm):
    model: VisionLanguageModel = make_tiny_vlm()
    model.train()
    out = model(answers=["a red square", "two blue circles on the left"], pixels=pixels(2))
    assert out.loss.ndim == 0 and torch.isfinite(out.loss) and out.loss.item() > 0
    out.loss.backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None}
    assert grads == {"projector.weight", "projector.bias"}
    assert model.lm.training is False and model.encoder.training is False  # frozen parts stay in eval
    assert model.projector.training is True


def test_features_and_pixels_give_the_same_loss(make_tiny_vlm):
    model = make_tiny_vlm()
    px = pixels(2)
    instr = model.template.instructions[:2]
    from_pixels = model(answers=["a", "b c"], pixels=px, instructions=instr).loss
    from_features = model(answers=["a", "b c"], features=model.encoder(px), instructions=instr).loss
    assert torch.equal(from_pixels, from_features)


def test_input_errors(make_tiny_vlm):
    model = make_tiny_vlm()
    with pytest.raises(ValueError, match="exactly one of pixels= or features="):
        model(answers=["a"])
    with pytest.raises(ValueError, match=r"\[B, 4, 24\], got \(1, 5, 24\)"):
        model(answers=["a"], features=torch.zeros(1, 5, 24))
    with pytest.raises(ValueError, match="one string per image"):
        model(answers=["a"], pixels=pixels(2))
    with pytest.raises(ValueError, match="3 instructions for 2 images"):
        model(answers=["a", "b"], pixels=pixels(2), instructions=model.template.instructions[:3])


def test_instruction_sampling_is_seeded(make_tiny_vlm):
    a, b = make_tiny_vlm(seed=7), make_tiny_vlm(seed=7)
    draws_a = [a._instructions(None, 4, sample=True) for _ in range(5)]
    draws_b = [b._instructions(None, 4, sample=True) for _ in range(5)]
    assert draws_a == draws_b
    assert len({i for draw in draws_a for i in draw}) > 1  # really samples from the pool
    assert a._instructions(None, 3, sample=False) == [a.template.instructions[0]] * 3


def test_generate_stops_at_end_sym_and_trims_it(make_tiny_vlm, smol_tokenizer):
    model = make_tiny_vlm()
    script = smol_tokenizer("a red cube###Human: more", add_special_tokens=False)["input_ids"]
    stop_at = script.index(smol_tokenizer.convert_tokens_to_ids("###")) + 1
    force = ForceText(script)
    out = model.generate(pixels=pixels(2), logits_processor=LogitsProcessorList([force]), max_new_tokens=20)
    assert out == ["a red cube", "a red cube"]
    assert force.calls == stop_at  # stopped right after '###', not at max_new_tokens


def test_generate_stops_on_the_end_sym_string_inside_a_token(make_tiny_vlm, smol_tokenizer):
    model = make_tiny_vlm(template=TemplateSettings(end_sym="##"))  # '##' only appears inside the '###' token
    script = smol_tokenizer("blue sphere###left side", add_special_tokens=False)["input_ids"]
    force = ForceText(script)
    out = model.generate(pixels=pixels(1), logits_processor=LogitsProcessorList([force]), max_new_tokens=20)
    assert out == ["blue sphere"] and force.calls == len(smol_tokenizer("blue sphere###")["input_ids"])


def test_batched_greedy_equals_one_by_one(make_tiny_vlm):
    model = make_tiny_vlm(init_std=0.5)  # a peaked random LM whose output depends on the image
    instructions = [
        "<Img><ImageHere></Img> Hi.",
        "<Img><ImageHere></Img> Describe this image in great detail please.",
        "<Img><ImageHere></Img> What?",
    ]
    model.template.settings.instructions = instructions
    px = pixels(3, seed=3)
    batched = model.generate(pixels=px, instructions=instructions, max_new_tokens=8)
    single = [
        model.generate(pixels=px[i : i + 1], instructions=instructions[i : i + 1], max_new_tokens=8)[0]
        for i in range(3)
    ]
    assert batched == single
    assert len(set(batched)) > 1 and all(batched)  # non-trivial: rows differ and are not empty


def test_beam_search_and_sampling_run(make_tiny_vlm):
    model = make_tiny_vlm(init_std=0.5)
    px = pixels(2)
    beams = model.generate(pixels=px, num_beams=3, max_new_tokens=5)
    assert len(beams) == 2 and all(isinstance(t, str) for t in beams)
    demo = {
        "do_sample": True,
        "temperature": 0.7,
        "top_p": 0.9,
        "repetition_penalty": 1.05,
        "max_new_tokens": 5,
    }
    torch.manual_seed(1)
    with pytest.warns(UserWarning, match="only to newly generated tokens"):  # as in MiniGPT-4 (inputs_embeds)
        first = model.generate(pixels=px, **demo)
    torch.manual_seed(1)
    with pytest.warns(UserWarning, match="only to newly generated tokens"):
        again = model.generate(pixels=px, **demo)
    assert first == again
    with pytest.raises(ValueError, match="top_p"):
        model.generate(pixels=px, top_p=2.0)


def test_generate_restores_training_mode(make_tiny_vlm):
    model = make_tiny_vlm()
    model.train()
    model.generate(pixels=pixels(1), max_new_tokens=2)
    assert model.training and model.projector.training


def test_trainable_state_dict_strict_load(make_tiny_vlm):
    model = make_tiny_vlm()
    sd = model.trainable_state_dict()
    assert set(sd) == {"projector.weight", "projector.bias"}
    assert sd["projector.weight"].shape == (64, 24)
    other = make_tiny_vlm(seed=1)
    assert not torch.equal(other.projector.weight, model.projector.weight)
    other.load_trainable_state_dict(sd)
    assert torch.equal(other.projector.weight, model.projector.weight)
    with pytest.raises(ValueError, match=r"missing keys \['projector.bias'\]"):
        other.load_trainable_state_dict({"projector.weight": sd["projector.weight"]})
    with pytest.raises(ValueError, match=r"unexpected keys \['lm.model.norm.weight'\]"):
        other.load_trainable_state_dict({**sd, "lm.model.norm.weight": torch.ones(64)})
    with pytest.raises(ValueError, match=r"projector.weight: checkpoint \(64, 32\) vs model \(64, 24\)"):
        other.load_trainable_state_dict({**sd, "projector.weight": torch.zeros(64, 32)})


def test_lora_makes_only_lora_and_projector_trainable(make_tiny_vlm):
    model = make_tiny_vlm(tuning="lora")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    lora = [n for n in trainable if ".lora_" in n]
    assert set(trainable) - set(lora) == {"projector.weight", "projector.bias"}
    assert len(lora) == 2 * 2 * 2  # 2 layers × (q_proj, v_proj) × (A, B)
    assert all("q_proj" in n or "v_proj" in n for n in lora)
    model.train()
    model(answers=["a b c"], pixels=pixels(1)).loss.backward()
    assert {n for n, p in model.named_parameters() if p.grad is not None} == set(trainable)
    assert set(model.trainable_state_dict()) == set(trainable)
    assert len(model.generate(pixels=pixels(2), max_new_tokens=3)) == 2  # generation through the peft wrapper
    summary = model.summary()
    assert summary["lm_frozen"] is False and summary["trainable_params"] == model.num_parameters(True)


def test_full_tuning_trains_the_lm(make_tiny_vlm):
    model = make_tiny_vlm(tuning="full")
    lm_params = sum(p.numel() for p in model.lm.parameters())
    assert model.num_parameters(trainable_only=True) == lm_params + 64 * 24 + 64
    model.train()
    assert model.lm.training


def test_summary(make_tiny_vlm):
    s = make_tiny_vlm().summary()
    assert s["encoder"] == "patch" and s["lm"] == "tiny" and s["image_tokens"] == 4 and s["token_dim"] == 24
    assert s["lm_hidden"] == 64 and s["trainable_params"] == 64 * 24 + 64 == s["projector_params"]
    assert s["total_params"] > s["trainable_params"] and s["dtype"] == "float32" and s["encoder_frozen"]


@pytest.mark.parametrize("tuning", ["frozen", "lora", "full"])
def test_answer_loss_equals_hf_full_logits_loss_and_its_gradients(make_tiny_vlm, tuning):
    """The head over labelled positions only gives HF's ``labels=`` loss, and the same gradients."""
    from mgpt_bridge.template import build_batch

    model = make_tiny_vlm(tuning=tuning, init_std=0.2)
    model.train()
    answers = ["a red square", "two blue circles on the left and more"]
    rows = model._instructions(None, 2, sample=False)
    torch.manual_seed(1)  # the same LoRA dropout masks in both passes
    ours = model(answers=answers, pixels=pixels(2), instructions=rows)
    ours.loss.backward()
    ours_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)

    batch = build_batch(model.tokenizer, model.template, rows, answers, model.num_image_tokens)
    assert bool((batch["attention_mask"] == 0).any())  # the rows differ in length: padding is tested
    torch.manual_seed(1)
    embeds = model.embed_prompt(batch, model.encode_images(pixels(2)))
    hf = model.lm(inputs_embeds=embeds, attention_mask=batch["attention_mask"], labels=batch["labels"])
    hf.loss.backward()
    hf_grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    torch.testing.assert_close(ours.loss, hf.loss, rtol=1e-6, atol=1e-6)
    assert set(ours_grads) == set(hf_grads) and ours_grads
    for name, grad in hf_grads.items():
        torch.testing.assert_close(ours_grads[name], grad, rtol=1e-5, atol=1e-6, msg=name)
