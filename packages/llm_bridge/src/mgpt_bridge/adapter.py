"""LoRA outputs in the formats other tools read: a PEFT adapter folder and a merged Hugging Face LM.

- :func:`save_lora_adapter`: a LoRA model's adapter via peft's ``save_pretrained``
  (``adapter_config.json`` + ``adapter_model.safetensors``), loadable with
  ``peft.PeftModel.from_pretrained(base_lm, folder)`` over a freshly built base LM.
- :func:`write_lora_adapter`: the same folder from a trainable state dict and the bridge settings
  alone (the LM is built on the meta device, no weights read): what training checkpoints write.
- :func:`export_merged_lm`: ``merge_and_unload`` on a copy, then ``save_pretrained`` (safetensors) +
  the tokenizer: a plain LM folder ``AutoModelForCausalLM.from_pretrained`` loads.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from .contents import LM_PREFIX
from .settings import BridgeSettings

if TYPE_CHECKING:
    from .model import VisionLanguageModel

logger = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"  # the PEFT adapter folder inside a training checkpoint folder


def _require_peft(lm: nn.Module) -> nn.Module:
    from peft import PeftModel

    if not isinstance(lm, PeftModel):
        raise ValueError("this model's LM is not LoRA-tuned (bridge.lm_tuning must be 'lora' for an adapter)")
    return lm


def save_lora_adapter(model: VisionLanguageModel, dest: str | Path) -> Path:
    """Write the LoRA adapter of ``model`` as a standard PEFT folder at ``dest``."""
    dest = Path(dest)
    _require_peft(model.lm).save_pretrained(str(dest))
    logger.info("wrote the PEFT adapter to %s", dest)
    return dest


def write_lora_adapter(
    dest: str | Path, trainable: Mapping[str, torch.Tensor], bridge: BridgeSettings
) -> Path:
    """Write the PEFT folder of the LoRA tensors in ``trainable`` (``VisionLanguageModel`` names, e.g.
    from ``trainable_state_dict()`` or a checkpoint) for the LM ``bridge`` describes; other tensors
    are left out."""
    from .lm_loading import load_lm
    from .tuning import apply_lm_tuning

    if bridge.lm_tuning != "lora":
        raise ValueError(f"a PEFT adapter needs bridge.lm_tuning='lora', got {bridge.lm_tuning!r}")
    lm_state = {k.removeprefix(LM_PREFIX): v for k, v in trainable.items() if k.startswith(LM_PREFIX)}
    if not any(".lora_" in k for k in lm_state):
        raise ValueError("the trainable state dict holds no LoRA tensors (lm.*.lora_A/lora_B)")
    lm, _ = load_lm(bridge, meta=True)  # structure and names only
    peft_lm = apply_lm_tuning(lm, bridge)
    expected = {k for k, p in peft_lm.named_parameters() if p.requires_grad}
    if set(lm_state) != expected:
        missing, extra = sorted(expected - set(lm_state)), sorted(set(lm_state) - expected)
        raise ValueError(
            f"the LoRA tensors do not fit bridge settings r={bridge.lora_r} on {bridge.lora_target_modules}: "
            f"missing {missing[:4]}{' ...' if len(missing) > 4 else ''}, unexpected {extra[:4]}"
        )
    dest = Path(dest)
    peft_lm.save_pretrained(str(dest), state_dict={k: v.detach().cpu() for k, v in lm_state.items()})
    return dest


def export_merged_lm(model: VisionLanguageModel, dest: str | Path) -> Path:
    """Save the LM with its LoRA merged into the base weights (a copy is merged; ``model`` keeps its LoRA),
    or as it is when fully tuned / frozen, plus the tokenizer, as a Hugging Face folder (safetensors)."""
    from peft import PeftModel

    dest = Path(dest)
    lm = model.lm
    if isinstance(lm, PeftModel):
        lm = copy.deepcopy(lm).merge_and_unload()
    lm.save_pretrained(str(dest))
    if model.tokenizer is not None:
        model.tokenizer.save_pretrained(str(dest))
    logger.info("wrote the merged LM to %s", dest)
    return dest
