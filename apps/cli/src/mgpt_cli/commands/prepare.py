"""`mgpt prepare`: write a synthetic Flickr-format set, or check an existing Flickr30k-format folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer

from mgpt_cli.options import JsonOption, PresetOption, flag, settings_flags

HELP = (
    "Write synthetic scenes (--synthetic N) or check a Flickr30k-format folder.\n\n"
    "Checking decodes every image and writes rejects.jsonl and flickr30k_grounded_detail.json into the "
    "folder, then prints a summary. Rejects never fail the command (exit 0); a folder that cannot be "
    "read as Flickr30k format exits 2. A missing --data-dir gets a synthetic set of "
    "data.synthetic_images images (MGPT_DATA__SYNTHETIC_IMAGES)."
)


@settings_flags(
    data_dir=("data.data_dir", flag(Path, "--data-dir", help="Flickr30k-format folder (default: the "
              "preset's data.data_dir)")),
    seed=("data.seed", flag(int, "--seed", help="synthetic set seed")),
    image_size=("data.synthetic_image_size", flag(int, "--image-size", min=32, help="synthetic image side")),
)
def prepare(
    sets: list[str],
    synthetic: Annotated[int | None, typer.Option("--synthetic", min=1, help="write N synthetic scenes "
                         "there first (replaces an earlier synthetic set, never other data)")] = None,
    engine: Annotated[Literal["auto", "ray", "local"], typer.Option(
        "--engine", help="decode with 'ray' (Ray Data tasks), 'local' (this process) or 'auto' (Ray "
        "if running or >= 5000 images)")] = "auto",
    as_json: JsonOption = False,
    preset: PresetOption = "default",
) -> None:
    from mgpt_data.check import format_summary, prepare_data_dir
    from mgpt_train.run_settings import RunSettings

    summary = prepare_data_dir(RunSettings.load(preset, sets).data, synthetic=synthetic, engine=engine,
                               progress=not as_json)
    typer.echo(json.dumps(summary, indent=2) if as_json else format_summary(summary))


def register(app: typer.Typer) -> None:
    app.command("prepare", help=HELP)(prepare)
