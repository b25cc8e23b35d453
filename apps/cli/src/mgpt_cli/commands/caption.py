"""`mgpt caption IMAGE...`: describe image files with a run's trained bridge (or the untrained one)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("caption")
    def caption(
        images: Annotated[list[Path], typer.Argument(help="image files (any format PIL reads)")],
        run: Annotated[
            Path | None,
            typer.Option(
                "--run", help="a run directory: its settings and (unless --checkpoint) its best checkpoint "
                "(highest CIDEr at its last evaluation; else its last epoch)"
            ),
        ] = None,
        checkpoint: Annotated[
            Path | None,
            typer.Option("--checkpoint", help="a checkpoint folder or trainable .safetensors file"),
        ] = None,
        preset: Annotated[str, typer.Option("--preset", help="preset when no --run is given")] = "default",
        instruction: Annotated[
            str | None,
            typer.Option("--instruction", help="prompt with one <ImageHere> (default: the template's first)"),
        ] = None,
        max_new_tokens: Annotated[int | None, typer.Option("--max-new-tokens", min=1)] = None,
        num_beams: Annotated[int | None, typer.Option("--num-beams", min=1)] = None,
        sample: Annotated[bool, typer.Option("--sample", help="sample instead of greedy/beam")] = False,
        temperature: Annotated[float | None, typer.Option("--temperature", min=0.01)] = None,
        top_p: Annotated[float | None, typer.Option("--top-p", min=0.01, max=1.0)] = None,
        repetition_penalty: Annotated[float | None, typer.Option("--repetition-penalty", min=0.01)] = None,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Print one caption per image."""
        from PIL import Image, UnidentifiedImageError

        from mgpt_train.captioning import caption_images, load_captioner
        from mgpt_train.run_settings import RunSettings

        if run is not None:
            from mgpt_train.checkpointing import default_checkpoint

            settings = RunSettings.from_run_dir(run)
            if checkpoint is None:
                checkpoint = default_checkpoint(run)
                typer.echo(f"checkpoint: {checkpoint}", err=True)
        else:
            settings = RunSettings.load(preset)
        if checkpoint is not None and not checkpoint.exists():
            raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
        pictures = []
        for path in images:
            try:
                with Image.open(path) as img:
                    pictures.append(img.convert("RGB"))
            except (FileNotFoundError, UnidentifiedImageError, OSError) as e:
                typer.echo(f"error: cannot read image {path}: {e}", err=True)
                raise typer.Exit(2) from e
        decoding = {
            k: v
            for k, v in {
                "max_new_tokens": max_new_tokens,
                "num_beams": num_beams,
                "temperature": temperature,
                "top_p": top_p,
                "repetition_penalty": repetition_penalty,
            }.items()
            if v is not None
        }
        if sample:
            decoding["do_sample"] = True
        model = load_captioner(settings, checkpoint)
        if checkpoint is None:
            typer.echo("note: no checkpoint given: captions come from the UNTRAINED bridge", err=True)
        captions = caption_images(model, pictures, instruction=instruction, **decoding)
        if as_json:
            typer.echo(
                json.dumps(
                    [{"image": str(p), "caption": c} for p, c in zip(images, captions, strict=True)], indent=2
                )
            )
        else:
            for path, text in zip(images, captions, strict=True):
                typer.echo(f"{path}: {text}")
