"""`mgpt eval RUN_DIR`: score the untrained baseline and the run's checkpoints on one split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer


def run_eval(run_dir: Path, settings: Any, **kwargs: Any) -> dict[str, Any]:
    """Evaluate a run (used by `mgpt train` after training); see `mgpt_cli.evaluation.run_eval`."""
    from mgpt_cli.evaluation import run_eval as _run_eval

    return _run_eval(run_dir, settings, **kwargs)


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_command(
        run_dir: Annotated[Path, typer.Argument(help="a run directory written by `mgpt train`")],
        split: Annotated[str | None, typer.Option("--split", help="train, val or test")] = None,
        checkpoints: Annotated[
            list[str] | None,
            typer.Option(
                "--checkpoints",
                help="all | last | a checkpoint name (epoch_2) | a checkpoint folder; "
                "repeatable; the untrained baseline is always scored",
            ),
        ] = None,
        max_images: Annotated[int | None, typer.Option("--max-images", min=1)] = None,
        bootstrap: Annotated[
            int | None,
            typer.Option("--bootstrap", min=0, help="bootstrap resamples for the 95% CIs (0 = off)"),
        ] = None,
        gallery: Annotated[bool, typer.Option(help="also caption the real-photo gallery")] = True,
        as_json: Annotated[bool, typer.Option("--json", help="print results.json")] = False,
        set_: Annotated[
            list[str] | None,
            typer.Option("--set", help="override any setting: section.key=value (repeatable)"),
        ] = None,
    ) -> None:
        """Write eval/results.{json,csv,md}, eval/metrics.png and eval/predictions/*.jsonl."""
        from mgpt_cli.run_loading import load_run
        from mgpt_train.run_settings import deep_merge, parse_set_options

        overrides = parse_set_options(set_ or [])
        flags = {
            k: v
            for k, v in {"split": split, "max_images": max_images, "bootstrap_resamples": bootstrap}.items()
            if v is not None
        }
        settings = load_run(run_dir, deep_merge(overrides, {"eval": flags}))
        try:
            result = run_eval(run_dir, settings, checkpoints=checkpoints or None, gallery=gallery)
        except (FileNotFoundError, ValueError) as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from e
        paths = result["paths"]
        if as_json:
            typer.echo(Path(paths["results.json"]).read_text())
        else:
            typer.echo(Path(paths["results.md"]).read_text())
            typer.echo(json.dumps({k: str(v) for k, v in paths.items()}, indent=2))
