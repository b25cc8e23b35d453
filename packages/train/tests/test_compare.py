"""`compare_runs` over run folders whose eval reports are written with mgpt_eval's own `write_report`
(scores and bootstrap intervals given here, so the table can be checked number by number), and the
ablation plan (`variant_settings`, `shortened`) without training anything. The full `run_ablation` on the
tiny preset is ``-m slow``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mgpt_eval import write_report
from mgpt_train.ablate import ABLATION_VARIANTS, shortened, variant_settings
from mgpt_train.compare import best_row, compare_runs, setting_differences
from mgpt_train.run_settings import RunSettings
from mgpt_train.rundir import write_json

TINY_CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def _row(name: str, epoch: int, cider: float, bleu4: float) -> dict:
    return {"name": name, "epoch": epoch, "n_images": 10, "unavailable": {},
            "scores": {"CIDEr": cider, "BLEU-4": bleu4},
            "ci": {"CIDEr": {"low": cider - 0.1, "high": cider + 0.1, "method": "percentile"},
                   "BLEU-4": {"low": bleu4 - 0.02, "high": bleu4 + 0.02, "method": "percentile"}}}


def _run(root: Path, name: str, overrides: dict, rows: list[dict]) -> Path:
    run_dir = root / name
    settings = RunSettings.load("tiny", {**overrides, "train": {"run_name": name, "output_dir": str(root)}},
                                configs_dir=TINY_CONFIGS)
    write_json(run_dir / "settings.json", settings.to_json_dict())
    write_report(run_dir / "eval", rows, meta={"split": "test"})
    return run_dir


@pytest.fixture()
def runs(tmp_path: Path) -> list[Path]:
    return [
        _run(tmp_path, "linear", {}, [_row("baseline", -1, 0.01, 0.0), _row("epoch_0", 0, 0.9, 0.2),
                                      _row("epoch_1", 1, 1.1, 0.25)]),
        _run(tmp_path, "mlp3", {"bridge": {"projector": "mlp", "projector_layers": 3}},
             [_row("baseline", -1, 0.02, 0.0), _row("epoch_0", 0, 1.3, 0.3), _row("epoch_1", 1, 1.2, 0.31)]),
    ]


def test_each_run_is_represented_by_its_best_cider_checkpoint(runs) -> None:
    comparison = compare_runs(runs)
    assert [(r["run"], r["name"]) for r in comparison.rows] == [("linear", "epoch_1"), ("mlp3", "epoch_0")]
    assert comparison.differences == ["bridge.projector", "bridge.projector_layers"]
    assert comparison.rows[1]["settings"] == {"bridge.projector": "mlp", "bridge.projector_layers": 3}
    assert comparison.rows[1]["ci"]["CIDEr"] == {"low": pytest.approx(1.2), "high": pytest.approx(1.4),
                                                 "method": "percentile"}


def test_the_table_names_what_differs_and_carries_the_intervals(runs) -> None:
    comparison = compare_runs(runs, runs[0].parent / "cmp")
    assert set(comparison.paths) == {"compare.json", "compare.csv", "compare.md", "compare.png"}
    assert all(p.parent == runs[0].parent / "cmp" and p.stat().st_size > 0 for p in comparison.paths.values())
    md = comparison.paths["compare.md"].read_text()
    assert "Settings that differ: `bridge.projector`, `bridge.projector_layers`." in md
    assert "| run | checkpoint | bridge.projector | bridge.projector_layers |" in md
    assert "| mlp3 | epoch_0 | mlp | 3 |" in md and "130.00 ± 10.00" in md  # CIDEr x100 ± half the CI
    header, *lines = comparison.paths["compare.csv"].read_text().splitlines()
    assert header.startswith("run,checkpoint,epoch,bridge.projector,bridge.projector_layers,")
    assert lines[0].startswith("linear,epoch_1,1,linear,2,")
    payload = json.loads(comparison.paths["compare.json"].read_text())
    assert payload["differences"] == comparison.differences and len(payload["rows"]) == 2
    assert comparison.paths["compare.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_input_is_told_in_one_line(runs, tmp_path: Path) -> None:
    (tmp_path / "noeval").mkdir()
    write_json(tmp_path / "noeval" / "settings.json", {})
    with pytest.raises(FileNotFoundError, match="no eval/results.json: evaluate it first"):
        compare_runs([runs[0], tmp_path / "noeval"])
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        compare_runs([tmp_path / "nowhere"])
    with pytest.raises(ValueError, match="twice"):
        compare_runs([runs[0], runs[0]])


def test_best_row_falls_back_to_the_baseline_and_differences_skip_run_names() -> None:
    only = {"rows": [_row("baseline", -1, 0.1, 0.0)]}
    assert best_row(only)["name"] == "baseline"
    same = [{"train": {"run_name": "a", "output_dir": "x", "seed": 1}},
            {"train": {"run_name": "b", "output_dir": "y", "seed": 1}}]
    assert setting_differences(same) == []


def test_ablation_variants_and_shortening() -> None:
    assert list(ABLATION_VARIANTS) == ["linear", "mlp-3", "ldp", "lora"]
    settings = variant_settings("default", "ldp", steps=30, overrides=["train.workers=1"])
    assert (settings.bridge.projector, settings.vision.num_tokens, settings.train.workers) == ("ldp", None, 1)
    assert (settings.train.max_epoch, settings.train.iters_per_epoch) == (1, 30)
    assert settings.train.warmup_steps == 2  # 20 of 360 iterations, scaled to 30
    default = RunSettings.load("default")
    assert shortened(default, 360)["train"]["warmup_steps"] == 20
    with pytest.raises(ValueError, match="unknown variant"):
        variant_settings("default", "mlp-9")


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(3600)
def test_run_ablation_on_tiny_trains_evaluates_and_compares_four_variants(ray_session, tiny_data_dir,
                                                                          tmp_path: Path) -> None:
    from mgpt_train.ablate import run_ablation

    overrides = {"data": {"data_dir": str(tiny_data_dir)}, "train": {"workers": 1},
                 "eval": {"bootstrap_resamples": 20}}
    result = run_ablation("tiny", steps=2, output_dir=tmp_path / "ablation", overrides=overrides,
                          progress=False)
    assert list(result.runs) == list(ABLATION_VARIANTS)
    rows = result.comparison.rows
    assert [r["run"] for r in rows] == list(ABLATION_VARIANTS) and all(r["name"] == "epoch_0" for r in rows)
    assert set(result.comparison.differences) == {"bridge.projector", "bridge.projector_layers",
                                                  "bridge.lm_tuning", "vision.num_tokens"}
    assert (result.output_dir / "compare.md").is_file()
    again = run_ablation("tiny", steps=2, output_dir=tmp_path / "ablation", overrides=overrides,
                         progress=False)  # everything evaluated already: nothing is trained again
    assert [r["scores"] for r in again.comparison.rows] == [r["scores"] for r in rows]
