"""`mgpt compare RUN_DIR...` and `mgpt ablate`: one table + chart across runs, and the runs behind it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mgpt_cli.options import PresetOption, SetOption, as_sets

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


def register(app: typer.Typer) -> None:
    @app.command("compare", help=COMPARE_HELP)
    def compare(
        run_dirs: Annotated[list[Path], typer.Argument(help="run directories written by `mgpt train`")],
        output_dir: Annotated[Path | None, typer.Option(
            "--output-dir", help="where compare.* go (default: compare/ beside the first run)")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print compare.json")] = False,
    ) -> None:
        """One table and one chart across runs (see COMPARE_HELP)."""
        from mgpt_train.compare import compare_runs

        result = compare_runs(run_dirs, output_dir)
        _show(result, as_json)

    @app.command("ablate", help=ABLATE_HELP)
    def ablate(
        preset: PresetOption = "default",
        steps: Annotated[int | None, typer.Option(
            "--steps", min=1, help="shorten each run to one epoch of this many iterations")] = None,
        variant: Annotated[list[str] | None, typer.Option(
            "--variant", help="linear | mlp-3 | ldp | lora (repeatable; default: all four)")] = None,
        output_dir: Annotated[Path | None, typer.Option("--output-dir")] = None,
        workers: Annotated[int | None, typer.Option("--workers", min=1)] = None,
        max_images: Annotated[int | None, typer.Option(
            "--max-images", min=1, help="evaluate on at most this many test images")] = None,
        data_dir: Annotated[Path | None, typer.Option("--data-dir")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print compare.json")] = False,
        set_: SetOption = None,
    ) -> None:
        """Train, evaluate and compare a preset's bridge ablations (see ABLATE_HELP)."""
        from mgpt_train.ablate import run_ablation

        sets = as_sets(set_, **{"train.workers": workers, "eval.max_images": max_images,
                                "data.data_dir": data_dir})
        result = run_ablation(preset, variants=variant, steps=steps, output_dir=output_dir, overrides=sets)
        _show(result.comparison, as_json)


def _show(comparison, as_json: bool) -> None:
    if as_json:
        typer.echo(comparison.paths["compare.json"].read_text())
        return
    typer.echo(comparison.paths["compare.md"].read_text())
    typer.echo(json.dumps({k: str(v) for k, v in comparison.paths.items()}, indent=2))
