"""`mgpt convert`: MiniGPT-4 ``.pth`` ⇄ our trainable safetensors (``mgpt_bridge.convert_checkpoint``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mgpt_cli.options import SetOption


def convert(
    src: Annotated[
        Path, typer.Argument(metavar="IN", help="MiniGPT-4 .pth, or our .safetensors / checkpoint folder")
    ],
    dst: Annotated[Path, typer.Argument(metavar="OUT", help="file to write (.safetensors or .pth)")],
    preset: Annotated[
        str, typer.Option(help="preset whose model the checkpoint must fit (its trainable parameters)")
    ] = "minigpt4_flickr30k",
    to: Annotated[
        str | None,
        typer.Option(
            metavar="[ours|minigpt4]",
            help="ours: MiniGPT-4 .pth → safetensors; minigpt4: back (default: from IN's suffix)",
        ),
    ] = None,
    set_: SetOption = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite OUT if it exists")] = False,
) -> None:
    """Import an original MiniGPT-4 checkpoint into our format, or export ours to MiniGPT-4's layout.

    Upstream files are read with torch.load(weights_only=True) only; the tensors must fit the preset
    model's trainable parameters (built on the meta device, no weights needed). What is left out
    (buffers, optimizer, scaler, config) is listed, with the reason.
    """
    # the package is imported here, not at module level: `mgpt --help` must not load torch
    from mgpt_bridge import Direction, convert_checkpoint
    from mgpt_train.run_settings import RunSettings

    settings = RunSettings.load(preset, set_)
    done = convert_checkpoint(src, dst, settings.vision, settings.bridge, to=to, force=force,
                              target=f"preset {preset!r}")
    layout = "mgpt trainable safetensors" if done.direction is Direction.ours else "MiniGPT-4 .pth"
    typer.echo(f"wrote {done.dst} ({layout}; {done.layout}), fits preset {preset!r}: "
               f"{done.params:,} parameters")
    for line in done.report():
        typer.echo(line)


def register(app: typer.Typer) -> None:
    app.command("convert")(convert)
