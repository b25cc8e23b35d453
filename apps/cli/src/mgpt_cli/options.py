"""Options several commands share; named flags are sugar over ``--set section.key=value``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="override any setting: section.key=value (repeatable; values parse as JSON)"),
]
PresetOption = Annotated[str, typer.Option("--preset", help="configs/<name>.toml, or a path to a .toml")]


def as_sets(sets: list[str] | None, **flags: Any) -> list[str]:
    """``--set`` items followed by the given named flags (``{"train.workers": 2}``) in the same syntax;
    flags that were not given (None) are left out. Later items win."""
    out = list(sets or [])
    for key, value in flags.items():
        if value is not None:
            out.append(f"{key}={json.dumps(str(value) if isinstance(value, Path) else value)}")
    return out
