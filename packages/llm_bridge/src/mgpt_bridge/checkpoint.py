"""Trainable-parameter checkpoints (safetensors + JSON metadata) and MiniGPT-4 ``.pth`` import/export."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .contents import TrainableContents, describe_trainable

logger = logging.getLogger(__name__)

METADATA_KEY = "mgpt"
CONTENTS_KEY = "contents"  # inside the metadata: TrainableContents.as_dict() of the tensors
#: upstream MiniGPT-4 name → our VisionLanguageModel name (linear projector).
MINIGPT4_TO_MGPT = {"llama_proj.weight": "projector.weight", "llama_proj.bias": "projector.bias"}


def _atomic_path(path: Path, write) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save_trainable(
    path: str | Path, state_dict: Mapping[str, torch.Tensor], metadata: dict[str, Any]
) -> Path:
    """Write ``state_dict`` as safetensors, ``metadata`` JSON-encoded in the header (atomic).

    The header also says what the tensors are (``metadata["contents"]``: projector kind and layers,
    LM tuning, LoRA rank and targets, trained encoder parts; see :func:`read_contents`).
    """
    if not state_dict:
        raise ValueError("refusing to save an empty state dict (is anything trainable?)")
    tensors = {name: t.detach().to("cpu").contiguous().clone() for name, t in state_dict.items()}
    metadata = {**metadata, CONTENTS_KEY: describe_trainable(tensors).as_dict()}
    header = {METADATA_KEY: json.dumps(metadata, sort_keys=True, default=str)}
    return _atomic_path(Path(path), lambda tmp: save_file(tensors, tmp, metadata=header))


def load_trainable(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a :func:`save_trainable` file: ``(state_dict, metadata)``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    with safe_open(str(path), framework="pt", device="cpu") as f:
        header = f.metadata() or {}
        state_dict = {name: f.get_tensor(name) for name in f.keys()}
    metadata = json.loads(header[METADATA_KEY]) if METADATA_KEY in header else {}
    return state_dict, metadata


def read_contents(path: str | Path) -> TrainableContents:
    """What a :func:`save_trainable` file holds, from its header alone (no tensor is read); files written
    before the header said so are described from their tensor names and shapes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    with safe_open(str(path), framework="pt", device="cpu") as f:
        header = f.metadata() or {}
        metadata = json.loads(header[METADATA_KEY]) if METADATA_KEY in header else {}
        if CONTENTS_KEY in metadata:
            return TrainableContents.from_dict(metadata[CONTENTS_KEY])
        return describe_trainable({name: f.get_slice(name).get_shape() for name in f.keys()})


def import_minigpt4(
    pth_path: str | Path, *, expected_shapes: Mapping[str, tuple[int, ...]] | None = None
) -> dict[str, torch.Tensor]:
    """Read an upstream MiniGPT-4 checkpoint (``{"model": {"llama_proj.weight", "llama_proj.bias"}, ...}``)
    with ``torch.load(weights_only=True)`` and rename to our projector keys.

    Any other key in ``model`` (e.g. LoRA weights) is an error, never silently dropped. With
    ``expected_shapes`` (e.g. ``{k: tuple(v.shape) for k, v in vlm.trainable_state_dict().items()}``)
    shapes are checked and a mismatch names both shapes.
    """
    checkpoint = torch.load(Path(pth_path), map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("model"), Mapping):
        raise ValueError(
            f"{pth_path} is not a MiniGPT-4 checkpoint: expected a dict with a 'model' state dict"
        )
    model_sd = checkpoint["model"]
    unknown = sorted(set(model_sd) - set(MINIGPT4_TO_MGPT))
    missing = sorted(set(MINIGPT4_TO_MGPT) - set(model_sd))
    if unknown or missing:
        raise ValueError(
            f"{pth_path}: MiniGPT-4 import handles exactly {sorted(MINIGPT4_TO_MGPT)}; "
            f"missing {missing}, unsupported {unknown}"
        )
    state_dict = {MINIGPT4_TO_MGPT[k]: v for k, v in model_sd.items()}
    if expected_shapes is not None:
        from .model import check_state_dict

        check_state_dict(state_dict, expected_shapes)
    logger.info(
        "imported MiniGPT-4 projector %s from %s", tuple(state_dict["projector.weight"].shape), pth_path
    )
    return state_dict


def export_minigpt4(state_dict: Mapping[str, torch.Tensor], path: str | Path, config: dict[str, Any]) -> Path:
    """Write our linear projector as an upstream ``{"model": {llama_proj.*}, "config": ...}`` ``.pth``."""
    reverse = {ours: theirs for theirs, ours in MINIGPT4_TO_MGPT.items()}
    missing = sorted(set(reverse) - set(state_dict))
    extra = sorted(set(state_dict) - set(reverse))
    if missing or extra:
        raise ValueError(
            f"MiniGPT-4 export needs exactly a linear projector {sorted(reverse)}; "
            f"missing {missing}, not exportable {extra}"
        )
    model_sd = {reverse[k]: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    payload = {
        "model": model_sd,
        "config": json.loads(json.dumps(config, default=str)),
        "epoch": config.get("epoch"),
    }
    return _atomic_path(Path(path), lambda tmp: torch.save(payload, tmp))
