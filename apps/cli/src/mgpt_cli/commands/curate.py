"""`mgpt curate`: MiniGPT-4's stage-2 data generation (describe, "Continue" when short, filter) → a folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mgpt_cli.options import DeviceOption, JsonOption, decoding_flags, model_flags

HELP = (
    "Generate a detailed description of every image with a model (MiniGPT-4's stage-2 data "
    "generation) and write the kept ones as a Flickr30k-format folder.\n\n"
    "Each image gets an instruction from the pool (MiniGPT-4's four stage-2 instructions unless "
    "--instruction is given); an answer shorter than --min-tokens gets a second turn, 'Continue', "
    "appended. A rule-based filter rejects empty, refusal/error, non-English, repetitive, fragmentary "
    "and too-long texts. OUTPUT gets flickr_annotations_30k.csv + flickr30k-images/ (so `mgpt prepare` "
    "and `mgpt train --data-dir OUTPUT` read it), upstream's filter_cap.json, curate_rejects.jsonl "
    "and curate_summary.json. Decoding defaults to MiniGPT-4's demo (sampling, top-p 0.9, 300 new "
    "tokens)."
)


def register(app: typer.Typer) -> None:
    @app.command("curate", help=HELP)
    @model_flags
    @decoding_flags
    def curate_command(
        output: Annotated[Path, typer.Option("--output", "-o", help="the folder to write (absent or empty)")],
        source: Any, decoding: dict[str, Any],
        data_dir: Annotated[Path | None, typer.Option(
            "--data-dir", help="Flickr30k-format folder to describe (default: the model's data.data_dir)"),
        ] = None,
        split: Annotated[list[str] | None, typer.Option(
            "--split", help="only these splits (repeatable; default: all, each image keeps its split)"),
        ] = None,
        max_images: Annotated[int | None, typer.Option("--max-images", min=1)] = None,
        instruction: Annotated[list[str] | None, typer.Option(
            "--instruction", help="replace the instruction pool (repeatable; each with one <ImageHere>)"),
        ] = None,
        min_tokens: Annotated[int, typer.Option(
            "--min-tokens", min=0, help="ask 'Continue' when the answer has fewer LM tokens")] = 80,
        continue_prompt: Annotated[str, typer.Option("--continue-prompt")] = "Continue",
        no_filter: Annotated[bool, typer.Option(
            "--no-filter", help="keep every non-empty text (post-filter elsewhere)")] = False,
        batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 8,
        seed: Annotated[int, typer.Option("--seed", help="instruction choice and sampling")] = 0,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="replace a non-empty OUTPUT")] = False,
        device: DeviceOption = "auto",
        as_json: JsonOption = False,
    ) -> None:
        from mgpt_train.curate import CurateOptions, curate

        if source.checkpoint is None:
            typer.echo("note: no checkpoint: descriptions come from the UNTRAINED bridge", err=True)
        options = CurateOptions(
            continue_prompt=continue_prompt, min_tokens=min_tokens, splits=tuple(split) if split else None,
            max_images=max_images, batch_size=batch_size, seed=seed, decoding=decoding, filter=not no_filter,
            **({"instructions": tuple(instruction)} if instruction else {}))
        summary = curate(source, output, data_dir=data_dir, options=options, device=device,
                         overwrite=overwrite, progress=sys.stderr.isatty())
        typer.echo(json.dumps(summary.as_dict(), indent=2) if as_json else summary.format())
