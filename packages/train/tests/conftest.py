"""Fixtures of mgpt_train's tests: the test preset and one tiny synthetic data set per session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

PRESET = Path(__file__).parent / "configs" / "tiny_test.toml"


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mgpt_data import write_synthetic_scenes

    return write_synthetic_scenes(tmp_path_factory.mktemp("data") / "scenes", 20, seed=0, image_size=64,
                                  progress=False)


@pytest.fixture(scope="session")
def make_settings(tiny_data_dir: Path):
    """``make_settings(output_dir, train={...}, ...)`` → RunSettings from the test preset."""
    from mgpt_train.run_settings import RunSettings

    def make(output_dir: Path, **sections: dict[str, Any]):
        overrides: dict[str, Any] = {"data": {"data_dir": str(tiny_data_dir)}}
        for name, values in sections.items():
            overrides[name] = {**overrides.get(name, {}), **values}
        overrides["train"] = {"output_dir": str(output_dir), **overrides.get("train", {})}
        return RunSettings.load(PRESET, overrides)

    return make
