"""`mgpt train`: the main job — preset → Ray Train run → checkpoints every epoch → evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mgpt_cli.options import PresetOption, SetOption, as_sets


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        preset: PresetOption = "default",
        workers: Annotated[int | None, typer.Option("--workers", min=1, help="Ray Train workers")] = None,
        epochs: Annotated[int | None, typer.Option("--epochs", min=1)] = None,
        iters_per_epoch: Annotated[int | None, typer.Option("--iters-per-epoch", min=1)] = None,
        batch_size: Annotated[int | None, typer.Option("--batch-size", min=1, help="per worker")] = None,
        lr: Annotated[float | None, typer.Option("--lr", min=0.0, help="peak learning rate")] = None,
        data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Flickr30k-format folder")] = None,
        output_dir: Annotated[Path | None, typer.Option(
            "--output-dir", help="parent of run folders (default runs/; inside a Ray job ~/mgpt-runs: never "
            "Ray's temporary copy of the working dir)")] = None,
        run_name: Annotated[str | None, typer.Option("--run-name", help="default: a timestamp")] = None,
        address: Annotated[str | None, typer.Option(
            "--address", help='join a Ray cluster: "auto" or "ray://host:port" (default: private local Ray)')
        ] = None,
        resume: Annotated[Path | None, typer.Option(
            "--resume", help="continue this run directory from its last checkpoint")] = None,
        resume_from: Annotated[str | None, typer.Option(
            "--resume-from", help="with --resume: continue from this recorded checkpoint (e.g. epoch_0) "
            "instead of the latest; the later ones are trained again")] = None,
        init_from: Annotated[Path | None, typer.Option(
            "--init-from", help="start the trainable parameters from RUN_DIR's latest checkpoint, or from a "
            "checkpoint folder / .safetensors (stage 2 from stage 1); optimizer, schedule and step start "
            "fresh")] = None,
        parallel: Annotated[str | None, typer.Option(
            "--parallel", help="ddp (whole model per worker) or fsdp (FSDP2: LM + bridge sharded across "
            "workers, frozen encoder kept whole)")] = None,
        no_eval: Annotated[bool, typer.Option("--no-eval", help="skip the evaluation afterwards")] = False,
        no_dashboard: Annotated[bool, typer.Option(
            "--no-dashboard", help="do not start the Ray dashboard (default: on, at 127.0.0.1, URL logged)")
        ] = False,
        tracker: Annotated[str | None, typer.Option(
            "--tracker", help="experiment tracking: none | mlflow | wandb | tensorboard")] = None,
        keep_checkpoints: Annotated[int | None, typer.Option(
            "--keep-checkpoints", min=1, help="keep only the latest N checkpoints (default: all)")] = None,
        set_: SetOption = None,
    ) -> None:
        """Train the bridge with Ray Train (flags > env MGPT_<SECTION>__<KEY> > preset), then evaluate.

        With no arguments: the `default` preset end to end (synthetic data written on first use), tracked
        with MLflow in the run folder (`mlflow ui --backend-store-uri sqlite:///RUN_DIR/mlflow/mlflow.db`).
        After evaluation, RUN_DIR/checkpoints/best.json names the checkpoint with the highest CIDEr.
        """
        from mgpt_train.run import resume_settings, train_run
        from mgpt_train.run_settings import RunSettings

        sets = as_sets(set_, **{
            "train.workers": workers, "train.max_epoch": epochs, "train.iters_per_epoch": iters_per_epoch,
            "train.batch_size": batch_size, "train.init_lr": lr, "data.data_dir": data_dir,
            "train.output_dir": output_dir, "train.run_name": run_name, "train.address": address,
            "train.include_dashboard": False if no_dashboard else None, "train.tracker": tracker,
            "train.keep_checkpoints": keep_checkpoints, "train.resume_from": resume_from,
            "train.init_from": init_from, "train.parallel": parallel})
        settings = resume_settings(resume, sets) if resume is not None else RunSettings.load(preset, sets)
        outcome = train_run(settings, resume_dir=resume, evaluate=not no_eval)
        typer.echo(f"run directory: {outcome.run_dir}")
        typer.echo(outcome.summary_line())
        if outcome.evaluation is not None:
            typer.echo(outcome.evaluation.results_md.read_text())
            for name, path in sorted(outcome.evaluation.paths.items()):
                typer.echo(f"  {name}: {path}")
            if outcome.evaluation.best is not None:
                best = outcome.evaluation.best
                typer.echo(f"best checkpoint: {best['checkpoint']} ({best['metric']} {best['value']:.4f})")
