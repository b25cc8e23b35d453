"""The `mgpt` command line: every module in `mgpt_cli.commands` registers its own command."""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil

import typer

from mgpt_cli import commands
from mgpt_cli.errors import mapped_errors

app = typer.Typer(
    name="mgpt",
    help="Fine-tune MiniGPT-4-style vision-language models for image captioning.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_commands() -> None:
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(app)
    for command in app.registered_commands:  # one error → exit-code mapping for every command
        command.callback = mapped_errors(command.callback)


def main() -> None:
    """Entry point: mgpt's process environment (offline, quiet Ray), logging to stderr, then dispatch."""
    from mgpt_data.ray_runtime import apply_process_env

    apply_process_env()
    logging.basicConfig(
        level=os.environ.get("MGPT_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    app()


_register_commands()
