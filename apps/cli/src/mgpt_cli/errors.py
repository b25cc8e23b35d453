"""Exceptions → exit codes, in one place: bad input is one ``error: ...`` line and exit 2."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import typer

#: Raised by package code for input a user can fix (settings, paths, data, an unreachable cluster).
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, FileExistsError,
                                                NotADirectoryError, IsADirectoryError, PermissionError,
                                                ConnectionError)
USER_ERROR_EXIT = 2
RUN_FAILED_EXIT = 1


def _run_failed_types() -> tuple[type[BaseException], ...]:
    try:
        from ray.train import TrainingFailedError
    except ImportError:  # pragma: no cover - ray is a dependency of mgpt-train
        return ()
    return (TrainingFailedError,)


def exit_code_for(error: BaseException) -> int | None:
    """2 for a user error, 1 for a failed training run, None for a bug (let it raise)."""
    if isinstance(error, USER_ERRORS):
        return USER_ERROR_EXIT
    if "ray" in sys.modules and isinstance(error, _run_failed_types()):
        return RUN_FAILED_EXIT
    return None


def mapped_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a typer command: known errors print one line and exit with their code."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except Exception as error:
            code = exit_code_for(error)
            if code is None:
                raise
            if os.environ.get("MGPT_LOG_LEVEL", "").upper() == "DEBUG":
                logging.getLogger("mgpt_cli").exception("command failed")
            prefix = "training failed: " if code == RUN_FAILED_EXIT else ""
            typer.echo(f"error: {prefix}{error}", err=True)
            raise typer.Exit(code) from None

    return run
