"""`mgpt compare RUN_DIR...` and `mgpt ablate`: one table + chart across runs, and the runs behind it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mgpt_cli.options import JsonOption, PresetOption, flag, settings_flags

COMPARE_HELP = (
    "Compare runs: each run's best checkpoint (by CIDEr in its eval/results.json) with its bootstrap "
    "intervals, in one table (compare.md/.csv/.json) and one chart (compare.png), naming the settings "
    "that differ between the runs."
)
ABLATE_HELP = (
    "Train and evaluate a preset's bridge ablations (linear, mlp-3, ldp on the whole token grid, LoRA) "
    "one after another, then compare them.\n\n"
    "Runs go to OUTPUT_DIR/<variant>/ (default: runs/ablation-<preset>/), the table to "
    "OUTPUT_DIR/compare.md. --steps N shortens every run to one epoch of N iterations (warmup scaled "
    "alike). Re-running the same command skips variants already evaluated."
)
OutputDir = Annotated[Path | None, typer.Option("--output-dir", help="where compare.* go (default: "
                      "compare/ beside the first run; for ablate runs/ablation-<preset>/)")]


def _show(comparison: Any, as_json: bool) -> None:
    typer.echo(comparison.paths["compare.json"].read_text() if as_json else comparison.format())


def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="run directories written by `mgpt train`")],
    output_dir: OutputDir = None,
    as_json: JsonOption = False,
) -> None:
    from mgpt_train.compare import compare_runs

    _show(compare_runs(run_dirs, output_dir), as_json)


@settings_flags(
    workers=("train.workers", flag(int, "--workers", min=1)),
    max_images=("eval.max_images", flag(int, "--max-images", min=1, help="test images to score")),
    data_dir=("data.data_dir", flag(Path, "--data-dir")),
)
def ablate(
    sets: list[str],
    preset: PresetOption = "default",
    steps: Annotated[int | None, typer.Option(
        "--steps", min=1, help="shorten each run to one epoch of this many iterations")] = None,
    variant: Annotated[list[str] | None, typer.Option(
        "--variant", help="linear | mlp-3 | ldp | lora (repeatable; default: all four)")] = None,
    output_dir: OutputDir = None,
    as_json: JsonOption = False,
) -> None:
    from mgpt_train.ablate import run_ablation

    result = run_ablation(preset, variants=variant, steps=steps, output_dir=output_dir, overrides=sets)
    _show(result.comparison, as_json)


def register(app: typer.Typer) -> None:
    app.command("compare", help=COMPARE_HELP)(compare)
    app.command("ablate", help=ABLATE_HELP)(ablate)
