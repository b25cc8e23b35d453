"""MiniGPT-4's prompt template and the token batches built from it (label mask, image slots, padding)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

from .settings import TemplateSettings

IGNORE_INDEX = -100


def normalize_caption(text: str, max_words: int = 50) -> str:
    """LAVIS/MiniGPT-4 caption cleaning: lowercase, punctuation ``.!"()*#:;~`` to spaces, <= ``max_words``."""
    text = re.sub(r"([.!\"()*#:;~])", " ", text.lower())
    text = re.sub(r"\s{2,}", " ", text).rstrip("\n").strip(" ")
    return " ".join(text.split(" ")[:max_words])


class PromptTemplate:
    """Renders an instruction into prompt text and splits it around the image placeholder."""

    def __init__(self, settings: TemplateSettings, tokenizer: PreTrainedTokenizerBase | None = None):
        self.settings = settings
        self.tokenizer = tokenizer
        if settings.style == "chat" and (tokenizer is None or not getattr(tokenizer, "chat_template", None)):
            raise ValueError(
                "template style 'chat' needs a tokenizer with a chat_template; use style 'minigpt4'"
            )
        for instruction in settings.instructions:
            self.segments(instruction)  # fail now, not mid-training

    @property
    def instructions(self) -> list[str]:
        return list(self.settings.instructions)

    @property
    def end_sym(self) -> str:
        return self.settings.end_sym

    @property
    def max_txt_len(self) -> int:
        return self.settings.max_txt_len

    def render(self, instruction: str) -> str:
        """Full prompt text (up to where the answer starts) holding one image placeholder."""
        return self.render_turns([], instruction)

    def render_turns(self, history: Sequence[tuple[str, str]], message: str) -> str:
        """Prompt text of a conversation: earlier ``(user, answer)`` turns, then ``message``, up to where
        the next answer starts.

        ``minigpt4`` style: ``prompt`` around each user text, each earlier answer followed by ``end_sym``
        (an ``end_sym`` that the next prompt starts with is not doubled: MiniGPT-4's ``###`` separator,
        ``###Human: q1 ###Assistant: a1###Human: q2 ###Assistant: ``). ``chat`` style: the tokenizer's
        chat template over the turns. With no history this is exactly the training prompt.
        """
        if self.settings.style == "minigpt4":
            text, prompt = "", self.settings.prompt
            for user, answer in history:
                text = _join(text, prompt.replace("{}", user) + answer + self.end_sym, self.end_sym)
            return _join(text, prompt.replace("{}", message), self.end_sym)
        assert self.tokenizer is not None
        messages = [{"role": "system", "content": self.settings.system}] if self.settings.system else []
        for user, answer in history:
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        messages.append({"role": "user", "content": message})
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        bos = self.tokenizer.bos_token
        if bos and text.startswith(bos) and bos_prefix(self.tokenizer):
            text = text[len(bos) :]  # BOS is prepended once as an id by the batch builders
        return text

    def segments(self, instruction: str, history: Sequence[tuple[str, str]] = ()) -> tuple[str, str]:
        """``(text before the image, text after the image)`` of the rendered prompt (see `render_turns`)."""
        text = self.render_turns(history, instruction)
        placeholder = self.settings.image_placeholder
        if text.count(placeholder) != 1:
            raise ValueError(
                f"prompt must hold exactly one {placeholder!r}, got {text.count(placeholder)} in {text!r}"
            )
        before, after = text.split(placeholder)
        return before, after

    def prepare_answer(self, answer: str) -> str:
        """Answer text as learnt: optionally normalised, followed by ``end_sym``."""
        if self.settings.normalize_answers:
            answer = normalize_caption(answer)
        return answer + self.settings.end_sym


def _join(text: str, piece: str, sep: str) -> str:
    """``text + piece``; a ``sep`` that ends ``text`` and starts ``piece`` is kept once."""
    if text.endswith(sep) and piece.startswith(sep):
        return text + piece[len(sep) :]
    return text + piece


def bos_prefix(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """``[bos_id]`` when the tokenizer itself starts sequences with BOS (LLaMA/Vicuna), else ``[]``.

    SmolLM2 names ``<|im_start|>`` its bos_token but never prepends it (it is a chat-turn marker),
    so no BOS is added there.
    """
    bos = tokenizer.bos_token_id
    if bos is None:
        return []
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return [bos] if ids and ids[0] == bos else []


def _ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def _pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    if tokenizer.pad_token_id is None:
        raise ValueError("tokenizer has no pad token; load it with mgpt_bridge.lm_loading.ensure_pad_token")
    return int(tokenizer.pad_token_id)


def _check_lengths(instructions: Sequence[str], other: Sequence, what: str) -> None:
    if isinstance(instructions, str):
        raise TypeError("instructions must be a list of strings, one per row, not a single string")
    if len(instructions) != len(other):
        raise ValueError(f"{len(instructions)} instructions for {len(other)} {what}")
    if not instructions:
        raise ValueError("empty batch")


def _prompt_rows(tokenizer, template: PromptTemplate, instructions: Sequence[str], num_image_tokens: int):
    """Per row: (prompt ids with image slots filled by pad, index of the first image slot)."""
    return _segment_rows(tokenizer, [template.segments(i) for i in instructions], num_image_tokens)


def _segment_rows(tokenizer, segments: Sequence[tuple[str, str]], num_image_tokens: int):
    if num_image_tokens < 1:
        raise ValueError(f"num_image_tokens must be >= 1, got {num_image_tokens}")
    pad, bos = _pad_id(tokenizer), bos_prefix(tokenizer)
    rows = []
    for before, after in segments:
        head = bos + _ids(tokenizer, before)
        rows.append((head + [pad] * num_image_tokens + _ids(tokenizer, after), len(head)))
    return rows


def _image_tensors(
    starts: list[int], num_image_tokens: int, length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    positions = torch.tensor(starts, dtype=torch.long)[:, None] + torch.arange(num_image_tokens)[None, :]
    mask = torch.zeros(len(starts), length, dtype=torch.bool)
    mask.scatter_(1, positions, True)
    return mask, positions


def build_batch(
    tokenizer: PreTrainedTokenizerBase,
    template: PromptTemplate,
    instructions: Sequence[str],
    answers: Sequence[str],
    num_image_tokens: int,
) -> dict[str, torch.Tensor]:
    """Training batch, right padded: ``[BOS?][before][N image slots][after][answer + end_sym][pad]``.

    Returns ``input_ids``, ``labels`` (-100 except answer + end_sym tokens), ``attention_mask``,
    ``image_mask`` (bool [B,L], True at image slots) and ``image_positions`` ([B,N] slot indices).
    The answer (with end_sym) is cut to ``max_txt_len`` tokens as MiniGPT-4 does. Raises when a
    row would have no label at all (the "loss stuck at 0" bug).
    """
    _check_lengths(instructions, answers, "answers")
    pad = _pad_id(tokenizer)
    rows = _prompt_rows(tokenizer, template, instructions, num_image_tokens)
    sequences, labels, starts = [], [], []
    for (prompt_ids, start), answer in zip(rows, answers, strict=True):
        answer_ids = _ids(tokenizer, template.prepare_answer(answer))[: template.max_txt_len]
        if not answer_ids:
            raise ValueError(f"answer {answer!r} with end_sym {template.end_sym!r} gives no tokens to learn")
        sequences.append(prompt_ids + answer_ids)
        labels.append([IGNORE_INDEX] * len(prompt_ids) + answer_ids)
        starts.append(start)
    length = max(len(s) for s in sequences)
    input_ids = torch.full((len(rows), length), pad, dtype=torch.long)
    label_t = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(rows), length), dtype=torch.long)
    for i, (seq, lab) in enumerate(zip(sequences, labels, strict=True)):
        input_ids[i, : len(seq)] = torch.tensor(seq)
        label_t[i, : len(lab)] = torch.tensor(lab)
        attention[i, : len(seq)] = 1
    if bool(((label_t != IGNORE_INDEX).sum(dim=1) == 0).any()):  # cannot happen above; guards future edits
        raise ValueError("a row has every label masked: the loss would not learn from it")
    image_mask, positions = _image_tensors(starts, num_image_tokens, length)
    return {
        "input_ids": input_ids,
        "labels": label_t,
        "attention_mask": attention,
        "image_mask": image_mask,
        "image_positions": positions,
    }


def build_generation_prompt(
    tokenizer: PreTrainedTokenizerBase,
    template: PromptTemplate,
    instructions: Sequence[str],
    num_image_tokens: int,
) -> dict[str, torch.Tensor]:
    """Generation prompts, LEFT padded so every row ends where the answer starts.

    Returns ``input_ids``, ``attention_mask``, ``image_mask`` and ``image_positions`` as :func:`build_batch`.
    """
    _check_lengths(instructions, instructions, "instructions")
    return build_segments_prompt(tokenizer, [template.segments(i) for i in instructions], num_image_tokens)


def build_segments_prompt(
    tokenizer: PreTrainedTokenizerBase, segments: Sequence[tuple[str, str]], num_image_tokens: int
) -> dict[str, torch.Tensor]:
    """As :func:`build_generation_prompt` from rendered ``(before image, after image)`` text pairs
    (e.g. a conversation's `PromptTemplate.segments`): ``[BOS?][before][N image slots][after]``."""
    if not segments:
        raise ValueError("empty batch")
    pad = _pad_id(tokenizer)
    rows = _segment_rows(tokenizer, segments, num_image_tokens)
    length = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), length), pad, dtype=torch.long)
    attention = torch.zeros((len(rows), length), dtype=torch.long)
    starts = []
    for i, (ids, start) in enumerate(rows):
        offset = length - len(ids)
        input_ids[i, offset:] = torch.tensor(ids)
        attention[i, offset:] = 1
        starts.append(offset + start)
    image_mask, positions = _image_tensors(starts, num_image_tokens, length)
    return {
        "input_ids": input_ids,
        "attention_mask": attention,
        "image_mask": image_mask,
        "image_positions": positions,
    }
