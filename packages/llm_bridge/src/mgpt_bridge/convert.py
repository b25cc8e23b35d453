"""``convert_checkpoint``: upstream MiniGPT-4 ``.pth`` ⇄ our trainable safetensors, checked against a model.

The target model is the one ``build_vlm(vision, bridge)`` builds; its trainable shapes come from a
meta-device build (no weights, about a second), so a 7B/13B recipe is checked on any machine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError

from .checkpoint import TRAIN_STATE_FILE, load_trainable, save_trainable, trainable_file
from .minigpt4_interop import (
    CheckpointError,
    Ignored,
    examples,
    export_minigpt4,
    import_minigpt4,
    is_lora,
)
from .model import expected_trainable_shapes
from .settings import BridgeSettings

if TYPE_CHECKING:
    from mgpt_vision import VisionSettings

logger = logging.getLogger(__name__)

MINIGPT4_SUFFIXES = (".pth", ".pt")


class Direction(StrEnum):
    """Which way to convert: ``ours`` (MiniGPT-4 ``.pth`` → our safetensors) or ``minigpt4`` (back)."""

    ours = "ours"
    minigpt4 = "minigpt4"


@dataclass(frozen=True)
class ConvertResult:
    """What a conversion wrote, what it left out (and why), and what to know about the result."""

    src: Path
    dst: Path
    direction: Direction
    layout: str
    shapes: dict[str, tuple[int, ...]]  # the tensors written, by the names written
    dtypes: dict[str, str]
    params: int
    ignored: tuple[Ignored, ...]
    notes: tuple[str, ...] = ()

    def report(self) -> list[str]:
        """Human-readable lines: tensors written, then what was ignored and why, then notes."""
        lines = [f"  {name:<24} {shape} {self.dtypes[name]}" for name, shape in self.shapes.items()]
        lines += [f"ignored: {item.describe()}" for item in self.ignored]
        return lines + [f"note: {note}" for note in self.notes]


def detect_direction(src: Path) -> Direction:
    """``.pth``/``.pt`` → ours; ``.safetensors`` or a checkpoint folder → minigpt4."""
    if src.is_dir() or src.suffix == ".safetensors":
        return Direction.minigpt4
    if src.suffix in MINIGPT4_SUFFIXES:
        return Direction.ours
    raise CheckpointError(
        f"cannot tell the direction from {src.name!r}: pass to=ours (--to ours) for a MiniGPT-4 .pth, "
        "or to=minigpt4 (--to minigpt4) for our .safetensors or checkpoint folder"
    )


def _direction(value: Direction | str) -> Direction:
    try:
        return Direction(value)
    except ValueError:
        raise CheckpointError(
            f"unknown direction {value!r}: choose {' or '.join(d.value for d in Direction)}"
        ) from None


def _hint(name: str, found: tuple[int, ...], expected: tuple[int, ...]) -> str:
    if not name.endswith("projector.weight") and not name.endswith("llama_proj.weight"):
        return ""
    if len(found) == len(expected) == 2 and found[0] != expected[0]:
        return " (another LLM width: Vicuna-13B is 5120, Vicuna-7B / Llama-2-7B 4096)"
    if len(found) == len(expected) == 2 and found[1] != expected[1]:
        return (
            " (another image-token width: the Q-Former gives 768; without it (Llama-2 variant, MiniGPT-v2)"
            " 4 grouped patches give 5632: vision.encoder=blip2_noqformer)"
        )
    return ""


def check_fits(
    found: Mapping[str, tuple[int, ...]],
    expected: Mapping[str, tuple[int, ...]],
    *,
    source: str,
    target: str,
    display: Callable[[str], str] = str,
) -> None:
    """Raise :class:`CheckpointError` with a short message unless ``found`` (our names → shapes) are
    exactly the trainable tensors ``expected``; messages show keys through ``display`` (e.g. upstream's)."""
    unexpected = [k for k in found if k not in expected]
    lora = [k for k in unexpected if is_lora(k)]
    if lora and not any(is_lora(k) for k in expected):
        rank = (
            found[next(k for k in lora if ".lora_A." in k)][0] if any(".lora_A." in k for k in lora) else "?"
        )
        raise CheckpointError(
            f"{source} holds {len(lora)} LoRA tensors (e.g. {examples(map(display, lora))}) but {target} "
            f"trains no LoRA: set bridge.lm_tuning=lora, bridge.lora_r={rank}"
        )
    if unexpected:
        linear = "projector.weight" in unexpected and any(k.startswith("projector.") for k in expected)
        raise CheckpointError(
            f"{source} holds {len(unexpected)} tensors {target} does not train "
            f"(e.g. {examples(map(display, unexpected))})"
            + (": its projector is linear, set bridge.projector=linear" if linear else "")
        )
    missing = [k for k in expected if k not in found]
    if missing:
        raise CheckpointError(
            f"{target} trains {len(missing)} tensors {source} lacks (e.g. {examples(missing)})"
        )
    wrong = [k for k in expected if tuple(found[k]) != tuple(expected[k])]
    if wrong:
        k = wrong[0]
        more = f" (+{len(wrong) - 1} more mismatched)" if len(wrong) > 1 else ""
        raise CheckpointError(
            f"{source} does not fit {target}: {display(k)} is {tuple(found[k])}, the model's is "
            f"{tuple(expected[k])}{more}{_hint(k, tuple(found[k]), tuple(expected[k]))}"
        )


def _check_out(src: Path, dst: Path, suffixes: tuple[str, ...], force: bool) -> None:
    if dst.resolve() == src.resolve():
        raise CheckpointError("the output must differ from the input")
    if dst.suffix not in suffixes:
        raise CheckpointError(f"output {dst.name!r} should end with {' or '.join(suffixes)}")
    if dst.exists() and not force:
        raise FileExistsError(f"{dst} exists; pass force=True (--force) to overwrite it")


def _describe(sd: Mapping[str, torch.Tensor]) -> tuple[dict[str, tuple[int, ...]], dict[str, str], int]:
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    dtypes = {k: str(v.dtype).removeprefix("torch.") for k, v in sd.items()}
    return shapes, dtypes, sum(v.numel() for v in sd.values())


Shapes = Mapping[str, tuple[int, ...]]


def _import(src: Path, dst: Path, bridge: BridgeSettings, expected: Shapes, target: str) -> ConvertResult:
    imported = import_minigpt4(src)
    names = imported.upstream_names
    found = {k: tuple(v.shape) for k, v in imported.state_dict.items()}
    check_fits(found, expected, source=src.name, target=target, display=lambda k: names.get(k, k))
    notes: list[str] = []
    if any(is_lora(k) for k in found):
        alpha = imported.lora_alpha
        if alpha is not None and alpha != bridge.lora_alpha:
            raise CheckpointError(
                f"{src.name}'s LoRA was trained with lora_alpha {alpha}, the settings use "
                f"{bridge.lora_alpha} (another scale alpha/r): set bridge.lora_alpha={alpha}"
            )
        if alpha is None:
            notes.append(f"the file does not record lora_alpha: the settings' {bridge.lora_alpha} applies")
    metadata = {
        "source": "minigpt4",
        "source_file": src.name,
        "epoch": imported.epoch,
        "target": target,
        "minigpt4_layout": imported.layout,
        "minigpt4_config": imported.config,
        "ignored": [item.describe() for item in imported.ignored],
    }
    save_trainable(dst, imported.state_dict, metadata)
    shapes, dtypes, params = _describe(imported.state_dict)
    return ConvertResult(
        src, dst, Direction.ours, imported.layout, shapes, dtypes, params, imported.ignored, tuple(notes)
    )


def _epoch(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _export_config(
    metadata: dict[str, Any],
    vision: VisionSettings,
    bridge: BridgeSettings,
    lora: bool,
    src: Path,
    target: str,
) -> dict[str, Any]:
    """The ``config`` entry: the imported upstream config when there is one, else upstream's model keys."""
    config = dict(metadata.get("minigpt4_config") or {})
    model_cfg = dict(config.get("model") or {})
    if "arch" not in model_cfg:
        grouped = vision.encoder == "blip2_noqformer"
        model_cfg["arch"] = "minigpt_v2" if grouped and lora else "minigpt4"
        if model_cfg["arch"] == "minigpt4":
            model_cfg["has_qformer"] = not grouped
    if lora:
        model_cfg.update(lora_r=bridge.lora_r, lora_alpha=bridge.lora_alpha)
    config["model"] = model_cfg
    carried = {k: v for k, v in metadata.items() if k not in ("minigpt4_config", "ignored")}
    config["mgpt"] = {"target": target, "source_file": src.name, "metadata": carried}
    return config


def _export(
    src: Path, dst: Path, vision: VisionSettings, bridge: BridgeSettings, expected: Shapes, target: str
) -> ConvertResult:
    file = trainable_file(src)
    if not file.is_file():
        raise FileNotFoundError(f"no trainable parameters at {file}")
    try:
        state_dict, metadata = load_trainable(file)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{file.name} is not a readable safetensors checkpoint: {err}") from err
    check_fits({k: tuple(v.shape) for k, v in state_dict.items()}, expected, source=file.name, target=target)
    lora = any(is_lora(k) for k in state_dict)
    config = _export_config(metadata, vision, bridge, lora, src, target)
    epoch = _epoch(metadata.get("epoch"))
    notes = ["no buffers written: upstream's model computes position_ids / rotary inv_freq itself"]
    if epoch is None:
        notes.append("the source records no epoch: wrote epoch 0")
    ignored: list[Ignored] = []
    if src.is_dir() and (src / TRAIN_STATE_FILE).is_file():
        ignored.append(
            Ignored(
                TRAIN_STATE_FILE,
                "our optimizer moments, RNG and step are not carried (upstream orders parameters its "
                "own way); the file gets an AdamW state with upstream's groups and no moments",
            )
        )
    model_sd = export_minigpt4(state_dict, dst, config, epoch=epoch or 0)
    shapes, dtypes, params = _describe(model_sd)
    layout = str(config["model"].get("arch")) + (
        f" with {sum(map(is_lora, model_sd))} LoRA tensors" if lora else ""
    )
    logger.info("wrote MiniGPT-4 checkpoint %s (%s, epoch %s)", dst, layout, epoch or 0)
    for item in ignored:
        logger.info("%s: ignored %s", src.name, item.describe())
    return ConvertResult(
        src, dst, Direction.minigpt4, layout, shapes, dtypes, params, tuple(ignored), tuple(notes)
    )


def convert_checkpoint(
    src: str | Path,
    dst: str | Path,
    vision: VisionSettings,
    bridge: BridgeSettings,
    *,
    to: Direction | str | None = None,
    force: bool = False,
    target: str = "the target model",
) -> ConvertResult:
    """Convert ``src`` → ``dst`` (direction ``to``, else from ``src``'s suffix) for the model that
    ``vision`` + ``bridge`` build; ``target`` names that model in messages (e.g. ``"preset 'tiny'"``).

    Raises ``FileNotFoundError`` / ``FileExistsError`` / :class:`CheckpointError` (a ``ValueError``)
    with one-line messages. Ignored parts are in the result (and logged), never dropped silently.
    """
    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise FileNotFoundError(f"no such file or folder: {src}")
    direction = _direction(to) if to is not None else detect_direction(src)
    suffixes = (".safetensors",) if direction is Direction.ours else MINIGPT4_SUFFIXES
    _check_out(src, dst, suffixes, force)
    expected = expected_trainable_shapes(vision, bridge)
    if direction is Direction.ours:
        return _import(src, dst, bridge, expected, target)
    return _export(src, dst, vision, bridge, expected, target)
