"""Which LM parameters train: frozen, LoRA (peft) or full — a setting, not a code fork."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from torch import nn

from mgpt_vision import count_parameters

from .settings import BridgeSettings

if TYPE_CHECKING:
    from peft import LoraConfig

logger = logging.getLogger(__name__)


def freeze(module: nn.Module) -> nn.Module:
    """``eval()`` and ``requires_grad_(False)``."""
    module.eval()
    module.requires_grad_(False)
    return module


def is_frozen(module: nn.Module | None) -> bool:
    """True when no parameter of ``module`` requires grad (a module without parameters counts as frozen)."""
    return module is None or not any(p.requires_grad for p in module.parameters())


def lora_config(settings: BridgeSettings) -> LoraConfig:
    """The peft ``LoraConfig`` of the settings (r, alpha, dropout, target modules; no bias, causal LM)."""
    from peft import LoraConfig

    return LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=list(settings.lora_target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def apply_lm_tuning(lm: nn.Module, settings: BridgeSettings) -> nn.Module:
    """Return the LM made trainable per ``settings.lm_tuning``; with "lora" it is wrapped in a peft model."""
    if settings.lm_tuning == "frozen":
        return freeze(lm)
    if settings.lm_tuning == "full":
        lm.requires_grad_(True)
        return lm
    from peft import get_peft_model

    names = {name.rsplit(".", 1)[-1] for name, _ in lm.named_modules()}
    missing = [t for t in settings.lora_target_modules if t not in names]
    if missing:
        raise ValueError(
            f"lora_target_modules {missing} are not modules of the LM "
            f"(it has e.g. q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)"
        )
    if getattr(lm, "is_loaded_in_8bit", False):
        from peft import prepare_model_for_kbit_training

        lm = prepare_model_for_kbit_training(lm, use_gradient_checkpointing=False)
    peft_lm = get_peft_model(lm, lora_config(settings))
    trainable = count_parameters(peft_lm, trainable_only=True)
    logger.info(
        "LoRA r=%d on %s: %d trainable LM params", settings.lora_r, settings.lora_target_modules, trainable
    )
    return peft_lm
