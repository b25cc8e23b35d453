"""`mgpt inspect`: what a preset builds — encoder, projector, LM, image tokens, parameters, memory."""

from __future__ import annotations

import json
from typing import Annotated

import typer


def inspect(
    preset: Annotated[str, typer.Option(help="preset name in configs/ or a path to a .toml")] = "default",
    meta: Annotated[
        bool, typer.Option("--meta", help="build on the meta device: shapes only, no weights, seconds")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="override a setting: section.key=value (repeatable)"),
    ] = None,
    device: Annotated[str, typer.Option(help="device for a real (non --meta) build")] = "cpu",
) -> None:
    """Print the model a preset builds: encoder, LM, projector, trainable parameters, weight memory."""
    from mgpt_cli.inspect_format import format_report
    from mgpt_cli.inspect_model import UserError, build_model, describe, load_settings

    try:
        settings = load_settings(preset, set_)
        model = build_model(settings, meta=meta, device=device)
        report = describe(model, settings, preset=preset, meta=meta)
    except UserError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(json.dumps(report, indent=2) if as_json else format_report(report))


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect)
