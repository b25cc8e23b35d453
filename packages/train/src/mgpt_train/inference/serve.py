"""A captioning HTTP endpoint on Ray Serve with dynamic request batching (``@serve.batch``).

``POST <route>`` with an image file's bytes as the body (``curl --data-binary @photo.jpg``) answers
``{"caption", "checkpoint", "instruction", "decoding", "batch_size"}`` (``batch_size``: how many
requests the replica captioned together); an empty, too large or undecodable body gets a 4xx with
``{"error", "detail"}``. ``GET <route>`` describes the model. Requests that arrive within
``batch_wait_timeout_s`` of each other are captioned in one ``generate`` call of up to
``max_batch_size`` images. The HTTP proxy binds 127.0.0.1 unless ``host`` says otherwise, and each
replica's internal gRPC server its Ray node's address (`bind_replica_grpc_to_node_address`). Needs the
``serve`` extra (``mgpt-train[serve]``: ``ray[serve]``).
"""

from __future__ import annotations

import asyncio
import io
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from ray import serve

from mgpt_train.inference.loading import ModelSource

logger = logging.getLogger(__name__)

APP_NAME = "mgpt-caption"


class ServeSettings(BaseSettings):
    """Where and how the endpoint runs (env prefix ``MGPT_SERVE__``; CLI flags override)."""

    model_config = SettingsConfigDict(env_prefix="MGPT_SERVE__", extra="forbid")

    host: str = Field("127.0.0.1", description="HTTP proxy address (0.0.0.0 = every interface)")
    port: int = Field(8000, ge=1, le=65535)
    route_prefix: str = Field("/caption", pattern=r"^/")
    replicas: int = Field(1, ge=1, description="model replicas (each holds the whole model)")
    gpus_per_replica: float = Field(0.0, ge=0, description="> 0 runs the replicas on CUDA")
    cpus_per_replica: float = Field(1.0, ge=0)
    threads_per_replica: int | None = Field(None, ge=1, description="torch threads (None = torch's default)")
    max_batch_size: int = Field(8, ge=1, description="1 = no batching")
    batch_wait_timeout_s: float = Field(0.05, ge=0, description="how long a batch waits to fill")
    max_ongoing_requests: int = Field(128, ge=1, description="per replica; must exceed max_batch_size")
    max_upload_bytes: int = Field(20_000_000, ge=1)


class CaptionDeployment:
    """The Serve replica: the model, a batched captioning method and the HTTP handler."""

    def __init__(self, settings: dict[str, Any], checkpoint: str | None, serve_settings: dict[str, Any],
                 decoding: dict[str, Any] | None = None, instruction: str | None = None):
        import torch

        from mgpt_train.inference.loading import InferenceModel, with_decoding
        from mgpt_train.run_settings import RunSettings

        self.options = ServeSettings(**serve_settings)
        bind_replica_grpc_to_node_address()
        if self.options.threads_per_replica:
            torch.set_num_threads(self.options.threads_per_replica)
        source = ModelSource(RunSettings.from_json_dict(settings),
                             None if checkpoint is None else Path(checkpoint))
        self.model = InferenceModel(source, device="cuda" if self.options.gpus_per_replica > 0 else "cpu")
        self.decoding = with_decoding(self.model.model.generation_settings, **(decoding or {})).model_dump()
        self.instruction = instruction or self.model.model.template.instructions[0]
        self.caption_batch.set_max_batch_size(self.options.max_batch_size)
        self.caption_batch.set_batch_wait_timeout_s(self.options.batch_wait_timeout_s)

    def _caption(self, images: list[Any]) -> list[str]:
        from mgpt_train.captioning import caption_images

        with self.model.lock, self.model.autocast():
            return caption_images(self.model.model, images, batch_size=len(images),
                                  instruction=self.instruction, **self.decoding)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.05)  # both set from ServeSettings in __init__
    async def caption_batch(self, images: list[Any]) -> list[dict[str, Any]]:
        """Caption the requests that arrived together (one ``generate`` call)."""
        loop = asyncio.get_running_loop()
        captions = await loop.run_in_executor(None, self._caption, images)  # keep accepting requests
        return [{"caption": c, "checkpoint": self.model.name, "instruction": self.instruction,
                 "decoding": self.decoding, "batch_size": len(images)} for c in captions]

    async def __call__(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        from mgpt_data.images import ImageDecodeError, decode_image

        if request.method == "GET":
            return JSONResponse({"model": self.model.model.summary(), "checkpoint": self.model.name,
                                 "decoding": self.decoding, "usage": "POST an image file's bytes"})
        if request.method != "POST":
            return _error(405, "method_not_allowed", "POST an image file's bytes (GET describes the model)")
        body = await request.body()
        if not body:
            return _error(400, "empty_body", "the request has no body: POST an image file's bytes")
        if len(body) > self.options.max_upload_bytes:
            limit = self.options.max_upload_bytes
            return _error(413, "too_large", f"{len(body)} bytes; the limit is {limit}")
        try:
            image = decode_image(io.BytesIO(body))  # PIL opens a file object as it opens a path
        except ImageDecodeError as e:
            return _error(400, e.reason, f"the upload is not an image PIL can decode: {e.detail}")
        return JSONResponse(await self.caption_batch(image))


def bind_replica_grpc_to_node_address() -> None:
    """Make this replica's inter-deployment gRPC server listen on its Ray node's address, not ``[::]``.

    Ray Serve 2.60 starts it, after the deployment's constructor, with a hard-coded ``"[::]:0"``
    (``ray/serve/_private/replica.py``, ``_on_initialized``), so every replica of a private 127.0.0.1
    Ray listened on all interfaces. Its callers dial ``node_ip:port`` (``RunningReplicaInfo.node_ip``),
    so the node's own address is all they need: 127.0.0.1 locally, the node's IP in a cluster. Called
    from the constructor, in the replica process; a Ray without that seam is left as it is.
    """
    import ray
    from ray.serve._private import replica

    original = getattr(replica, "add_port_to_grpc_server", None)
    if original is None or getattr(original, "mgpt_bound", False):
        return
    host = ray.util.get_node_ip_address()
    host = f"[{host}]" if ":" in host else host

    def add_port(server: Any, address: str) -> int:
        if address.startswith("[::]:"):
            address = f"{host}:{address.rsplit(':', 1)[1]}"
        return original(server, address)

    add_port.mgpt_bound = True  # type: ignore[attr-defined]
    replica.add_port_to_grpc_server = add_port


def _error(status: int, reason: str, detail: str) -> Any:
    from starlette.responses import JSONResponse

    return JSONResponse({"error": reason, "detail": detail}, status_code=status)


def build_app(source: ModelSource, options: ServeSettings, *, decoding: dict[str, Any] | None = None,
              instruction: str | None = None) -> Any:
    """The Serve application (not yet running): ``options.replicas`` × `CaptionDeployment`."""
    if options.max_ongoing_requests < options.max_batch_size:
        raise ValueError(f"max_ongoing_requests ({options.max_ongoing_requests}) must be >= max_batch_size "
                         f"({options.max_batch_size}), or batches can never fill")

    deployment = serve.deployment(CaptionDeployment, name="Captioner").options(
        num_replicas=options.replicas, max_ongoing_requests=options.max_ongoing_requests,
        ray_actor_options={"num_cpus": options.cpus_per_replica, "num_gpus": options.gpus_per_replica},
    )
    settings = source.settings.with_absolute_paths().to_json_dict()
    checkpoint = None if source.checkpoint is None else str(source.checkpoint)
    return deployment.bind(settings, checkpoint, options.model_dump(), decoding, instruction)


@dataclass
class RunningServer:
    """A started endpoint: its URL; `stop` shuts Serve down and disconnects from Ray (a local Ray that
    `start_server` started stops with it)."""

    url: str

    def stop(self) -> None:
        import ray

        serve.shutdown()
        ray.shutdown()


def start_server(source: ModelSource, options: ServeSettings | None = None, *,
                 decoding: dict[str, Any] | None = None, instruction: str | None = None) -> RunningServer:
    """Start Ray (`ensure_ray`: local on 127.0.0.1 unless ``train.address``), the Serve HTTP proxy on
    ``options.host:port`` and the deployment; return once the replicas are ready."""
    from mgpt_train.ray_setup import ensure_ray

    options = options or ServeSettings()
    app = build_app(source, options, decoding=decoding, instruction=instruction)
    ensure_ray(source.settings.train)
    serve.start(http_options={"host": options.host, "port": options.port})
    serve.run(app, name=APP_NAME, route_prefix=options.route_prefix)
    url = f"http://{options.host}:{options.port}{options.route_prefix}"
    logger.info("serving %s (%d replica(s), batches of up to %d) at %s", source.name, options.replicas,
                options.max_batch_size, url)
    return RunningServer(url)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def serve_until_stopped(source: ModelSource, options: ServeSettings | None = None, *,
                        decoding: dict[str, Any] | None = None, instruction: str | None = None,
                        on_ready: Callable[[str], None] | None = None) -> None:
    """`start_server`, call ``on_ready(url)``, then block until Ctrl-C or SIGTERM; Serve and Ray stop
    either way (what ``mgpt serve`` runs)."""
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)  # `kill` stops Serve and Ray too
    server = None
    try:
        server = start_server(source, options, decoding=decoding, instruction=instruction)
        if on_ready is not None:
            on_ready(server.url)
        while True:
            time.sleep(1)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        if server is not None:
            server.stop()
