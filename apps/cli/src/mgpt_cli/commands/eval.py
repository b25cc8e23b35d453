"""`mgpt eval RUN_DIR`: score the untrained baseline and the run's checkpoints on one split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mgpt_cli.options import JsonOption, flag, settings_flags


@settings_flags(
    split=("eval.split", flag(str, "--split", help="train, val or test")),
    checkpoints=("eval.checkpoints", flag(list[str], "--checkpoints", help="all | last | a checkpoint name "
                 "(epoch_2) | a checkpoint folder; repeatable; the untrained baseline is always scored")),
    max_images=("eval.max_images", flag(int, "--max-images", min=1)),
    bootstrap=("eval.bootstrap_resamples", flag(int, "--bootstrap", min=0,
               help="bootstrap resamples for the 95% CIs (0 = off)")),
)
def eval_command(
    run_dir: Annotated[Path, typer.Argument(help="a run directory written by `mgpt train`")],
    sets: list[str],
    gallery: Annotated[bool, typer.Option(help="also caption the real-photo gallery")] = True,
    as_json: JsonOption = False,
) -> None:
    """Write eval/results.{json,csv,md}, eval/metrics.png, eval/predictions/*.jsonl, checkpoints/best.json."""
    from mgpt_train.evaluate import evaluate_run
    from mgpt_train.run_settings import RunSettings

    result = evaluate_run(run_dir, RunSettings.from_run_dir(run_dir, sets), gallery=gallery)
    typer.echo(result.paths["results.json"].read_text() if as_json else result.format())


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
