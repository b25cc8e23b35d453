"""Load the resolved settings of an existing run directory (``settings.json``), with overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def load_run(run_dir: Path, overrides: dict[str, Any] | None = None) -> Any:
    """``RunSettings`` of ``run_dir`` (exits with a clear message when it is not a run directory)."""
    from pydantic import ValidationError

    from mgpt_train.run_settings import RunSettings, deep_merge
    from mgpt_train.rundir import SETTINGS_FILE, read_json

    path = Path(run_dir) / SETTINGS_FILE
    if not path.is_file():
        typer.echo(
            f"error: {run_dir} is not a run directory (no {SETTINGS_FILE}); "
            "pass the folder `mgpt train` wrote under runs/",
            err=True,
        )
        raise typer.Exit(2)
    try:
        return RunSettings.from_json_dict(deep_merge(read_json(path), overrides or {}))
    except ValidationError as e:
        typer.echo(f"error: invalid settings:\n{e}", err=True)
        raise typer.Exit(2) from e
