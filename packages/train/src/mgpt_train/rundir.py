"""The run directory: the one folder a user looks at after `mgpt train`.

Layout of ``RUN_DIR = <output_dir>/<run_name>/``::

    settings.json            resolved RunSettings (all five sections), written by the driver
    summary.json             trainable-parameter count, model summary, data summary, iterations,
                             the feature-cache file used (features live in the shared cache,
                             ``$MGPT_CACHE_DIR/features/``, keyed by the encoder's fingerprint)
    metrics.jsonl            one JSON line per iteration (rank 0): epoch, step, global_step, loss,
                             lr, sec_per_it, data_sec, cpu_sec (rank 0's CPU seconds: below
                             sec_per_it x threads, the worker waited for a core), time; cut back on
                             resume, so never duplicated
    rejects.jsonl            inputs that could not be used, with a reason (CSV rows, images)
    checkpoints/             Ray Train's experiment folder: RunConfig(storage_path=RUN_DIR,
                             name="checkpoints")
      epoch_{k}/             after epoch k (0-based, as upstream's checkpoint_{k}.pth), atomic:
        trainable.safetensors  the requires_grad parameters only (projector, LoRA, ...)
        train_state.pt         optimizer, GradScaler, next epoch/step_in_epoch, global_step,
                               per-rank RNG states (torch.load(weights_only=True) reads it)
        settings.json          the resolved settings the checkpoint was trained with
      step_{n}/              same content after global step n (checkpoint_every_steps, stop_at_step)
      checkpoint_manager_snapshot.json   Ray's record of the checkpoints: what makes re-runs resume
      best.json              after evaluation: the checkpoint with the highest CIDEr (a pointer file)
    eval/                    predictions and metric reports of the baseline and each checkpoint
    mlflow/ | wandb/ | tensorboard/   the experiment tracker's local files (``train.tracker``)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

SETTINGS_FILE = "settings.json"
SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.jsonl"
REJECTS_FILE = "rejects.jsonl"
CHECKPOINTS_DIR = "checkpoints"
SNAPSHOT_FILE = "checkpoint_manager_snapshot.json"  # Ray Train's record of a run's checkpoints
EVAL_DIR = "eval"
#: where runs go when ``train.output_dir`` is None: here, or (inside a Ray job) the user's home
DEFAULT_OUTPUT_DIR = Path("runs")
DEFAULT_JOB_OUTPUT_DIR = Path("~/mgpt-runs")
#: the folders of Ray's temporary copy of a job's working dir: <session>/runtime_resources/working_dir_files/
_RAY_WORKING_DIR_PARTS = ("runtime_resources", "working_dir_files")
MIN_FREE_BYTES = 4 * 2**20  # settings, summary, rejects and the first metrics lines


class OutputNotWritableError(PermissionError):
    """The output folder cannot take the run: read-only, not writable, or short of free space."""


def default_run_name() -> str:
    """A sortable timestamp, e.g. ``20250101-120000``."""
    return time.strftime("%Y%m%d-%H%M%S")


def ray_temporary_root(path: Path | str) -> Path | None:
    """The Ray-managed temporary working-dir copy ``path`` lies in (Ray deletes it), or None."""
    parts = Path(path).expanduser().resolve().parts
    for i in range(len(parts) - 1):
        if parts[i:i + 2] == _RAY_WORKING_DIR_PARTS:
            return Path(*parts[:i + 2])
    return None


def check_persistent(path: Path | str) -> Path:
    """``path`` resolved; ``ValueError`` when it lies in Ray's temporary copy of a job's working dir."""
    resolved = Path(path).expanduser().resolve()
    temporary = ray_temporary_root(resolved)
    if temporary is not None:
        raise ValueError(f"{resolved} is inside Ray's temporary copy of the job's working dir "
                         f"({temporary}/...), "
                         "which Ray deletes: give --output-dir an absolute path on persistent storage")
    return resolved


def resolve_output_dir(output_dir: Path | str | None) -> Path:
    """The absolute parent folder of run folders: ``output_dir``, else ``runs/`` (``~/mgpt-runs`` inside a
    Ray job). Refuses (``ValueError``) a folder in Ray's temporary working-dir copy."""
    if output_dir is None:
        from mgpt_data.ray_runtime import in_ray_job

        output_dir = DEFAULT_JOB_OUTPUT_DIR if in_ray_job() else DEFAULT_OUTPUT_DIR
    return check_persistent(output_dir)


def make_run_dir(output_dir: Path | str | None, run_name: str | None = None) -> Path:
    """Create (if needed) and return ``output_dir/run_name``, absolute (see `resolve_output_dir`)."""
    name = run_name or default_run_name()
    if not name or "/" in name or name in {".", ".."}:
        raise ValueError(f"run_name must be a plain folder name, got {name!r}")
    return ensure_writable_dir(resolve_output_dir(output_dir) / name)


def ensure_writable_dir(path: Path, *, min_free: int = MIN_FREE_BYTES) -> Path:
    """Create ``path`` (and parents) and prove a file can be written there with ``min_free`` bytes to
    spare, else raise `OutputNotWritableError` in one line (read-only, permission, full)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-") as f:
            f.write(b"x")
            f.flush()
    except OSError as e:
        raise OutputNotWritableError(f"cannot write to the output folder {path}: {e.strerror or e}") from e
    check_free_space(path, min_free, "the run's settings and logs")
    return path


def check_free_space(path: Path, needed: int, what: str) -> None:
    """Raise `OutputNotWritableError` when ``path``'s file system has fewer than ``needed`` bytes free."""
    free = shutil.disk_usage(path).free
    if free < needed:
        raise OutputNotWritableError(
            f"the output folder {path} has {free / 2**20:.2f} MiB free, {what} need about "
            f"{needed / 2**20:.2f} MiB: free some space or pick another output_dir")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> Any:
    """Read a JSON file with a clear error when it is missing."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    return json.loads(path.read_text())
