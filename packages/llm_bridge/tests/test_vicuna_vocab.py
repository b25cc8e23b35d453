"""The Vicuna (MiniGPT-4) template on a real LLaMA SentencePiece vocabulary, token for token as upstream.

The vocabulary is llama.cpp's vocab-only ``ggml-vocab-llama-spm.gguf`` (32000 pieces, the LLaMA/Vicuna v0
tokenizer) with its reference tokenisations ``.inp``/``.out``, fetched once from the llama-cpp-python
sdist on PyPI by the root conftest's ``llama_vocab_dir`` fixture. Upstream MiniGPT-4 tokenises with the
slow SentencePiece ``LlamaTokenizer``; llama.cpp's reference ids were made to equal SentencePiece's.

Found here: transformers' GGUF converter builds a fast tokenizer with ``Metaspace(prepend_scheme="first")``,
which adds no dummy-prefix '▁' when the text already starts with a space, while SentencePiece (and
llama.cpp) always add it. So the two disagree exactly on inputs that start with a space (" Hello" →
[15043] vs [29871, 15043]). With the SentencePiece normaliser of the original LLaMA ``tokenizer.json``
(prepend '▁', spaces → '▁', no pre-tokenizer) every reference pair matches. MiniGPT-4's segments never
start with a space, so both give the same template ids (asserted below).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mgpt_bridge import (
    IGNORE_INDEX,
    MINIGPT4_INSTRUCTIONS,
    PromptTemplate,
    TemplateSettings,
    build_batch,
    build_generation_prompt,
    ensure_pad_token,
)
from mgpt_bridge.stopping import stop_id_sequences

GGUF = "ggml-vocab-llama-spm.gguf"
SEP = "\n__ggml_vocab_test__\n"  # llama.cpp tests/test-tokenizer-0.cpp
N_IMG = 32

# MiniGPT-4 stage 2, instruction 1: the ids upstream feeds LLaMA (checked piece by piece below)
BEFORE = [835, 29950, 7889, 29901, 529, 25518, 29958]  # '▁###' 'H' 'uman' ':' '▁<' 'Img' '>'
AFTER = [1533, 25518, 29958, 20355, 915, 445, 1967, 297, 9493, 29889, 835, 7900, 22137, 29901, 29871]
#        '▁</' 'Img' '>' '▁Descri' 'be' '▁this' '▁image' '▁in' '▁detail' '.' '▁###' 'Ass' 'istant' ':' '▁'

def _gguf_tokenizer(vocab_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(vocab_dir, gguf_file=GGUF)


@pytest.fixture(scope="module")
def gguf_tok(llama_vocab_dir: Path):
    """The tokenizer exactly as transformers converts the GGUF."""
    return _gguf_tokenizer(llama_vocab_dir)


@pytest.fixture(scope="module")
def llama_tok(llama_vocab_dir: Path):
    """The GGUF vocab with SentencePiece's own normalisation (the original LLaMA tokenizer.json layout)."""
    from tokenizers import normalizers

    tok = _gguf_tokenizer(llama_vocab_dir)
    backend = tok.backend_tokenizer
    backend.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    backend.pre_tokenizer = None
    return ensure_pad_token(tok)


@pytest.fixture(scope="module")
def reference(llama_vocab_dir: Path) -> list[tuple[str, list[int]]]:
    """llama.cpp's (text, ids) pairs: inputs split on SEP (a trailing SEP ends the file), one id line each."""
    raw = (llama_vocab_dir / f"{GGUF}.inp").read_text(encoding="utf-8")
    texts = raw.split(SEP)
    if raw.endswith(SEP):
        texts = texts[:-1]
    lines = (llama_vocab_dir / f"{GGUF}.out").read_text().splitlines()
    ids = [[int(t) for t in line.split()] for line in lines]
    assert len(texts) == len(ids) >= 40, (len(texts), len(ids))
    return list(zip(texts, ids, strict=True))


def _ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def test_vocab_is_llama(gguf_tok) -> None:
    assert len(gguf_tok) == 32000
    assert (gguf_tok.bos_token, gguf_tok.eos_token, gguf_tok.unk_token) == ("<s>", "</s>", "<unk>")
    assert (gguf_tok.bos_token_id, gguf_tok.eos_token_id, gguf_tok.unk_token_id) == (1, 2, 0)
    assert gguf_tok("a")["input_ids"] == [1, 263]  # BOS prepended with special tokens, no EOS


def test_sentencepiece_normalisation_reproduces_every_llama_cpp_reference(llama_tok, reference) -> None:
    wrong = [(text, ids, _ids(llama_tok, text)) for text, ids in reference if _ids(llama_tok, text) != ids]
    assert not wrong


def test_gguf_conversion_differs_only_on_a_leading_space(gguf_tok, llama_tok, reference) -> None:
    differing = {text for text, ids in reference if _ids(gguf_tok, text) != ids}
    assert differing == {text for text, _ in reference if text.startswith(" ")}
    assert len(differing) < len(reference) // 2  # the plain pairs (no leading space) all match
    for text in differing:
        if text.strip(" "):  # one dummy '▁' fewer: the same ids as the text minus its first space
            assert _ids(gguf_tok, text) == _ids(llama_tok, text[1:]), text


def test_stop_ids_are_those_upstream_stops_on(llama_tok, gguf_tok) -> None:
    for tok in (llama_tok, gguf_tok):
        assert _ids(tok, "###") == [835]
        assert tok.convert_tokens_to_ids(["▁###", "##", "#"]) == [835, 2277, 29937]
        assert _ids(tok, "a man rides a bike.###")[-2:] == [2277, 29937]  # '###' glued to a word
        # StoppingCriteriaSub(stops=[[835], [2277, 29937]]) in MiniGPT-4's conversation.py
        assert stop_id_sequences(tok, "###") == [[835], [2277, 29937]]


def _upstream_ids(tok, prompt: str, answer: str, end_sym: str, max_txt_len: int) -> list[int | None]:
    """MiniGPT-4 (minigpt_base.py): [BOS] + each prompt segment with add_special_tokens=False around the
    image embeddings (None here) + tokenizer(answer + end_sym, truncation, max_length=max_txt_len)."""
    before, after = prompt.split("<ImageHere>")
    target = tok(answer + end_sym, add_special_tokens=False, truncation=True, max_length=max_txt_len)[
        "input_ids"
    ]
    return [tok.bos_token_id] + _ids(tok, before) + [None] * N_IMG + _ids(tok, after) + target


@pytest.mark.parametrize("which", ["llama_tok", "gguf_tok"])
def test_build_batch_gives_the_upstream_sequence(which, request) -> None:
    tok = ensure_pad_token(request.getfixturevalue(which))
    settings = TemplateSettings()  # the minigpt4 defaults: '###Human: {} ###Assistant: ', '###', 160
    template = PromptTemplate(settings, tok)
    answers = ["A man in a blue shirt is riding a bicycle down a busy city street.", "Two dogs play."]
    instructions = [MINIGPT4_INSTRUCTIONS[0], MINIGPT4_INSTRUCTIONS[3]]
    batch = build_batch(tok, template, instructions, answers, N_IMG)
    pad = tok.pad_token_id
    for row, (instruction, answer) in enumerate(zip(instructions, answers, strict=True)):
        prompt = settings.prompt.replace("{}", instruction)
        expected = _upstream_ids(tok, prompt, answer, "###", 160)
        length = len(expected)
        slots = [i for i, t in enumerate(expected) if t is None]
        assert batch["input_ids"][row, :length].tolist() == [pad if t is None else t for t in expected]
        assert (
            batch["image_positions"][row].tolist()
            == slots
            == list(range(1 + len(BEFORE), 1 + len(BEFORE) + 32))
        )
        n_answer = len(_ids(tok, answer + "###"))
        assert (
            batch["labels"][row, :length].tolist()
            == [IGNORE_INDEX] * (length - n_answer) + expected[-n_answer:]
        )
        assert batch["attention_mask"][row].sum() == length
        assert batch["labels"][row, length - 2 : length].tolist() == [2277, 29937]  # end_sym glued to '.'
    first = batch["input_ids"][0].tolist()
    assert first[: 1 + len(BEFORE)] == [1] + BEFORE
    assert first[1 + len(BEFORE) + N_IMG : 1 + len(BEFORE) + N_IMG + len(AFTER)] == AFTER
    assert tok.convert_ids_to_tokens(BEFORE) == ["▁###", "H", "uman", ":", "▁<", "Img", ">"]


def test_long_answers_are_cut_to_max_txt_len_as_upstream(llama_tok) -> None:
    settings = TemplateSettings()
    template = PromptTemplate(settings, llama_tok)
    answer = " ".join(["a dog runs on the grass near a red house"] * 30)  # > 160 tokens
    batch = build_batch(llama_tok, template, [MINIGPT4_INSTRUCTIONS[0]], [answer], N_IMG)
    expected = _upstream_ids(
        llama_tok, settings.prompt.replace("{}", MINIGPT4_INSTRUCTIONS[0]), answer, "###", 160
    )
    assert batch["input_ids"][0].tolist() == [llama_tok.pad_token_id if t is None else t for t in expected]
    assert int((batch["labels"][0] != IGNORE_INDEX).sum()) == 160


def test_generation_prompt_equals_upstream_context(llama_tok) -> None:
    """MiniGPT-4's get_context_emb: segment i tokenised with add_special_tokens=(i == 0), images between."""
    template = PromptTemplate(TemplateSettings(), llama_tok)
    prompt = TemplateSettings().prompt.replace("{}", MINIGPT4_INSTRUCTIONS[0])
    segs = prompt.split("<ImageHere>")
    upstream = [llama_tok(seg, add_special_tokens=i == 0)["input_ids"] for i, seg in enumerate(segs)]
    assert upstream == [[1] + BEFORE, AFTER]
    batch = build_generation_prompt(llama_tok, template, [MINIGPT4_INSTRUCTIONS[0]], N_IMG)
    assert batch["input_ids"][0].tolist() == upstream[0] + [llama_tok.pad_token_id] * N_IMG + upstream[1]
    assert batch["attention_mask"][0].tolist() == [1] * (len(upstream[0]) + N_IMG + len(AFTER))
