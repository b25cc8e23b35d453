"""Fixtures for mgpt_bridge tests: the SmolLM2 tokenizer (converted once into the mgpt cache), tiny VLMs."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import nn
from transformers import AutoTokenizer, LlamaForCausalLM

from mgpt_bridge import (
    BridgeSettings,
    GenerationSettings,
    PromptTemplate,
    TemplateSettings,
    VisionLanguageModel,
    build_projector,
    ensure_smollm2_dir,
)
from mgpt_bridge.lm_loading import tiny_lm_config


@pytest.fixture(scope="session")
def smol_dir():
    """The converted SmolLM2 HF dir (first use on a machine converts the GGUF, ~25 s)."""
    return ensure_smollm2_dir()


@pytest.fixture(scope="session")
def smol_tokenizer(smol_dir):
    return AutoTokenizer.from_pretrained(smol_dir, local_files_only=True)


@pytest.fixture(scope="session")
def bos_tokenizer(smol_dir):
    """A LLaMA-like tokenizer: it prepends its own BOS ``<s>`` (a new special token)."""
    tok = AutoTokenizer.from_pretrained(smol_dir, local_files_only=True, add_bos_token=True, bos_token="<s>")
    assert tok("a")["input_ids"][0] == tok.bos_token_id
    return tok


class PatchEncoder(nn.Module):
    """Stand-in encoder: 8×8 patches of a 16 px image → 4 tokens of width ``dim`` (any module will do)."""

    def __init__(self, dim: int = 24):
        super().__init__()
        self.proj = nn.Linear(3 * 8 * 8, dim)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        patches = pixels.unfold(2, 8, 8).unfold(3, 8, 8)  # B,3,2,2,8,8
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(pixels.shape[0], 4, -1)
        return self.proj(patches)


@pytest.fixture
def make_tiny_vlm(smol_tokenizer) -> Callable[..., VisionLanguageModel]:
    """Factory: stand-in encoder (frozen) + linear projector + tiny random LLaMA over the SmolLM2 vocab."""

    def make(
        *,
        template: TemplateSettings | None = None,
        init_std: float = 0.02,
        seed: int = 0,
        tuning: str = "frozen",
        generation: GenerationSettings | None = None,
    ) -> VisionLanguageModel:
        from mgpt_bridge import apply_lm_tuning, freeze

        tokenizer = smol_tokenizer
        config = tiny_lm_config(tokenizer)
        config.initializer_range = init_std
        torch.manual_seed(seed)
        lm = apply_lm_tuning(LlamaForCausalLM(config), BridgeSettings(lm="tiny", lm_tuning=tuning))
        encoder = freeze(PatchEncoder())
        projector = build_projector("linear", 24, config.hidden_size)
        return VisionLanguageModel(
            encoder,
            projector,
            lm,
            tokenizer,
            PromptTemplate(template or TemplateSettings(), tokenizer),
            num_encoder_tokens=4,
            token_dim=24,
            generation=generation,
            encoder_name="patch",
            lm_name="tiny",
            seed=seed,
        )

    return make


@pytest.fixture(scope="session")
def upstream() -> ModuleType:
    """``upstream_minigpt4.py`` (stand-ins with upstream MiniGPT-4's module names + its save logic);
    loaded by path because tests run with ``--import-mode=importlib``."""
    name = "upstream_minigpt4"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[name]
