"""`RunSettings`: the five package settings in one model, from preset → env → CLI flags.

Priority (highest wins): ``overrides`` (CLI flags) > environment (``MGPT_<SECTION>__<KEY>``, nested
with ``__``) > the TOML preset ``configs/<preset>.toml`` (tables ``[vision]``, ``[bridge]``,
``[bridge.template]``, ``[data]``, ``[train]``, ``[eval]``) > each package's defaults.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from mgpt_bridge import BridgeSettings
from mgpt_data import DataSettings
from mgpt_eval.settings import EvalSettings
from mgpt_train.rundir import SETTINGS_FILE, read_json
from mgpt_train.settings import TrainSettings
from mgpt_vision.settings import VisionSettings

logger = logging.getLogger(__name__)

CONFIGS_ENV_VAR = "MGPT_CONFIGS_DIR"
ENV_PREFIX = "MGPT_"
SECTIONS = ("vision", "bridge", "data", "train", "eval")
#: Overrides in either form: a nested dict, or ``--set`` strings ``section.key=value``.
Overrides = Mapping[str, Any] | Sequence[str] | None


class RunSettings(BaseSettings):
    """Everything one run needs; ``model_dump(mode="json")`` is what ``settings.json`` holds.

    Build it with :meth:`load` (a preset + the environment + overrides) or :meth:`from_run_dir`
    (a run's own ``settings.json``); both are pure functions of their arguments and the environment.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid")

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
        return init_settings, env_settings  # no .env or secrets files: presets are the only files

    @classmethod
    def load(
        cls,
        preset: str | Path | None = "default",
        overrides: Overrides = None,
        *,
        configs_dir: Path | str | None = None,
    ) -> RunSettings:
        """Preset TOML → env vars (``MGPT_<SECTION>__<KEY>``) → ``overrides``, highest wins.

        ``overrides``: a nested dict (``{"train": {"batch_size": 4}}``) or ``--set`` strings
        (``["train.batch_size=4"]``, see :func:`parse_set_options`). ``preset=None`` skips the preset.
        """
        layers = [_read_preset(resolve_preset(preset, configs_dir))] if preset is not None else []
        layers += [EnvSettingsSource(cls, env_prefix=ENV_PREFIX, env_nested_delimiter="__")(),
                   as_overrides(overrides)]
        data: dict[str, Any] = {}
        for layer in layers:
            data = deep_merge(data, layer)
        unknown = sorted(set(data) - set(SECTIONS))
        if unknown:
            raise ValueError(f"unknown settings section(s) {unknown}; sections are {list(SECTIONS)}")
        settings = cls.model_validate(data)
        logger.info("settings: preset %s, overrides %s", preset or "(none)", layers[-1] or "none")
        return settings

    @classmethod
    def from_run_dir(cls, run_dir: Path | str, overrides: Overrides = None) -> RunSettings:
        """The settings a run was trained with (``RUN_DIR/settings.json``), with ``overrides`` on top."""
        path = Path(run_dir) / SETTINGS_FILE
        if not path.is_file():
            raise NotARunDirError(f"{run_dir} is not a run directory (no {SETTINGS_FILE}); pass the folder "
                                  "`mgpt train` wrote under runs/")
        return cls.from_json_dict(deep_merge(read_json(path), as_overrides(overrides)))

    def to_json_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (``settings.json``; what Ray workers receive)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> RunSettings:
        """Rebuild from `to_json_dict` output; validation only, the environment is not read."""
        return cls.model_validate(data)

    def with_absolute_paths(self) -> RunSettings:
        """A copy whose file and folder settings are absolute (Ray workers run in another folder)."""
        data = self.to_json_dict()
        for section, key in (("data", "data_dir"), ("train", "output_dir"), ("train", "init_from"),
                             ("vision", "weights_path"),
                             ("bridge", "lm_path"), ("eval", "spice_jars"), ("eval", "chair_instances")):
            value = data[section].get(key)
            if value is not None:
                data[section][key] = str(Path(value).expanduser().resolve())
        return RunSettings.from_json_dict(data)


class NotARunDirError(FileNotFoundError):
    """A folder given as a run directory holds no ``settings.json``."""


def _read_preset(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"preset {path} is not valid TOML: {e}") from e


def as_overrides(overrides: Overrides) -> dict[str, Any]:
    """Either override form (nested dict or ``--set`` strings) as a nested dict."""
    if overrides is None:
        return {}
    if isinstance(overrides, Mapping):
        return dict(overrides)
    return parse_set_options(list(overrides))


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
