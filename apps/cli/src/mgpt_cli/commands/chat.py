"""`mgpt chat IMAGE`: a multi-turn terminal chat about an image, answers streamed as they are generated."""

from __future__ import annotations

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

CHAT_HELP = (
    "Chat about IMAGE in the terminal, answers streamed; one message per line.\n\n"
    "Commands: /image PATH, /reset, /quit (or end of input). Works on a pipe, e.g. "
    "printf 'what is it?\\nwhich colour?\\n' | mgpt chat photo.jpg --run RUN --json\n\n"
    "The run's own prompt template renders the whole conversation. Decoding defaults to "
    "MiniGPT-4's demo (sampling, top-p 0.9, repetition penalty 1.05, up to 300 new tokens)."
)


def register(app: typer.Typer) -> None:
    @app.command("chat", help=CHAT_HELP)
    def chat(
        image: Annotated[Path, typer.Argument(help="the image to talk about (any format PIL reads)")],
        run: RunOpt = None,
        checkpoint: CheckpointOpt = None,
        preset: PresetOpt = "default",
        device: DeviceOpt = "auto",
        max_new_tokens: MaxNewTokensOpt = None,
        num_beams: NumBeamsOpt = None,
        sample: SampleOpt = None,
        temperature: TemperatureOpt = None,
        top_p: TopPOpt = None,
        repetition_penalty: RepetitionPenaltyOpt = None,
        seed: Annotated[
            int | None, typer.Option("--seed", help="re-seed the sampler before every answer (reproducible)")
        ] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="one JSON line per answer {turn, user, answer} (for scripts)")
        ] = False,
        set_: SetOpt = None,
    ) -> None:
        """Chat about IMAGE in the terminal, answers streamed; one message per line."""
        from mgpt_bridge import GenerationSettings
        from mgpt_train.inference.chat import COMMANDS_HELP, ChatSession, run_terminal_chat
        from mgpt_train.inference.loading import InferenceModel, with_decoding

        decoding = with_decoding(GenerationSettings.minigpt4_demo(), **decoding_overrides(
            max_new_tokens=max_new_tokens, num_beams=num_beams, sample=sample, temperature=temperature,
            top_p=top_p, repetition_penalty=repetition_penalty))
        source = model_source(run, checkpoint, preset, set_)
        model = InferenceModel(source, device=device)
        session = ChatSession(model, decoding=decoding, seed=seed)
        session.load_image(image)
        interactive = sys.stdin.isatty()
        if interactive:
            typer.echo(f"chatting about {image} with {model.name} on {model.device}. {COMMANDS_HELP}",
                       err=True)
        run_terminal_chat(session, sys.stdin, sys.stdout, sys.stderr, interactive=interactive,
                          as_json=as_json)
