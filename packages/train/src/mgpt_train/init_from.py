"""`train.init_from`: start a run's trainable parameters from another run — MiniGPT-4's stage 2 from stage 1.

The driver resolves what the user named (a run directory → its latest checkpoint; a checkpoint folder
or ``.safetensors`` file → itself) into one absolute checkpoint path, which ``settings.json`` then
records, and checks its tensor names and shapes against a meta build of this run's model, so a
mismatch fails in one line before any worker starts. Workers load it only when the run has no
checkpoint of its own (`mgpt_train.loop`): a resumed run, or a restarted worker group, restores its
own state instead. Optimizer, schedule and step always start fresh.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

    from mgpt_train.run_settings import RunSettings

logger = logging.getLogger(__name__)


def resolve_init_checkpoint(source: Path | str) -> Path:
    """The checkpoint ``source`` names: a run directory's latest checkpoint (Ray's record of it, else its
    last ``epoch_k``), or a checkpoint folder / trainable ``.safetensors`` file itself (absolute)."""
    from mgpt_bridge.checkpoint import TRAINABLE_FILE
    from mgpt_train.checkpointing import latest_checkpoint_dir, list_checkpoints
    from mgpt_train.rundir import CHECKPOINTS_DIR, SETTINGS_FILE

    path = Path(source).expanduser().resolve()
    if not path.exists():
        raise FileNotFoundError(f"init_from {source}: no such run directory or checkpoint")
    if path.is_file():
        if path.suffix != ".safetensors":
            raise ValueError(f"init_from {source}: a checkpoint file must be a trainable .safetensors file")
        return path
    if (path / TRAINABLE_FILE).is_file():
        return path
    if (path / SETTINGS_FILE).is_file() or (path / CHECKPOINTS_DIR).is_dir():
        found = latest_checkpoint_dir(path)
        if found is None or not (found / TRAINABLE_FILE).is_file():
            epochs = list_checkpoints(path)
            found = epochs[-1] if epochs else None
        if found is None:
            raise FileNotFoundError(f"init_from {source}: the run has no checkpoint yet")
        return found
    raise FileNotFoundError(
        f"init_from {source}: neither a run directory (settings.json) nor a checkpoint folder "
        f"({TRAINABLE_FILE})")


def _shapes_as_meta_tensors(checkpoint: Path) -> dict:
    """Name → a meta tensor of the stored shape, read from the safetensors header (no tensor data)."""
    import torch
    from safetensors import safe_open

    from mgpt_bridge.checkpoint import trainable_file

    file = trainable_file(checkpoint)
    if not file.is_file():
        raise FileNotFoundError(f"init_from {checkpoint}: no {file.name} there")
    with safe_open(str(file), framework="pt", device="cpu") as f:
        return {name: torch.empty(f.get_slice(name).get_shape(), device="meta") for name in f.keys()}


def check_init_fits(settings: RunSettings, checkpoint: Path) -> None:
    """Raise a one-line ``ValueError`` unless ``checkpoint`` holds exactly the tensors (names and shapes)
    this run's model trains — told as `load_trainable_state_dict` tells it ("checkpoint holds an mlp-3
    projector; this model has a linear projector | ...")."""
    from mgpt_bridge import build_vlm

    model = build_vlm(settings.vision, settings.bridge, device="meta", meta=True)
    try:
        model.load_trainable_state_dict(_shapes_as_meta_tensors(checkpoint))
    except ValueError as err:
        raise ValueError(f"init_from {checkpoint} does not fit this run: {err}") from None


def with_init_checkpoint(settings: RunSettings) -> RunSettings:
    """``settings`` with ``train.init_from`` resolved to one checkpoint and checked to fit (unchanged when
    unset); what ``settings.json`` records."""
    source = settings.train.init_from
    if source is None:
        return settings
    checkpoint = resolve_init_checkpoint(source)
    check_init_fits(settings, checkpoint)
    logger.info("trainable parameters start from %s", checkpoint)
    return settings.model_copy(update={"train": settings.train.model_copy(update={"init_from": checkpoint})})


def load_init(model: nn.Module, checkpoint: Path | str) -> None:
    """Load ``checkpoint``'s trainable parameters into ``model`` strictly (a fresh run's start)."""
    from mgpt_train.checkpointing import read_trainable

    model.load_trainable_state_dict(read_trainable(checkpoint))
    logger.info("initialised the trainable parameters from %s", checkpoint)
