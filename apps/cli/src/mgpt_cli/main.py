"""The `mgpt` command line: every module in `mgpt_cli.commands` registers its own command."""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import sys

import typer

from mgpt_cli import commands

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


def main() -> None:
    """Entry point: offline by default, logging to stderr, then dispatch."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not any(arg.startswith("--address") for arg in sys.argv):
        # Local Ray: workers inherit this venv. (Ray 2.60 would otherwise relaunch them through `uv run`
        # in an uploaded copy of the repo, which hangs for minutes.) On a cluster the uv hook is kept,
        # so remote workers get the job's environment.
        os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    logging.basicConfig(
        level=os.environ.get("MGPT_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    app()


_register_commands()
