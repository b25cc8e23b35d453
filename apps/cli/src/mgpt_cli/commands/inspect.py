"""`mgpt inspect`: what a preset builds — encoder, projector, LM, image tokens, parameters, memory."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from mgpt_cli.options import PresetOption, SetOption


def inspect(
    preset: PresetOption = "default",
    meta: Annotated[bool, typer.Option(
        "--meta", help="build on the meta device: shapes only, no weights, seconds")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    set_: SetOption = None,
    device: Annotated[str, typer.Option(help="device for a real (non --meta) build")] = "cpu",
    plan_gpus: Annotated[int | None, typer.Option(
        "--plan-gpus", min=1, help="add the per-GPU training memory (weights, grads, AdamW) of frozen / LoRA "
        "/ full LM tuning under ddp vs fsdp over this many GPUs")] = None,
) -> None:
    """Print the model a preset builds: encoder, LM, projector, trainable parameters, weight memory."""
    from mgpt_bridge import format_report, inspect_model
    from mgpt_train.run_settings import RunSettings

    settings = RunSettings.load(preset, set_)
    report = inspect_model(settings.vision, settings.bridge, meta=meta, device=device, preset=preset,
                           plan_gpus=plan_gpus)
    typer.echo(json.dumps(report, indent=2) if as_json else format_report(report))


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect)
