"""Flags shared by the inference commands (caption, chat, demo, serve): which model, device, decoding."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

RunOpt = Annotated[
    Path | None,
    typer.Option("--run", help="a run directory: its settings and (unless --checkpoint) its best checkpoint "
                 "(highest CIDEr at its last evaluation; else its last epoch)"),
]
CheckpointOpt = Annotated[
    Path | None, typer.Option("--checkpoint", help="a checkpoint folder or trainable .safetensors file")
]
PresetOpt = Annotated[str, typer.Option("--preset", help="preset when no --run is given (e.g. tiny)")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto | cpu | cuda (auto: cuda if torch has a GPU)")]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="override a setting: section.key=value (repeatable)")
]
InstructionOpt = Annotated[
    str | None,
    typer.Option("--instruction", help="prompt with one <ImageHere> (default: the template's first)"),
]
MaxNewTokensOpt = Annotated[int | None, typer.Option("--max-new-tokens", min=1)]
NumBeamsOpt = Annotated[int | None, typer.Option("--num-beams", min=1)]
SampleOpt = Annotated[
    bool | None,
    typer.Option("--sample/--greedy", help="sample, or greedy/beam search (default: the command's)"),
]
TemperatureOpt = Annotated[float | None, typer.Option("--temperature", min=0.01)]
TopPOpt = Annotated[float | None, typer.Option("--top-p", min=0.01, max=1.0)]
RepetitionPenaltyOpt = Annotated[float | None, typer.Option("--repetition-penalty", min=0.01)]


def decoding_overrides(*, max_new_tokens: int | None, num_beams: int | None, sample: bool | None,
                       temperature: float | None, top_p: float | None,
                       repetition_penalty: float | None) -> dict[str, Any]:
    """The decoding flags that were given, as GenerationSettings fields."""
    given = {"max_new_tokens": max_new_tokens, "num_beams": num_beams, "do_sample": sample,
             "temperature": temperature, "top_p": top_p, "repetition_penalty": repetition_penalty}
    return {k: v for k, v in given.items() if v is not None}


def model_source(run: Path | None, checkpoint: Path | None, preset: str, set_: list[str] | None) -> Any:
    """`mgpt_train.inference.resolve_source` from the flags."""
    from mgpt_train.inference.loading import resolve_source
    from mgpt_train.run_settings import parse_set_options

    return resolve_source(run, checkpoint, preset, parse_set_options(set_ or []) or None)
