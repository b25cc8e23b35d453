"""`mgpt chat IMAGE`: a multi-turn terminal chat about an image, answers streamed as they are generated."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mgpt_cli.options import DeviceOption, decoding_flags, model_flags

HELP = (
    "Chat about IMAGE in the terminal, answers streamed; one message per line.\n\n"
    "Commands: /image PATH, /reset, /quit (or end of input). Works on a pipe, e.g. "
    "printf 'what is it?\\nwhich colour?\\n' | mgpt chat photo.jpg --run RUN --json\n\n"
    "The run's own prompt template renders the whole conversation. Decoding defaults to "
    "MiniGPT-4's demo (sampling, top-p 0.9, repetition penalty 1.05, up to 300 new tokens)."
)


def register(app: typer.Typer) -> None:
    @app.command("chat", help=HELP)
    @model_flags
    @decoding_flags
    def chat(
        image: Annotated[Path, typer.Argument(help="the image to talk about (any format PIL reads)")],
        source: Any, decoding: dict[str, Any],
        device: DeviceOption = "auto",
        seed: Annotated[int | None, typer.Option(
            "--seed", help="re-seed the sampler before every answer (reproducible)")] = None,
        as_json: Annotated[bool, typer.Option(
            "--json", help="one JSON line per answer {turn, user, answer} (for scripts)")] = False,
    ) -> None:
        from mgpt_train.inference.chat import run_chat

        run_chat(source, image, decoding=decoding, device=device, seed=seed, as_json=as_json,
                 stdin=sys.stdin, stdout=sys.stdout, stderr=sys.stderr)
