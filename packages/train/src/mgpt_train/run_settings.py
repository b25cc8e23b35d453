"""`RunSettings`: the five package settings in one model, from preset → env → CLI flags.

Priority (highest wins): ``overrides`` (CLI flags) > environment (``MGPT_<SECTION>__<KEY>``, nested
with ``__``) > the TOML preset ``configs/<preset>.toml`` (tables ``[vision]``, ``[bridge]``,
``[bridge.template]``, ``[data]``, ``[train]``, ``[eval]``) > each package's defaults.
"""

from __future__ import annotations

import contextvars
import logging
import os
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from mgpt_bridge import BridgeSettings
from mgpt_data import DataSettings
from mgpt_eval.settings import EvalSettings
from mgpt_train.settings import TrainSettings
from mgpt_vision.settings import VisionSettings

logger = logging.getLogger(__name__)

CONFIGS_ENV_VAR = "MGPT_CONFIGS_DIR"
SECTIONS = ("vision", "bridge", "data", "train", "eval")

# The preset file of the `load_run_settings` call in progress (sources are built per class, not per call).
_PRESET_FILE: contextvars.ContextVar[Path | None] = contextvars.ContextVar("mgpt_preset_file", default=None)


class RunSettings(BaseSettings):
    """Everything one run needs; ``model_dump(mode="json")`` is what ``settings.json`` holds."""

    model_config = SettingsConfigDict(env_prefix="MGPT_", env_nested_delimiter="__", extra="forbid")

    vision: VisionSettings = Field(default_factory=VisionSettings)
    bridge: BridgeSettings = Field(default_factory=BridgeSettings)
    data: DataSettings = Field(default_factory=DataSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        preset = _PRESET_FILE.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if preset is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=preset))
        return tuple(sources)

    def to_json_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (``settings.json``; what Ray workers receive)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> RunSettings:
        """Rebuild from `to_json_dict` output; every key is given, so the environment cannot change it."""
        return cls(**data)

    @classmethod
    def from_run_dir(cls, run_dir: Path | str) -> RunSettings:
        """The settings a run was trained with (``RUN_DIR/settings.json``)."""
        from mgpt_train.rundir import SETTINGS_FILE, read_json

        path = Path(run_dir) / SETTINGS_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{run_dir} is not a run directory (no {SETTINGS_FILE}); pass the folder `mgpt train` wrote"
            )
        return cls.from_json_dict(read_json(path))

    def with_absolute_paths(self) -> RunSettings:
        """A copy whose file and folder settings are absolute (Ray workers run in another folder)."""
        data = self.to_json_dict()
        for section, key in (("data", "data_dir"), ("train", "output_dir"), ("vision", "weights_path"),
                             ("bridge", "lm_path"), ("eval", "spice_jars"), ("eval", "chair_instances")):
            value = data[section].get(key)
            if value is not None:
                data[section][key] = str(Path(value).expanduser().resolve())
        return RunSettings.from_json_dict(data)


def find_configs_dir(start: Path | None = None) -> Path:
    """``$MGPT_CONFIGS_DIR``, else the first ``configs/`` folder in the CWD or one of its parents."""
    env = os.environ.get(CONFIGS_ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"{CONFIGS_ENV_VAR}={env} is not a directory")
        return path
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "configs").is_dir():
            return folder / "configs"
    raise FileNotFoundError(
        f"no configs/ folder in {here} or its parents; run from the repository or set {CONFIGS_ENV_VAR}"
    )


def resolve_preset(preset: str | Path, configs_dir: Path | str | None = None) -> Path:
    """A preset name (``tiny`` → ``configs/tiny.toml``) or a path to a ``.toml`` file."""
    as_path = Path(preset).expanduser()
    if as_path.suffix == ".toml" or as_path.is_file():
        if not as_path.is_file():
            raise FileNotFoundError(f"preset file {as_path} does not exist")
        return as_path.resolve()
    folder = Path(configs_dir) if configs_dir is not None else find_configs_dir()
    path = folder / f"{preset}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.toml"))
        raise FileNotFoundError(f"no preset {preset!r} in {folder} (known: {', '.join(known) or 'none'})")
    return path.resolve()


def load_run_settings(
    preset: str | Path | None = "default",
    overrides: dict[str, Any] | None = None,
    configs_dir: Path | str | None = None,
) -> RunSettings:
    """Preset TOML → env vars → ``overrides`` (nested dict ``{"train": {"batch_size": 4}}``), highest wins.

    ``preset=None`` skips the preset (package defaults → env → overrides).
    """
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown settings section(s) {unknown}; sections are {list(SECTIONS)}")
    path = None if preset is None else resolve_preset(preset, configs_dir)
    token = _PRESET_FILE.set(path)
    try:
        settings = RunSettings(**overrides)
    finally:
        _PRESET_FILE.reset(token)
    logger.info("settings: preset %s, %d override section(s)", path or "(none)", len(overrides))
    return settings


def parse_set_options(items: list[str]) -> dict[str, Any]:
    """``["train.batch_size=4", "bridge.template.end_sym=###"]`` → nested overrides dict.

    Values are parsed as JSON when they parse (numbers, booleans, lists, null), else kept as strings.
    """
    import json

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) < 2 or not all(parts):
            raise ValueError(f"--set expects section.key=value, got {item!r}")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {item!r} conflicts with an earlier value for {part}")
        node[parts[-1]] = value
    return out


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` merged into a copy of ``base`` (nested dicts merged, other values replaced)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
