"""One small adapter per experiment tracker (`train.tracker`), each over the real library.

Every adapter offers the same five calls (`TrackerBackend`); `mgpt_train.tracking` decides what to
log and when. The libraries are optional extras: ``pip install 'mgpt-train[mlflow]'`` (or
``[wandb]``, ``[tensorboard]``); a missing one is a `TrackerUnavailableError` before training starts.
"""

from __future__ import annotations

import json
import logging
import netrc
import os
import time
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

logger = logging.getLogger(__name__)

MLFLOW_DIR, WANDB_DIR, TENSORBOARD_DIR = "mlflow", "wandb", "tensorboard"
_MLFLOW_PARAM_CHARS = 6000  # MLflow's limit on one parameter value
_MLFLOW_BATCH = 100  # params per log_batch call (MLflow's limit); metrics allow 1000


class TrackerUnavailableError(ValueError):
    """The chosen tracker's library is not installed."""


class TrackerBackend(Protocol):
    """What `mgpt_train.tracking.RunTracker` needs from a tracker."""

    run_id: str
    where: str  # one line telling the user where to look (a UI command or a folder)

    def log_settings(self, settings: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...
    def log_image(self, key: str, path: Path, step: int) -> None: ...
    def log_table(self, key: str, columns: list[str], rows: list[list[str]]) -> None: ...
    def close(self, *, failed: bool = False) -> None: ...


def _require(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise TrackerUnavailableError(
            f"train.tracker = {extra!r} needs the {extra} package: pip install 'mgpt-train[{extra}]' "
            "(or set train.tracker = none)") from e


def flatten(settings: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"train": {"lr": 1}}`` → ``{"train.lr": "1"}``; lists and None as JSON text."""
    out: dict[str, str] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value if isinstance(value, str) else json.dumps(value)
    return out


def markdown_table(columns: list[str], rows: list[list[str]]) -> str:
    """A GitHub-style markdown table (pipes in cells escaped)."""
    def cells(values: list[str]) -> str:
        return "| " + " | ".join(str(v).replace("|", "\\|").replace("\n", " ") for v in values) + " |"

    return "\n".join([cells(columns), cells(["---"] * len(columns)), *(cells(r) for r in rows)])


# ---------------------------------------------------------------------------------------------- MLflow
class MlflowBackend:
    """An MLflow run: by default in a local SQLite store under the run dir (``mlflow ui`` opens it)."""

    def __init__(self, run_dir: Path, *, uri: str | None, project: str, run_name: str,
                 run_id: str | None = None) -> None:
        mlflow = _require("mlflow", "mlflow")
        artifact_location = None
        if uri is None:
            store = run_dir / MLFLOW_DIR
            store.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{store / 'mlflow.db'}"
            artifact_location = (store / "artifacts").as_uri()
        self.client = mlflow.MlflowClient(tracking_uri=uri)
        experiment = self.client.get_experiment_by_name(project)
        experiment_id = (experiment.experiment_id if experiment is not None
                         else self.client.create_experiment(project, artifact_location=artifact_location))
        if run_id is not None:
            self.client.update_run(run_id, status="RUNNING")
        else:
            run_id = self.client.create_run(experiment_id, run_name=run_name).info.run_id
        self.run_id = run_id
        local_store = uri.startswith("sqlite")
        self.where = f"mlflow ui --backend-store-uri {uri}" if local_store else f"MLflow at {uri}"

    def log_settings(self, settings: dict[str, Any]) -> None:
        from mlflow.entities import Param

        known = self.client.get_run(self.run_id).data.params  # a resumed run keeps its first values
        params = [Param(k, v[:_MLFLOW_PARAM_CHARS]) for k, v in flatten(settings).items() if k not in known]
        for i in range(0, len(params), _MLFLOW_BATCH):
            self.client.log_batch(self.run_id, params=params[i:i + _MLFLOW_BATCH])
        self.client.log_dict(self.run_id, settings, "settings.json")

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_image(self, key: str, path: Path, step: int) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path=key.rpartition("/")[0] or None)

    def log_table(self, key: str, columns: list[str], rows: list[list[str]]) -> None:
        data = {c: [r[i] for r in rows] for i, c in enumerate(columns)}
        self.client.log_table(self.run_id, data=data, artifact_file=f"{key}.json")

    def close(self, *, failed: bool = False) -> None:
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")


# ---------------------------------------------------------------------------------------------- W&B
def wandb_api_key_available() -> bool:
    """An API key in ``WANDB_API_KEY`` or in ``~/.netrc`` for the W&B host (``WANDB_BASE_URL``)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


class WandbBackend:
    """A W&B run under ``RUN_DIR/wandb/``: offline without an API key (``wandb sync`` later), else online."""

    def __init__(self, run_dir: Path, *, project: str, run_name: str, run_id: str | None = None) -> None:
        wandb = _require("wandb", "wandb")
        self._wandb = wandb
        mode = os.environ.get("WANDB_MODE") or ("online" if wandb_api_key_available() else "offline")
        self.run = wandb.init(
            project=project, name=run_name, dir=str(run_dir), id=run_id, resume="allow" if run_id else None,
            mode=mode, settings=wandb.Settings(silent=True, x_disable_stats=True, console="off"))
        for prefix in ("train/*", "eval/*"):
            self.run.define_metric(prefix, step_metric="global_step")
        self.run_id = self.run.id
        self.where = (f"wandb sync {Path(self.run.dir).parent}" if mode == "offline"
                      else f"W&B run {self.run.get_url() or self.run.id}")

    def log_settings(self, settings: dict[str, Any]) -> None:
        self.run.config.update(settings, allow_val_change=True)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.run.log({**metrics, "global_step": step})

    def log_image(self, key: str, path: Path, step: int) -> None:
        self.run.log({key: self._wandb.Image(str(path)), "global_step": step})

    def log_table(self, key: str, columns: list[str], rows: list[list[str]]) -> None:
        self.run.log({key: self._wandb.Table(columns=columns, data=rows)})

    def close(self, *, failed: bool = False) -> None:
        self.run.finish(exit_code=1 if failed else 0)


# ---------------------------------------------------------------------------------------------- TensorBoard
class TensorBoardBackend:
    """Event files under ``RUN_DIR/tensorboard/`` (or ``train.tracking_uri``) by torch's SummaryWriter."""

    def __init__(self, run_dir: Path, *, log_dir: str | None) -> None:
        _require("tensorboard", "tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        folder = Path(log_dir).expanduser() if log_dir else run_dir / TENSORBOARD_DIR
        self.writer = SummaryWriter(log_dir=str(folder))
        self.run_id = str(folder)
        self.where = f"tensorboard --logdir {folder}"

    def log_settings(self, settings: dict[str, Any]) -> None:
        text = json.dumps(settings, indent=2, sort_keys=True)
        self.writer.add_text("settings", "    " + text.replace("\n", "\n    "))  # a markdown code block
        self.writer.flush()

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, float(value), step)
        self.writer.flush()

    def log_image(self, key: str, path: Path, step: int) -> None:
        import numpy as np
        from PIL import Image

        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        self.writer.add_image(key, pixels, step, dataformats="HWC")
        self.writer.flush()

    def log_table(self, key: str, columns: list[str], rows: list[list[str]]) -> None:
        self.writer.add_text(key, markdown_table(columns, rows))
        self.writer.flush()

    def close(self, *, failed: bool = False) -> None:
        self.writer.close()
