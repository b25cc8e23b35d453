"""`mgpt prepare`: write a synthetic Flickr-format set, or check an existing Flickr30k-format folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

_HELP = (
    "Write synthetic scenes (--synthetic N) or check a Flickr30k-format folder.\n\n"
    "Checking decodes every image and writes rejects.jsonl and flickr30k_grounded_detail.json into the "
    "folder, then prints a summary. Rejects never fail the command (exit 0); a folder that cannot be "
    "read as Flickr30k format exits 2. A missing --data-dir gets a synthetic set of "
    "DataSettings.synthetic_images images (MGPT_DATA__SYNTHETIC_IMAGES)."
)


def _format_summary(summary: dict[str, Any]) -> str:
    lines = [
        f"data dir     {summary['data_dir']}",
        f"csv rows     {summary['csv_rows']}",
        f"kept images  {summary['kept']}",
        f"rejected     {summary['rejected_total']}"
        + "".join(f"\n  {reason:<18} {n}" for reason, n in summary["rejected"].items()),
        "per split    " + ", ".join(f"{s}: {n}" for s, n in summary["per_split"].items()),
    ]
    if summary["warnings"]:
        lines.append("kept with repairs  " + ", ".join(f"{k}: {v}" for k, v in summary["warnings"].items()))
    if summary.get("synthetic_written"):
        lines.append(f"synthetic    wrote {summary['synthetic_written']} images")
    lines += [f"rejects      {summary['rejects_path']}", f"grounded     {summary['grounded_path']}",
              f"engine       {summary['engine']} ({summary['seconds']} s)"]
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command("prepare", help=_HELP)
    def prepare(
        data_dir: Annotated[Path | None, typer.Option(
            "--data-dir", help="Flickr30k-format folder (default: DataSettings.data_dir)")] = None,
        synthetic: Annotated[int | None, typer.Option(
            "--synthetic", min=1, help="write N synthetic scenes there first (replaces an earlier "
            "synthetic set, never other data)")] = None,
        seed: Annotated[int | None, typer.Option(
            "--seed", help="synthetic set seed (default: DataSettings.seed)")] = None,
        image_size: Annotated[int | None, typer.Option(
            "--image-size", min=32, help="synthetic image side (default: DataSettings.synthetic_image_size)")
        ] = None,
        engine: Annotated[str, typer.Option(
            "--engine", help="decode with 'ray' (Ray Data tasks), 'local' (this process) or 'auto' (Ray "
            "if running or >= 5000 images)")] = "auto",
        as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
    ) -> None:
        """Write synthetic scenes (--synthetic N) or check a Flickr30k-format folder (see _HELP)."""
        from pydantic import ValidationError

        from mgpt_data.annotations import Flickr30kFormatError
        from mgpt_data.check import check_data_dir
        from mgpt_data.settings import DataSettings
        from mgpt_data.synthetic import ensure_data_dir, write_synthetic_scenes

        if engine not in ("auto", "ray", "local"):
            raise typer.BadParameter(f"must be 'auto', 'ray' or 'local', got {engine!r}",
                                     param_hint="--engine")
        overrides = {k: v for k, v in {"data_dir": data_dir, "seed": seed,
                                       "synthetic_image_size": image_size}.items() if v is not None}
        try:
            settings = DataSettings(**overrides)
        except ValidationError as e:
            typer.echo(f"error: invalid data settings:\n{e}", err=True)
            raise typer.Exit(2) from e
        written = None
        try:
            if synthetic is not None:
                write_synthetic_scenes(settings.data_dir, synthetic, seed=settings.seed,
                                       image_size=settings.synthetic_image_size, overwrite=True,
                                       progress=not as_json)
                written = synthetic
            elif not (settings.data_dir / "flickr_annotations_30k.csv").is_file():
                ensure_data_dir(settings.data_dir, settings.synthetic_images, seed=settings.seed,
                                image_size=settings.synthetic_image_size, progress=not as_json)
                written = settings.synthetic_images
            summary = check_data_dir(settings.data_dir, engine=engine,
                                     batch_size=settings.preprocess_batch_size,
                                     workers=settings.num_preprocess_workers, progress=not as_json)
        except (Flickr30kFormatError, FileExistsError) as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from e
        summary["synthetic_written"] = written
        typer.echo(json.dumps(summary, indent=2) if as_json else _format_summary(summary))
