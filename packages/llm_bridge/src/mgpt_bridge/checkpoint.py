"""Trainable-parameter checkpoints: safetensors + JSON metadata (upstream ``.pth``: ``minigpt4_interop``)."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .contents import TrainableContents, describe_trainable

logger = logging.getLogger(__name__)

METADATA_KEY = "mgpt"
#: the trainable parameters' file inside a training checkpoint folder (``checkpoints/epoch_k/``).
TRAINABLE_FILE = "trainable.safetensors"
#: beside it: optimizer, scaler, step and RNG states (written by mgpt_train).
TRAIN_STATE_FILE = "train_state.pt"
CONTENTS_KEY = "contents"  # inside the metadata: TrainableContents.as_dict() of the tensors


def atomic_write(path: Path, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp)`` on a temporary sibling of ``path``, then move it into place."""
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
    return atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata=header))


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


def trainable_file(path: str | Path) -> Path:
    """A checkpoint folder → its :data:`TRAINABLE_FILE`; a file → itself."""
    path = Path(path)
    return path / TRAINABLE_FILE if path.is_dir() else path


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
