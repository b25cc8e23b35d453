"""`mgpt convert`: MiniGPT-4 ``.pth`` checkpoints ⇄ our trainable safetensors, shapes checked by a preset."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class Target(StrEnum):
    ours = "ours"
    minigpt4 = "minigpt4"


def convert(
    src: Annotated[
        Path, typer.Argument(metavar="IN", help="MiniGPT-4 .pth, or our .safetensors / checkpoint folder")
    ],
    dst: Annotated[Path, typer.Argument(metavar="OUT", help="file to write (.safetensors or .pth)")],
    preset: Annotated[
        str, typer.Option(help="preset whose model the checkpoint must fit (its trainable parameters)")
    ] = "minigpt4_flickr30k",
    to: Annotated[
        Target | None,
        typer.Option(help="ours: MiniGPT-4 .pth → safetensors; minigpt4: back (default: from IN's suffix)"),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="override a setting of the preset: section.key=value (repeatable)"),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite OUT if it exists")] = False,
) -> None:
    """Import an original MiniGPT-4 checkpoint into our format, or export ours to MiniGPT-4's layout.

    Upstream files are read with torch.load(weights_only=True) only; shapes must equal the preset
    model's trainable parameters (built on the meta device, no weights needed).
    """
    from mgpt_cli.convert_checkpoint import convert as run_convert
    from mgpt_train.run_settings import RunSettings

    settings = RunSettings.load(preset, set_)
    done = run_convert(src, dst, settings, preset=preset, to=None if to is None else to.value, force=force)
    layout = "mgpt trainable safetensors" if done.direction == "ours" else "MiniGPT-4 .pth"
    typer.echo(f"wrote {done.path} ({layout}), fits preset {preset!r}: {done.params:,} parameters")
    for name, shape in done.shapes.items():
        typer.echo(f"  {name:<20} {tuple(shape)} {done.dtypes[name]}")


def register(app: typer.Typer) -> None:
    app.command("convert")(convert)
