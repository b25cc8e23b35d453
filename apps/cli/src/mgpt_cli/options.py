"""Flags several commands share. Named flags are sugar over ``--set section.key=value``; a group of
flags (which model, how to decode) is added to a command by a decorator that hands the command one
value built from them (``sets``, ``source``, ``decoding``)."""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="override any setting: section.key=value (repeatable; values parse as JSON)"),
]
PresetOption = Annotated[str, typer.Option("--preset", help="configs/<name>.toml, or a path to a .toml")]
JsonOption = Annotated[bool, typer.Option("--json", help="print the result as JSON")]
DeviceOption = Annotated[str, typer.Option("--device", help="auto | cpu | cuda")]


def as_sets(sets: list[str] | None, **flags: Any) -> list[str]:
    """``--set`` items followed by the given named flags (``{"train.workers": 2}``) in the same syntax;
    flags that were not given (None) are left out. Later items win."""
    out = list(sets or [])
    for key, value in flags.items():
        if value is not None:
            out.append(f"{key}={json.dumps(str(value) if isinstance(value, Path) else value)}")
    return out


def flag_group(as_name: str, build: Callable[..., Any], params: dict[str, tuple[Any, Any]]) -> Callable:
    """Decorator: add ``params`` (name → (Annotated type, default)) to a command's flags, and call the
    command with ``as_name=build(**their values)`` instead of them."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(command, eval_str=True)
        kept = [p for p in signature.parameters.values() if p.name != as_name]
        added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=default)
                 for name, (kind, default) in params.items()]

        @functools.wraps(command)
        def run(**kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in params}
            return command(**kwargs, **{as_name: build(**values)})

        run.__signature__ = signature.replace(parameters=kept + added)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in kept + added}
        return run

    return decorate


def settings_flags(**flags: tuple[str, Any]) -> Callable:
    """Named flags that set settings: ``name=("train.workers", Annotated[...])`` plus ``--set``; the
    command gets ``sets`` (the ``--set`` syntax, flags last)."""
    keys = {name: key for name, (key, _) in flags.items()}
    params = {name: (kind, None) for name, (_, kind) in flags.items()} | {"set_": (SetOption, None)}
    return flag_group("sets", lambda set_, **given: as_sets(set_, **{keys[k]: v for k, v in given.items()}),
                      params)


def flag(kind: Any, *names: str, **info: Any) -> Any:
    """``Annotated[kind | None, typer.Option(*names, **info)]``: a flag that is None when not given."""
    return Annotated[kind | None, typer.Option(*names, **info)]


def _model_source(run: Path | None, checkpoint: Path | None, preset: str, set_: list[str] | None) -> Any:
    from mgpt_train.inference.loading import resolve_source
    from mgpt_train.run_settings import parse_set_options

    return resolve_source(run, checkpoint, preset, parse_set_options(set_ or []) or None)


#: ``--run`` / ``--checkpoint`` / ``--preset`` / ``--set`` → ``source`` (`mgpt_train.inference.ModelSource`)
model_flags = flag_group("source", _model_source, {
    "run": (flag(Path, "--run", help="a run directory: its settings and (unless --checkpoint) its best "
                 "checkpoint (highest CIDEr at its last evaluation; else its last epoch)"), None),
    "checkpoint": (flag(Path, "--checkpoint", help="a checkpoint folder or a trainable .safetensors"), None),
    "preset": (Annotated[str, typer.Option("--preset", help="preset when no --run is given (e.g. tiny)")],
               "default"),
    "set_": (SetOption, None),
})


def _decoding(**given: Any) -> dict[str, Any]:
    given["do_sample"] = given.pop("sample")
    return {k: v for k, v in given.items() if v is not None}


#: the decoding flags → ``decoding`` (the `GenerationSettings` fields that were given)
decoding_flags = flag_group("decoding", _decoding, {
    "max_new_tokens": (flag(int, "--max-new-tokens", min=1), None),
    "num_beams": (flag(int, "--num-beams", min=1), None),
    "sample": (flag(bool, "--sample/--greedy", help="sample, or greedy/beam search (default: the command's)"),
               None),
    "temperature": (flag(float, "--temperature", min=0.01), None),
    "top_p": (flag(float, "--top-p", min=0.01, max=1.0), None),
    "repetition_penalty": (flag(float, "--repetition-penalty", min=0.01), None),
})
