"""`mgpt caption IMAGE...`: caption files, folders and globs with a run's bridge (or the untrained one)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mgpt_cli.options import DeviceOption, decoding_flags, model_flags

HELP = (
    "Caption image files, folders and globs: one row each (image, caption, checkpoint, decoding).\n\n"
    "Unreadable or missing files are reported (and written to OUTPUT.rejects.jsonl) and skipped. "
    "Decoding defaults to the run's [bridge.generation] (greedy for the presets). Beyond "
    "--ray-threshold images the work goes to a Ray Data actor pool (GPUs when present)."
)


def register(app: typer.Typer) -> None:
    @app.command("caption", help=HELP)
    @model_flags
    @decoding_flags
    def caption(
        images: Annotated[list[str], typer.Argument(
            help="image files, folders (searched recursively) or quoted globs")],
        source: Any, decoding: dict[str, Any],
        output: Annotated[Path | None, typer.Option(
            "--output", "-o", help="write rows to this .jsonl or .csv file (and rejects by it)")] = None,
        fmt: Annotated[str | None, typer.Option(
            "--format", help="jsonl | csv (default: from the --output suffix)")] = None,
        device: DeviceOption = "auto",
        batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="images per generate call")] = 8,
        engine: Annotated[str, typer.Option(
            "--engine", help="auto | local | ray (auto: Ray Data beyond --ray-threshold)")] = "auto",
        ray_threshold: Annotated[int, typer.Option("--ray-threshold", min=0)] = 256,
        instruction: Annotated[str | None, typer.Option(
            "--instruction", help="prompt with one <ImageHere> (default: the template's first)")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print a JSON list of rows on stdout")] = False,
    ) -> None:
        from mgpt_train.inference.caption import caption_files

        typer.echo("note: no checkpoint: captions come from the UNTRAINED bridge" if source.checkpoint is None
                   else f"checkpoint: {Path(source.checkpoint).resolve()}", err=True)
        rows: list[dict] = []
        show = rows.append if as_json else (lambda row: typer.echo(f"{row['image']}: {row['caption']}"))
        summary = caption_files(
            source, images, output=output, fmt=fmt, device=device, batch_size=batch_size,
            instruction=instruction, decoding=decoding, engine=engine, ray_threshold=ray_threshold,
            progress=sys.stderr.isatty(), on_row=show if as_json or output is None else None)
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
        for reject in summary.rejects:
            typer.echo(f"skipped {reject['image_id']}: {reject['reason']}: {reject['detail']}", err=True)
        typer.echo(json.dumps(summary.as_dict()), err=True)
        if summary.captioned == 0:
            raise typer.Exit(1)
