"""`mgpt train`: the main job — preset → Ray Train run → checkpoints every epoch → evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mgpt_cli.options import PresetOption, flag, settings_flags


@settings_flags(
    workers=("train.workers", flag(int, "--workers", min=1, help="Ray Train workers")),
    epochs=("train.max_epoch", flag(int, "--epochs", min=1)),
    iters_per_epoch=("train.iters_per_epoch", flag(int, "--iters-per-epoch", min=1)),
    batch_size=("train.batch_size", flag(int, "--batch-size", min=1, help="per worker")),
    lr=("train.init_lr", flag(float, "--lr", min=0.0, help="peak learning rate")),
    data_dir=("data.data_dir", flag(Path, "--data-dir", help="Flickr30k-format folder")),
    output_dir=("train.output_dir", flag(Path, "--output-dir", help="parent of run folders (default "
                "runs/; inside a Ray job ~/mgpt-runs: never Ray's temporary copy of the working dir)")),
    run_name=("train.run_name", flag(str, "--run-name", help="default: a timestamp")),
    address=("train.address", flag(str, "--address", help='join a Ray cluster: "auto" or "ray://host:port" '
             "(default: a private local Ray)")),
    resume_from=("train.resume_from", flag(str, "--resume-from", help="with --resume: continue from this "
                 "recorded checkpoint (e.g. epoch_0) instead of the latest; later ones are trained again")),
    init_from=("train.init_from", flag(Path, "--init-from", help="start the trainable parameters from "
               "RUN_DIR's latest checkpoint, or a checkpoint folder / .safetensors (stage 2 from stage 1); "
               "optimizer, schedule and step start fresh")),
    parallel=("train.parallel", flag(str, "--parallel", help="ddp (whole model per worker) or fsdp (FSDP2: "
              "LM + bridge sharded across workers, frozen encoder kept whole)")),
    dashboard=("train.include_dashboard", flag(bool, "--dashboard/--no-dashboard",
               help="the Ray dashboard (default: on, at 127.0.0.1, URL logged)")),
    tracker=("train.tracker", flag(str, "--tracker", help="none | mlflow | wandb | tensorboard")),
    keep_checkpoints=("train.keep_checkpoints", flag(int, "--keep-checkpoints", min=1,
                      help="keep only the latest N checkpoints (default: all)")),
)
def train(
    sets: list[str],
    preset: PresetOption = "default",
    resume: Annotated[Path | None, typer.Option(
        "--resume", help="continue this run directory from its last checkpoint")] = None,
    no_eval: Annotated[bool, typer.Option("--no-eval", help="skip the evaluation afterwards")] = False,
) -> None:
    """Train the bridge with Ray Train (flags > env MGPT_<SECTION>__<KEY> > preset), then evaluate.

    With no arguments: the `default` preset end to end (synthetic data written on first use), tracked
    with MLflow in the run folder (`mlflow ui --backend-store-uri sqlite:///RUN_DIR/mlflow/mlflow.db`).
    After evaluation, RUN_DIR/checkpoints/best.json names the checkpoint with the highest CIDEr.
    """
    from mgpt_train.run import resume_settings, train_run
    from mgpt_train.run_settings import RunSettings

    settings = resume_settings(resume, sets) if resume is not None else RunSettings.load(preset, sets)
    typer.echo(train_run(settings, resume_dir=resume, evaluate=not no_eval).format())


def register(app: typer.Typer) -> None:
    app.command("train")(train)
