"""`mgpt train`: the main job — preset → Ray Train run → checkpoints every epoch → evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def _flag_overrides(**flags: Any) -> dict[str, Any]:
    """CLI flags → nested overrides (only the flags that were given)."""
    where = {"workers": ("train", "workers"), "epochs": ("train", "max_epoch"),
             "iters_per_epoch": ("train", "iters_per_epoch"), "batch_size": ("train", "batch_size"),
             "lr": ("train", "init_lr"), "data_dir": ("data", "data_dir"),
             "output_dir": ("train", "output_dir"), "run_name": ("train", "run_name"),
             "address": ("train", "address")}
    out: dict[str, Any] = {}
    for name, value in flags.items():
        if value is not None:
            section, key = where[name]
            out.setdefault(section, {})[key] = str(value) if isinstance(value, Path) else value
    return out


def _settings(preset: str, resume: Path | None, overrides: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    from mgpt_train.run_settings import load_run_settings

    if resume is not None:
        from mgpt_cli.run_loading import load_run
        from mgpt_train.run_settings import deep_merge

        # a run stopped with train.stop_at_step continues to its end unless --set asks again
        return load_run(resume, deep_merge({"train": {"stop_at_step": None}}, overrides))
    try:
        return load_run_settings(preset, overrides)
    except (FileNotFoundError, ValueError, ValidationError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e


def _evaluate(run_dir: Path, settings: Any) -> None:
    try:
        from mgpt_cli.commands.eval import run_eval
    except ImportError:
        typer.echo("evaluation skipped: `mgpt eval` is not available")
        return
    report = run_eval(run_dir, settings)
    results_md = (report.get("paths") or {}).get("results.md")
    if results_md:
        typer.echo(Path(results_md).read_text())
    for name, path in sorted((report.get("paths") or {}).items()):
        typer.echo(f"  {name}: {path}")


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        preset: Annotated[
            str, typer.Option("--preset", help="configs/<name>.toml, or a .toml path")
        ] = "default",
        workers: Annotated[int | None, typer.Option("--workers", min=1, help="Ray Train workers")] = None,
        epochs: Annotated[int | None, typer.Option("--epochs", min=1)] = None,
        iters_per_epoch: Annotated[int | None, typer.Option("--iters-per-epoch", min=1)] = None,
        batch_size: Annotated[int | None, typer.Option("--batch-size", min=1, help="per worker")] = None,
        lr: Annotated[
            float | None, typer.Option("--lr", min=0.0, help="peak learning rate (init_lr)")
        ] = None,
        data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Flickr30k-format folder")] = None,
        output_dir: Annotated[Path | None, typer.Option("--output-dir", help="parent of run folders")] = None,
        run_name: Annotated[str | None, typer.Option("--run-name", help="default: a timestamp")] = None,
        address: Annotated[
            str | None, typer.Option("--address", help='Ray cluster: "auto" or "ray://host:port"')
        ] = None,
        resume: Annotated[
            Path | None, typer.Option("--resume", help="continue this run directory from its last checkpoint")
        ] = None,
        no_eval: Annotated[
            bool, typer.Option("--no-eval", help="skip the evaluation after training")
        ] = False,
        set_: Annotated[
            list[str] | None, typer.Option("--set", help="section.key=value (repeatable), e.g. train.seed=1")
        ] = None,
    ) -> None:
        """Train the bridge with Ray Train (flags > env MGPT_<SECTION>__<KEY> > preset), then evaluate.

        With no arguments: the `default` preset end to end (synthetic data written on first use).
        """
        from mgpt_train.ray_setup import quiet_ray_logs

        quiet_ray_logs()
        import ray.train

        from mgpt_train.fit import fit
        from mgpt_train.metrics_log import read_metrics
        from mgpt_train.run_settings import deep_merge, parse_set_options
        from mgpt_train.rundir import METRICS_FILE, make_run_dir

        try:
            overrides = deep_merge(parse_set_options(set_ or []), _flag_overrides(
                workers=workers, epochs=epochs, iters_per_epoch=iters_per_epoch, batch_size=batch_size, lr=lr,
                data_dir=data_dir, output_dir=output_dir, run_name=run_name, address=address))
        except ValueError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from e
        settings = _settings(preset, resume, overrides)
        run_dir = resume.resolve() if resume is not None else make_run_dir(settings.train.output_dir,
                                                                         settings.train.run_name)
        t = settings.train
        typer.echo(f"run directory: {run_dir}")
        typer.echo(f"{'resuming' if resume else 'preset ' + repr(preset)}: {settings.vision.encoder} → "
                   f"{settings.bridge.projector} → {settings.bridge.lm}; {t.workers} workers × batch "
                   f"{t.batch_size}, {t.max_epoch} epochs, lr {t.init_lr:g}")
        try:
            result = fit(settings, run_dir, resume=resume is not None)
        except (FileExistsError, FileNotFoundError, ValueError) as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from e
        except ray.train.TrainingFailedError as e:
            typer.echo(f"error: training failed: {e}", err=True)
            raise typer.Exit(1) from e
        records = read_metrics(run_dir / METRICS_FILE)
        if records:
            typer.echo(f"trained {records[-1]['global_step']} iterations: loss {records[0]['loss']:.4f} → "
                       f"{records[-1]['loss']:.4f}; last checkpoint {result.checkpoint.path}")
        if no_eval:
            return
        typer.echo("evaluating the untrained baseline and every epoch checkpoint ...")
        _evaluate(run_dir, settings)
