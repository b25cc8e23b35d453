"""`mgpt demo`: the browser chat demo (gradio) on 127.0.0.1 unless --host is given; prints its URL."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mgpt_cli.options import DeviceOption, model_flags

HELP = (
    "Serve the browser demo (gradio) and print its URL; Ctrl-C stops it.\n\n"
    "Upload an image, chat with streamed answers; sliders for beams, temperature, top-p "
    "and max new tokens, a restart button and a checkpoint picker."
)


def register(app: typer.Typer) -> None:
    @app.command("demo", help=HELP)
    @model_flags
    def demo(
        source: Any,
        host: Annotated[str, typer.Option(
            "--host", help="address to bind (default loopback only; 0.0.0.0 = every one)")] = "127.0.0.1",
        port: Annotated[int | None, typer.Option(
            "--port", min=1, max=65535, help="default: first free port from 7860")] = None,
        device: DeviceOption = "auto",
    ) -> None:
        from mgpt_train.inference.demo import launch_demo

        running = launch_demo(source, host=host, port=port, device=device)
        typer.echo(f"demo running at {running.url}  (Ctrl-C to stop)")
        running.serve_forever()
