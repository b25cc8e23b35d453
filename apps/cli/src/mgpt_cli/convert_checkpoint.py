"""MiniGPT-4 ``.pth`` ⇄ mgpt trainable safetensors, checked against a preset's trainable parameters.

Upstream layout: ``{"model": {"llama_proj.weight", "llama_proj.bias"}, "optimizer", "config", "scaler",
"epoch"}`` (read with ``torch.load(weights_only=True)`` only). Ours: a safetensors file of the
trainable parameters with JSON metadata (``mgpt_bridge.checkpoint.save_trainable``), or a training
checkpoint folder holding ``trainable.safetensors``.
"""

from __future__ import annotations

import logging
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mgpt_bridge.inspect import expected_trainable_shapes

if TYPE_CHECKING:
    import torch

    from mgpt_train.run_settings import RunSettings

logger = logging.getLogger(__name__)

Direction = Literal["ours", "minigpt4"]
TRAINABLE_FILE = "trainable.safetensors"  # what a training checkpoint folder holds (mgpt_train.checkpointing)
MINIGPT4_SUFFIXES = (".pth", ".pt")


@dataclass
class Converted:
    """What a conversion wrote."""

    path: Path
    direction: Direction
    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, str]
    params: int


def detect_direction(src: Path) -> Direction:
    """``.pth``/``.pt`` → ours; ``.safetensors`` or a checkpoint folder → minigpt4."""
    if src.is_dir() or src.suffix == ".safetensors":
        return "minigpt4"
    if src.suffix in MINIGPT4_SUFFIXES:
        return "ours"
    raise UserError(
        f"cannot tell the direction from {src.name!r}: pass --to ours (from a MiniGPT-4 .pth) "
        "or --to minigpt4 (from our .safetensors)"
    )


class UserError(ValueError):
    """A problem with the user's input (file, shapes): one message, exit code 2."""


def expected_shapes(settings: RunSettings) -> dict[str, tuple[int, ...]]:
    """Trainable parameter shapes of the preset's model, from a meta build (no weights, about a second)."""
    return expected_trainable_shapes(settings.vision, settings.bridge)


def _shape_text(shapes: dict[str, tuple[int, ...]]) -> str:
    return ", ".join(f"{name} {tuple(shape)}" for name, shape in sorted(shapes.items())) or "nothing"


def _check_fit(
    found: dict[str, tuple[int, ...]],
    expected: dict[str, tuple[int, ...]],
    src: Path,
    preset: str,
    found_text: str | None = None,
) -> None:
    """Raise naming both sides unless ``found`` (our names) equals the preset's trainable shapes."""
    if found == expected:
        return
    raise UserError(
        f"{src} does not fit preset {preset!r}: the checkpoint holds {found_text or _shape_text(found)}; "
        f"the preset's model trains {_shape_text(expected)}"
        + (
            " (a different LM width: e.g. a Vicuna-13B checkpoint is 5120 wide, Vicuna-7B 4096)"
            if set(found) == set(expected)
            else ""
        )
    )


def read_minigpt4_file(src: Path) -> dict[str, Any]:
    """``torch.load(weights_only=True)``: only tensors and plain containers; anything else is refused."""
    import torch

    if not src.is_file():
        raise UserError(f"no such file: {src}")
    try:
        checkpoint = torch.load(src, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UserError(_unpickling_message(src, str(err))) from err
    except (RuntimeError, EOFError, OSError) as err:
        raise UserError(f"{src} is not a readable torch checkpoint: {err}") from err
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        raise UserError(f"{src} is not a MiniGPT-4 checkpoint: expected a dict with a 'model' state dict")
    return checkpoint


def _unpickling_message(src: Path, error: str) -> str:
    """One clear sentence from torch's long weights_only error (it names the refused global, if any)."""
    found = re.search(r"Unsupported global: GLOBAL (\S+)", error)
    if found:
        return (
            f"refusing to load {src}: it holds {found.group(1)}, not only tensors and plain containers, and "
            "torch.load(weights_only=True) will not unpickle it (no code from the file was run)"
        )
    detail = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n|$)", error)
    reason = detail.group(1) if detail else error.strip().splitlines()[0]
    return f"{src} is not a checkpoint torch.load(weights_only=True) can read: {reason}"


def _describe(sd: dict[str, torch.Tensor]) -> tuple[dict[str, tuple[int, ...]], dict[str, str], int]:
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    dtypes = {k: str(v.dtype).removeprefix("torch.") for k, v in sd.items()}
    return shapes, dtypes, sum(v.numel() for v in sd.values())


def _check_out(src: Path, dst: Path, suffixes: tuple[str, ...], force: bool) -> None:
    if dst.resolve() == src.resolve():
        raise UserError("OUT must differ from IN")
    if dst.suffix not in suffixes:
        raise UserError(f"OUT {dst.name!r} should end with {' or '.join(suffixes)}")
    if dst.exists() and not force:
        raise UserError(f"{dst} exists; pass --force to overwrite it")


def minigpt4_to_ours(
    src: Path, dst: Path, settings: RunSettings, *, preset: str, force: bool = False
) -> Converted:
    """Import an upstream checkpoint into our safetensors format (shapes checked against the preset)."""
    from mgpt_bridge.checkpoint import MINIGPT4_TO_MGPT, import_minigpt4, save_trainable

    _check_out(src, dst, (".safetensors",), force)
    checkpoint = read_minigpt4_file(src)
    upstream = checkpoint["model"]
    expected = expected_shapes(settings)
    theirs = {k: tuple(getattr(v, "shape", ())) for k, v in upstream.items()}
    ours = {MINIGPT4_TO_MGPT.get(k, k): shape for k, shape in theirs.items()}
    _check_fit(ours, expected, src, preset, found_text=_shape_text(theirs))
    try:
        state_dict = import_minigpt4(src, expected_shapes=expected)
    except ValueError as err:
        raise UserError(str(err)) from err
    metadata = {
        "source": "minigpt4",
        "source_file": src.name,
        "epoch": checkpoint.get("epoch"),
        "preset": preset,
        "minigpt4_config": checkpoint.get("config"),
    }
    save_trainable(dst, state_dict, metadata)
    shapes, dtypes, params = _describe(state_dict)
    return Converted(dst, "ours", shapes, dtypes, params)


def _read_ours(src: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import SafetensorError

    from mgpt_bridge.checkpoint import load_trainable

    file = src / TRAINABLE_FILE if src.is_dir() else src
    if not file.is_file():
        raise UserError(f"no trainable parameters at {file}")
    try:
        return load_trainable(file)
    except (SafetensorError, ValueError, OSError) as err:
        raise UserError(f"{file} is not a readable safetensors checkpoint: {err}") from err


def _epoch(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def ours_to_minigpt4(
    src: Path, dst: Path, settings: RunSettings, *, preset: str, force: bool = False
) -> Converted:
    """Export our trainable safetensors (file or checkpoint folder) to the upstream ``.pth`` layout."""
    from mgpt_bridge.checkpoint import MINIGPT4_TO_MGPT, export_minigpt4

    _check_out(src, dst, MINIGPT4_SUFFIXES, force)
    state_dict, metadata = _read_ours(src)
    _check_fit({k: tuple(v.shape) for k, v in state_dict.items()}, expected_shapes(settings), src, preset)
    config = dict(metadata.get("minigpt4_config") or {})
    config["mgpt"] = {
        "preset": preset,
        "source_file": src.name,
        "metadata": {k: v for k, v in metadata.items() if k != "minigpt4_config"},
    }
    config["epoch"] = _epoch(metadata.get("epoch"))
    try:
        export_minigpt4(state_dict, dst, config)
    except ValueError as err:
        raise UserError(str(err)) from err
    upstream_names = {ours: theirs for theirs, ours in MINIGPT4_TO_MGPT.items()}
    shapes, dtypes, params = _describe({upstream_names.get(k, k): v for k, v in state_dict.items()})
    return Converted(dst, "minigpt4", shapes, dtypes, params)


def convert(
    src: Path,
    dst: Path,
    settings: RunSettings,
    *,
    preset: str,
    to: Direction | None = None,
    force: bool = False,
) -> Converted:
    """Convert ``src`` → ``dst`` in direction ``to`` (detected from ``src`` when None)."""
    if not src.exists():
        raise UserError(f"no such file or folder: {src}")
    direction = to or detect_direction(src)
    if direction == "ours":
        return minigpt4_to_ours(src, dst, settings, preset=preset, force=force)
    return ours_to_minigpt4(src, dst, settings, preset=preset, force=force)
