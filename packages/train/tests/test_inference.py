"""mgpt_train.inference: which model runs; the multi-turn chat, its prompts checked token by token."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mgpt_train.inference.chat import ChatSession, run_terminal_chat
from mgpt_train.inference.loading import InferenceModel, resolve_source

DECODING = {"max_new_tokens": 10}  # on top of MiniGPT-4's demo decoding (sampling): the tiny LM's greedy
# choice is always end-of-text, so only sampling gives answers to compare


def ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"] if text else []


@pytest.fixture(scope="module")
def model(tiny_run_dir: Path) -> InferenceModel:
    return InferenceModel(resolve_source(tiny_run_dir), device="cpu")


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path)
    return path


def test_a_run_resolves_to_its_last_epoch(tiny_run_dir: Path, tmp_path: Path) -> None:
    source = resolve_source(tiny_run_dir)
    assert source.checkpoint == tiny_run_dir / "checkpoints" / "epoch_1"
    assert resolve_source(tiny_run_dir, tiny_run_dir / "checkpoints" / "epoch_0").name == "epoch_0"
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        resolve_source(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_source(tiny_run_dir, tmp_path / "nope")


def test_switching_checkpoints_swaps_the_trainable_weights(model: InferenceModel,
                                                           tiny_run_dir: Path) -> None:
    from mgpt_train.checkpointing import read_trainable

    epoch0 = tiny_run_dir / "checkpoints" / "epoch_0"
    before = model.model.projector.weight.detach().clone()
    model.use(epoch0)
    assert torch.equal(model.model.projector.weight, read_trainable(epoch0)["projector.weight"])
    model.use(None)
    untrained = model.model.projector.weight.detach().clone()
    model.use(model.source.checkpoint)
    assert torch.equal(model.model.projector.weight, before) and not torch.equal(before, untrained)


def _chat(model: InferenceModel, photo: Path, lines: str) -> tuple[list[dict], list, list]:
    """Run the terminal chat on ``lines``; return its JSON records, the prompt ids the LM's embedding
    saw at the start of each answer, and the inputs_embeds the LM got there."""
    session = ChatSession(model, decoding=_demo(), seed=0)
    session.load_image(photo)
    prompts: list[list[int]] = []
    embeds: list[torch.Tensor] = []

    def saw_ids(module, args, output) -> None:
        if args[0].shape[1] > 1:  # the prompt (later calls embed one new token each)
            prompts.append(args[0][0].tolist())

    def got_embeds(module, args, kwargs) -> None:
        x = kwargs.get("inputs_embeds")
        if x is not None and x.shape[1] > 1:
            embeds.append(x[0].detach().clone())

    hooks = [model.model.lm.get_input_embeddings().register_forward_hook(saw_ids),
             model.model.lm.register_forward_pre_hook(got_embeds, with_kwargs=True)]
    out, err = io.StringIO(), io.StringIO()
    try:
        run_terminal_chat(session, io.StringIO(lines), out, err, interactive=False, as_json=True)
    finally:
        for hook in hooks:
            hook.remove()
    return [json.loads(line) for line in out.getvalue().splitlines()], prompts, embeds


def _demo():
    from mgpt_bridge import GenerationSettings

    return GenerationSettings.minigpt4_demo().model_copy(update=DECODING)


def test_three_turns_feed_the_template_with_history_token_by_token(model: InferenceModel,
                                                                    photo: Path) -> None:
    records, prompts, embeds = _chat(model, photo, "what is it?\nwhich colour?\nwhere is it?\n")
    answers = [r["answer"] for r in records]
    assert [r["turn"] for r in records] == [1, 2, 3] and all(answers)
    tok, pad, n = model.model.tokenizer, model.model.tokenizer.pad_token_id, model.model.num_image_tokens
    head = ids(tok, "###Human: <Img>") + [pad] * n  # tiny preset: MiniGPT-4's template, end_sym '###'
    expected_after = [
        "</Img> what is it? ###Assistant: ",
        f"</Img> what is it? ###Assistant: {answers[0]}###Human: which colour? ###Assistant: ",
        f"</Img> what is it? ###Assistant: {answers[0]}###Human: which colour? ###Assistant: {answers[1]}"
        "###Human: where is it? ###Assistant: ",
    ]
    assert len(prompts) == 3
    for prompt, after in zip(prompts, expected_after, strict=True):
        assert prompt == head + ids(tok, after)
    # the image (projected once per session) sits in the image slots of every turn's input
    image = model.model.encode_images(model.pixels([Image.open(photo).convert("RGB")]))[0]
    start = len(ids(tok, "###Human: <Img>"))
    for e in embeds:
        assert torch.allclose(e[start:start + n], image, atol=1e-6)


def test_the_second_answer_is_conditioned_on_the_history(model: InferenceModel, photo: Path) -> None:
    with_history, _, _ = _chat(model, photo, "what is it?\nwhich colour?\n")
    fresh, _, _ = _chat(model, photo, "which colour?\n")  # same question, same seed, no history
    assert with_history[1]["answer"] != fresh[0]["answer"]
    again, _, _ = _chat(model, photo, "what is it?\nwhich colour?\n")
    assert again == with_history  # the sampler is re-seeded per answer: the difference is the history


def test_reset_image_and_bad_lines_keep_the_chat_going(model: InferenceModel, photo: Path,
                                                       tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    lines = f"hello\n/reset\nhello\n/image {bad}\n/nope\nhi\n/quit\nignored\n"
    records, prompts, _ = _chat(model, photo, lines)
    assert [r.get("event") or ("error" if "error" in r else "answer") for r in records] == [
        "answer", "reset", "answer", "error", "error", "answer"]
    assert prompts[0] == prompts[1]  # after /reset the image is spliced into the first turn again
    assert "unreadable_image" in records[3]["error"] and "unknown command" in records[4]["error"]
    assert len(prompts) == 3  # nothing after /quit


def test_no_image_is_an_error_not_a_crash(model: InferenceModel) -> None:
    out, err = io.StringIO(), io.StringIO()
    answered = run_terminal_chat(ChatSession(model), io.StringIO("hi\n"), out, err, interactive=False)
    assert answered == 0 and "no image yet" in err.getvalue()


def test_plain_output_streams_the_same_answers(model: InferenceModel, photo: Path) -> None:
    records, _, _ = _chat(model, photo, "what is it?\nwhich colour?\n")
    session = ChatSession(model, decoding=_demo(), seed=0)
    session.load_image(photo)
    out = io.StringIO()
    lines = io.StringIO("what is it?\nwhich colour?\n")
    run_terminal_chat(session, lines, out, io.StringIO(), interactive=False)
    assert out.getvalue() == "".join(r["answer"] + "\n" for r in records)
