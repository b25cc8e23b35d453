"""Where mgpt keeps caches (converted weights, features)."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "MGPT_CACHE_DIR"


def cache_dir() -> Path:
    """Return ``$MGPT_CACHE_DIR`` or ``~/.cache/mgpt``, creating it on demand."""
    raw = os.environ.get(ENV_VAR)
    path = Path(raw).expanduser() if raw else Path.home() / ".cache" / "mgpt"
    path.mkdir(parents=True, exist_ok=True)
    return path
