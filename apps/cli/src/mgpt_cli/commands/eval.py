"""`mgpt eval RUN_DIR`: score the untrained baseline and the run's checkpoints on one split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mgpt_cli.options import SetOption, as_sets


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_command(
        run_dir: Annotated[Path, typer.Argument(help="a run directory written by `mgpt train`")],
        split: Annotated[str | None, typer.Option("--split", help="train, val or test")] = None,
        checkpoints: Annotated[list[str] | None, typer.Option(
            "--checkpoints", help="all | last | a checkpoint name (epoch_2) | a checkpoint folder; "
            "repeatable; the untrained baseline is always scored")] = None,
        max_images: Annotated[int | None, typer.Option("--max-images", min=1)] = None,
        bootstrap: Annotated[int | None, typer.Option(
            "--bootstrap", min=0, help="bootstrap resamples for the 95% CIs (0 = off)")] = None,
        gallery: Annotated[bool, typer.Option(help="also caption the real-photo gallery")] = True,
        as_json: Annotated[bool, typer.Option("--json", help="print results.json")] = False,
        set_: SetOption = None,
    ) -> None:
        """Write eval/results.{json,csv,md}, eval/metrics.png and eval/predictions/*.jsonl."""
        from mgpt_train.evaluate import evaluate_run
        from mgpt_train.run_settings import RunSettings

        sets = as_sets(set_, **{"eval.split": split, "eval.max_images": max_images,
                                "eval.bootstrap_resamples": bootstrap, "eval.checkpoints": checkpoints})
        result = evaluate_run(run_dir, RunSettings.from_run_dir(run_dir, sets), gallery=gallery)
        if as_json:
            typer.echo(result.paths["results.json"].read_text())
        else:
            typer.echo(result.results_md.read_text())
            typer.echo(json.dumps({k: str(v) for k, v in result.paths.items()}, indent=2))
