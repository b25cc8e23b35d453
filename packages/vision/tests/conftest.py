"""Shared fixtures for mgpt_vision tests: a private cache dir and the real Lite0 encoder (built once)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def vision_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mgpt_cache")


@pytest.fixture(autouse=True)
def _private_cache(vision_cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MGPT_CACHE_DIR", str(vision_cache_dir))


@pytest.fixture(scope="session")
def lite0(vision_cache_dir: Path):
    """The default encoder (real ImageNet weights), frozen, 16 tokens."""
    old = os.environ.get("MGPT_CACHE_DIR")
    os.environ["MGPT_CACHE_DIR"] = str(vision_cache_dir)
    try:
        from mgpt_vision import VisionSettings, build_encoder

        return build_encoder(VisionSettings())
    finally:
        if old is None:
            os.environ.pop("MGPT_CACHE_DIR", None)
        else:
            os.environ["MGPT_CACHE_DIR"] = old
