"""Stop generation at the template's end symbol (MiniGPT-4 stops on '###') and trim it from the text."""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerBase, StoppingCriteria


class EndSymStoppingCriteria(StoppingCriteria):
    """Per row: stop once the generated ids end with a tokenisation of ``end_sym`` or their text holds it.

    Token ids catch the common case cheaply (LLaMA: ``[835]`` or ``[2277, 29937]`` for '###'); the
    string check catches any other split (e.g. '.###' merged into one token).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, end_sym: str, prompt_length: int = 0):
        if not end_sym:
            raise ValueError("end_sym must not be empty")
        self.tokenizer = tokenizer
        self.end_sym = end_sym
        self.prompt_length = prompt_length
        self.id_sequences = stop_id_sequences(tokenizer, end_sym)
        self.tail = len(end_sym) + 2  # tokens decoded for the string check: each token is >= 1 char

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        generated = input_ids[:, self.prompt_length :]
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for seq in self.id_sequences:
            if generated.shape[1] >= len(seq):
                target = torch.tensor(seq, device=input_ids.device)
                done |= (generated[:, -len(seq) :] == target).all(dim=1)
        tails = self.tokenizer.batch_decode(generated[:, -self.tail :], skip_special_tokens=False)
        done |= torch.tensor([self.end_sym in text for text in tails], device=input_ids.device)
        return done


def stop_id_sequences(tokenizer: PreTrainedTokenizerBase, end_sym: str) -> list[list[int]]:
    """Token-id sequences that spell ``end_sym`` alone and after a word (they may differ, as in LLaMA)."""
    sequences = []
    alone = tokenizer(end_sym, add_special_tokens=False)["input_ids"]
    if alone:
        sequences.append(list(alone))
    prefix = tokenizer("a", add_special_tokens=False)["input_ids"]
    joined = tokenizer("a" + end_sym, add_special_tokens=False)["input_ids"]
    if joined[: len(prefix)] == prefix and len(joined) > len(prefix):
        after = list(joined[len(prefix) :])
        if tokenizer.decode(after) == end_sym and after not in sequences:
            sequences.append(after)
    return sequences


def trim_generation(
    tokenizer: PreTrainedTokenizerBase,
    ids: torch.Tensor,
    end_sym: str,
    stop_ids: list[list[int]] | None = None,
) -> str:
    """Decode one row of new tokens, cut at eos/pad, at the first ``end_sym`` ids and ``end_sym`` text."""
    row = ids.tolist()
    cut = len(row)
    ends = {t for t in (tokenizer.eos_token_id, tokenizer.pad_token_id) if t is not None}
    for i, token in enumerate(row):
        if token in ends:
            cut = i
            break
    for seq in stop_ids or []:
        for i in range(0, cut - len(seq) + 1):
            if row[i : i + len(seq)] == seq:
                cut = min(cut, i)
                break
    text = tokenizer.decode(row[:cut], skip_special_tokens=True)
    return text.split(end_sym)[0].strip()
