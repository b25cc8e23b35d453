"""`mgpt serve`: a captioning HTTP endpoint on Ray Serve with dynamic batching (127.0.0.1 by default)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mgpt_cli.options import decoding_flags, model_flags

HELP = (
    "Serve captions over HTTP (Ray Serve, dynamic batching); Ctrl-C stops it.\n\n"
    "POST an image's bytes to the printed URL and get JSON back: curl --data-binary @photo.jpg URL\n\n"
    "Join a cluster with --set train.address=auto. More settings (cpus/threads per replica, upload "
    "limit): MGPT_SERVE__* environment variables."
)


def register(app: typer.Typer) -> None:
    @app.command("serve", help=HELP)
    @model_flags
    @decoding_flags
    def serve(
        source: Any, decoding: dict[str, Any],
        host: Annotated[str | None, typer.Option("--host", help="HTTP address (default 127.0.0.1)")] = None,
        port: Annotated[int | None, typer.Option("--port", min=1, max=65535, help="default 8000")] = None,
        replicas: Annotated[int | None, typer.Option("--replicas", min=1)] = None,
        gpus_per_replica: Annotated[float | None, typer.Option(
            "--gpus-per-replica", min=0, help="> 0 runs replicas on CUDA")] = None,
        max_batch_size: Annotated[int | None, typer.Option(
            "--max-batch-size", min=1, help="1 = no batching (default 8)")] = None,
        batch_wait_ms: Annotated[float | None, typer.Option(
            "--batch-wait-ms", min=0, help="how long a batch waits to fill")] = None,
        instruction: Annotated[str | None, typer.Option(
            "--instruction", help="prompt with one <ImageHere> (default: the template's first)")] = None,
    ) -> None:
        from mgpt_train.inference.serve import ServeSettings, serve_until_stopped

        flags = {"host": host, "port": port, "replicas": replicas, "gpus_per_replica": gpus_per_replica,
                 "max_batch_size": max_batch_size,
                 "batch_wait_timeout_s": None if batch_wait_ms is None else batch_wait_ms / 1000}
        options = ServeSettings(**{k: v for k, v in flags.items() if v is not None})
        serve_until_stopped(source, options, decoding=decoding, instruction=instruction, on_ready=lambda url:
                            typer.echo(f"serving captions at {url}  (POST an image; Ctrl-C to stop)"))
