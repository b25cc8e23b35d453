"""`mgpt curate`: MiniGPT-4's stage-2 data generation (describe, "Continue" when short, filter) → a folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from mgpt_cli.model_options import (
    CheckpointOpt,
    DeviceOpt,
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

CURATE_HELP = (
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
    @app.command("curate", help=CURATE_HELP)
    def curate_command(
        output: Annotated[Path, typer.Option("--output", "-o", help="the folder to write (absent or empty)")],
        run: RunOpt = None,
        checkpoint: CheckpointOpt = None,
        preset: PresetOpt = "default",
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
        device: DeviceOpt = "auto",
        max_new_tokens: MaxNewTokensOpt = None,
        num_beams: NumBeamsOpt = None,
        sample: SampleOpt = None,
        temperature: TemperatureOpt = None,
        top_p: TopPOpt = None,
        repetition_penalty: RepetitionPenaltyOpt = None,
        as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
        set_: SetOpt = None,
    ) -> None:
        """Describe every image with a model, filter, write a Flickr30k-format folder (see CURATE_HELP)."""
        from mgpt_train.curate import CurateOptions, curate

        decoding = decoding_overrides(max_new_tokens=max_new_tokens, num_beams=num_beams, sample=sample,
                                      temperature=temperature, top_p=top_p,
                                      repetition_penalty=repetition_penalty)
        source = model_source(run, checkpoint, preset, set_)
        if source.checkpoint is None:
            typer.echo("note: no checkpoint: descriptions come from the UNTRAINED bridge", err=True)
        defaults = CurateOptions()
        options = CurateOptions(
            instructions=tuple(instruction) if instruction else defaults.instructions,
            continue_prompt=continue_prompt, min_tokens=min_tokens, splits=tuple(split) if split else None,
            max_images=max_images, batch_size=batch_size, seed=seed, decoding=decoding, filter=not no_filter)
        summary = curate(source, output, data_dir=data_dir, options=options, device=device,
                         overwrite=overwrite, progress=sys.stderr.isatty())
        if as_json:
            typer.echo(json.dumps(summary.as_dict(), indent=2))
        else:
            typer.echo(f"kept {summary.kept} of {summary.images} images ({summary.continued} continued); "
                       f"rejected {summary.rejected or 'none'}")
            typer.echo(f"  folder: {summary.output_dir}")
            for name, path in summary.paths.items():
                if name != "folder":
                    typer.echo(f"  {name}: {path}")
