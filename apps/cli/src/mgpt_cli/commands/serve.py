"""`mgpt serve`: a captioning HTTP endpoint on Ray Serve with dynamic batching (127.0.0.1 by default)."""

from __future__ import annotations

import signal
import time
from typing import Annotated, Any

import typer

from mgpt_cli.model_options import (
    CheckpointOpt,
    InstructionOpt,
    MaxNewTokensOpt,
    NumBeamsOpt,
    PresetOpt,
    RepetitionPenaltyOpt,
    RunOpt,
    SampleOpt,
    SetOpt,
    TemperatureOpt,
    TopPOpt,
    decoding_overrides,
    model_source,
)

SERVE_HELP = (
    "Serve captions over HTTP (Ray Serve, dynamic batching); Ctrl-C stops it.\n\n"
    "POST an image's bytes to the printed URL and get JSON back: curl --data-binary "
    "@photo.jpg URL\n\n"
    "More settings (cpus/threads per replica, upload limit): MGPT_SERVE__* environment "
    "variables."
)


def register(app: typer.Typer) -> None:
    @app.command("serve", help=SERVE_HELP)
    def serve(
        run: RunOpt = None,
        checkpoint: CheckpointOpt = None,
        preset: PresetOpt = "default",
        host: Annotated[str | None, typer.Option("--host", help="HTTP address (default 127.0.0.1)")] = None,
        port: Annotated[int | None, typer.Option("--port", min=1, max=65535, help="default 8000")] = None,
        replicas: Annotated[int | None, typer.Option("--replicas", min=1)] = None,
        gpus_per_replica: Annotated[
            float | None, typer.Option("--gpus-per-replica", min=0, help="> 0 runs replicas on CUDA")
        ] = None,
        max_batch_size: Annotated[
            int | None, typer.Option("--max-batch-size", min=1, help="1 = no batching (default 8)")
        ] = None,
        batch_wait_ms: Annotated[
            float | None, typer.Option("--batch-wait-ms", min=0, help="how long a batch waits to fill")
        ] = None,
        instruction: InstructionOpt = None,
        max_new_tokens: MaxNewTokensOpt = None,
        num_beams: NumBeamsOpt = None,
        sample: SampleOpt = None,
        temperature: TemperatureOpt = None,
        top_p: TopPOpt = None,
        repetition_penalty: RepetitionPenaltyOpt = None,
        address: Annotated[
            str | None, typer.Option("--address", help="join a running Ray cluster (auto | ray://host:port)")
        ] = None,
        set_: SetOpt = None,
    ) -> None:
        """Serve captions over HTTP (Ray Serve, dynamic batching); Ctrl-C stops it."""
        from mgpt_train.inference.serve import ServeSettings, start_server

        wait_s = None if batch_wait_ms is None else batch_wait_ms / 1000
        flags: dict[str, Any] = {"host": host, "port": port, "replicas": replicas,
                                 "gpus_per_replica": gpus_per_replica, "max_batch_size": max_batch_size,
                                 "batch_wait_timeout_s": wait_s}
        decoding = decoding_overrides(max_new_tokens=max_new_tokens, num_beams=num_beams, sample=sample,
                                      temperature=temperature, top_p=top_p,
                                      repetition_penalty=repetition_penalty)
        sets = list(set_ or []) + ([f"train.address={address}"] if address else [])
        options = ServeSettings(**{k: v for k, v in flags.items() if v is not None})
        source = model_source(run, checkpoint, preset, sets)
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)  # stop Serve and Ray on `kill` too
        try:
            server = start_server(source, options, decoding=decoding, instruction=instruction)
        except BaseException:
            signal.signal(signal.SIGTERM, previous)
            raise
        typer.echo(f"serving captions at {server.url}  (POST an image; Ctrl-C to stop)")
        try:
            while True:
                time.sleep(1)
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            server.stop()


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(0)
