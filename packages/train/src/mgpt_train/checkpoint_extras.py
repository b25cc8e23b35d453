"""What a training checkpoint folder holds besides the tensors: the bridge facts that tensor names cannot
tell (LM, its init, LoRA hyper-parameters) and, when the LM is LoRA-tuned, a PEFT adapter folder
(``adapter/``: ``peft.PeftModel.from_pretrained(base_lm, "epoch_k/adapter")``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from mgpt_bridge import BridgeSettings


def _bridge(settings: dict[str, Any]) -> BridgeSettings | None:
    """The run's bridge settings from its JSON dict (None when the dict has no bridge section)."""
    if not settings.get("bridge"):
        return None
    from mgpt_bridge import BridgeSettings

    return BridgeSettings(**settings["bridge"])  # every key given: the environment cannot change it


def bridge_facts(settings: dict[str, Any]) -> dict[str, Any]:
    """``{"lm", "lm_init", "lora"}`` for the trainable file's metadata ({} without bridge settings)."""
    bridge = _bridge(settings)
    return {} if bridge is None else bridge.checkpoint_facts()


def write_adapter_if_lora(
    checkpoint_dir: Path, trainable: dict[str, torch.Tensor], settings: dict[str, Any]
) -> Path | None:
    """Write ``checkpoint_dir/adapter/`` (PEFT format) when the run's LM is LoRA-tuned; else nothing."""
    bridge = _bridge(settings)
    if bridge is None or bridge.lm_tuning != "lora":
        return None
    from mgpt_bridge import ADAPTER_DIR, write_lora_adapter

    return write_lora_adapter(Path(checkpoint_dir) / ADAPTER_DIR, trainable, bridge)
