"""`mgpt caption IMAGE...`: caption files, folders and globs with a run's bridge (or the untrained one)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from mgpt_cli.model_options import (
    CheckpointOpt,
    DeviceOpt,
    InstructionOpt,
    MaxNewTokensOpt,
    NumBeamsOpt,
    PresetOpt,
    RepetitionPenaltyOpt,
    RunOpt,
    SampleOpt,
    SetOpt,
    TemperatureOpt,
    TopPOpt,
    decoding_overrides,
    model_source,
)

CAPTION_HELP = (
    "Caption image files, folders and globs: one row each (image, caption, checkpoint, "
    "decoding).\n\n"
    "Unreadable or missing files are reported (and written to OUTPUT.rejects.jsonl) and "
    "skipped. Decoding defaults to the run's [bridge.generation] (greedy for the presets). "
    "Beyond --ray-threshold images the work goes to a Ray Data actor pool (GPUs when "
    "present)."
)


def register(app: typer.Typer) -> None:
    @app.command("caption", help=CAPTION_HELP)
    def caption(
        images: Annotated[
            list[str], typer.Argument(help="image files, folders (searched recursively) or quoted globs")
        ],
        run: RunOpt = None,
        checkpoint: CheckpointOpt = None,
        preset: PresetOpt = "default",
        output: Annotated[
            Path | None,
            typer.Option("--output", "-o", help="write rows to this .jsonl or .csv file (and rejects by it)"),
        ] = None,
        fmt: Annotated[
            str | None, typer.Option("--format", help="jsonl | csv (default: from the --output suffix)")
        ] = None,
        device: DeviceOpt = "auto",
        batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="images per generate call")] = 8,
        engine: Annotated[
            str, typer.Option("--engine", help="auto | local | ray (auto: Ray Data beyond --ray-threshold)")
        ] = "auto",
        ray_threshold: Annotated[int, typer.Option("--ray-threshold", min=0)] = 256,
        instruction: InstructionOpt = None,
        max_new_tokens: MaxNewTokensOpt = None,
        num_beams: NumBeamsOpt = None,
        sample: SampleOpt = None,
        temperature: TemperatureOpt = None,
        top_p: TopPOpt = None,
        repetition_penalty: RepetitionPenaltyOpt = None,
        as_json: Annotated[bool, typer.Option("--json", help="print a JSON list of rows on stdout")] = False,
        set_: SetOpt = None,
    ) -> None:
        """Caption image files, folders and globs: one row each (image, caption, checkpoint, decoding)."""
        from mgpt_train.inference.caption import caption_files

        decoding = decoding_overrides(max_new_tokens=max_new_tokens, num_beams=num_beams, sample=sample,
                                      temperature=temperature, top_p=top_p,
                                      repetition_penalty=repetition_penalty)
        rows: list[dict] = []
        source = model_source(run, checkpoint, preset, set_)
        if source.checkpoint is None:
            typer.echo("note: no checkpoint: captions come from the UNTRAINED bridge", err=True)
        else:
            typer.echo(f"checkpoint: {Path(source.checkpoint).resolve()}", err=True)

        def show(row: dict) -> None:
            if as_json:
                rows.append(row)
            elif output is None:
                typer.echo(f"{row['image']}: {row['caption']}")

        summary = caption_files(
            source, images, output=output, fmt=fmt, device=device, batch_size=batch_size,
            instruction=instruction, decoding=decoding, engine=engine, ray_threshold=ray_threshold,
            progress=sys.stderr.isatty(), on_row=show,
        )
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
        for reject in summary.rejects:
            typer.echo(f"skipped {reject['image_id']}: {reject['reason']}: {reject['detail']}", err=True)
        typer.echo(json.dumps(summary.as_dict()), err=True)
        if summary.captioned == 0:
            raise typer.Exit(1)
