"""RunSettings: preset TOML < env < overrides, clear errors, --set parsing, precision resolution."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mgpt_train.run_settings import (
    RunSettings,
    deep_merge,
    find_configs_dir,
    parse_set_options,
    resolve_preset,
)
from mgpt_train.settings import TrainSettings, cpu_has_bf16, resolve_precision

PRESET = Path(__file__).parent / "configs" / "tiny_test.toml"


def test_preset_then_env_then_overrides(monkeypatch) -> None:
    s = RunSettings.load(PRESET)
    assert (s.vision.encoder, s.bridge.lm, s.train.batch_size, s.train.seed) == ("tiny", "tiny", 2, 42)
    assert s.bridge.template.max_txt_len == 16  # nested [bridge.template] table
    monkeypatch.setenv("MGPT_TRAIN__BATCH_SIZE", "5")
    monkeypatch.setenv("MGPT_TRAIN__SEED", "7")
    monkeypatch.setenv("MGPT_BRIDGE__TEMPLATE__MAX_TXT_LEN", "9")
    s = RunSettings.load(PRESET, {"train": {"seed": 3}})
    assert (s.train.batch_size, s.train.seed, s.bridge.template.max_txt_len) == (5, 3, 9)
    assert s.train.init_lr == 1e-3  # untouched preset value


def test_set_strings_are_the_same_overrides_as_a_dict() -> None:
    by_strings = RunSettings.load(PRESET, ["train.seed=3", "bridge.template.end_sym=\n"])
    by_dict = RunSettings.load(PRESET, {"train": {"seed": 3}, "bridge": {"template": {"end_sym": "\n"}}})
    assert by_strings == by_dict and by_strings.train.seed == 3


def test_from_run_dir_reads_settings_json_with_overrides(tmp_path) -> None:
    from mgpt_train.run_settings import NotARunDirError
    from mgpt_train.rundir import write_json

    s = RunSettings.load(PRESET, {"train": {"workers": 1}})
    write_json(tmp_path / "settings.json", s.to_json_dict())
    assert RunSettings.from_run_dir(tmp_path) == s
    assert RunSettings.from_run_dir(tmp_path, ["eval.split=val"]).eval.split == "val"
    with pytest.raises(NotARunDirError, match="not a run directory"):
        RunSettings.from_run_dir(tmp_path / "nope")


def test_json_round_trip_ignores_the_environment(monkeypatch) -> None:
    s = RunSettings.load(PRESET, {"train": {"workers": 1}})
    monkeypatch.setenv("MGPT_TRAIN__WORKERS", "4")
    assert RunSettings.from_json_dict(s.to_json_dict()) == s


def test_named_presets_and_errors(tmp_path, monkeypatch) -> None:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "mine.toml").write_text("[train]\nmax_epoch = 7\n")
    monkeypatch.chdir(tmp_path / "configs")
    assert find_configs_dir() == tmp_path / "configs"  # found from a sub-folder too
    assert RunSettings.load("mine").train.max_epoch == 7
    with pytest.raises(FileNotFoundError, match="known: mine"):
        resolve_preset("nope")
    monkeypatch.setenv("MGPT_CONFIGS_DIR", str(tmp_path / "elsewhere"))
    with pytest.raises(FileNotFoundError, match="MGPT_CONFIGS_DIR"):
        find_configs_dir()


def test_unknown_keys_and_bad_values_are_clear(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nbatch_sise = 4\n")
    with pytest.raises(ValidationError, match="batch_sise"):
        RunSettings.load(bad)
    with pytest.raises(ValueError, match="unknown settings section"):
        RunSettings.load(PRESET, {"trian": {}})
    with pytest.raises(ValidationError, match="min_lr"):
        TrainSettings(init_lr=1e-4, min_lr=1e-3)
    with pytest.raises(ValidationError, match="address"):
        TrainSettings(address="somewhere")


def test_parse_set_options() -> None:
    got = parse_set_options(["train.batch_size=4", "bridge.template.end_sym=###", "train.use_gpu=true",
                             "eval.metrics=[\"bleu_4\"]", "train.run_name=x=y"])
    assert got == {"train": {"batch_size": 4, "use_gpu": True, "run_name": "x=y"},
                   "bridge": {"template": {"end_sym": "###"}}, "eval": {"metrics": ["bleu_4"]}}
    with pytest.raises(ValueError, match="section.key=value"):
        parse_set_options(["batch_size=4"])
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}}) == {"a": {"b": 3, "c": 2}}


def test_precision_resolution() -> None:
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("bf16", "cuda") == "bf16"
    assert resolve_precision("auto", "cpu") == ("bf16" if cpu_has_bf16() else "fp32")


def test_with_absolute_paths(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = RunSettings.load(PRESET, {"data": {"data_dir": "data/x"}, "train": {"output_dir": "runs"}})
    a = s.with_absolute_paths()
    assert a.data.data_dir == tmp_path / "data" / "x" and a.train.output_dir == tmp_path / "runs"
    assert a.vision.weights_path is None
    assert a.train == s.train.model_copy(update={"output_dir": tmp_path / "runs"})
