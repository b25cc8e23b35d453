"""Checkpoint I/O: trainable params (safetensors) + train state (torch, weights_only) + settings.

A checkpoint folder (see `mgpt_train.rundir` for where it lives) holds::

    trainable.safetensors   the requires_grad parameters only, with metadata (epoch, global_step, ...,
                            what they are: projector kind, LM tuning, LoRA, trained encoder parts)
    adapter/                only when the LM is LoRA-tuned: a PEFT adapter folder (checkpoint_extras)
    train_state.pt          {"optimizer", "scaler", "epoch", "step_in_epoch", "global_step", "world_size",
                             "rng": [per-rank RNG states]}; torch.load(weights_only=True) reads it back
    settings.json           the resolved settings of the run

Folders are written into a temporary sibling and moved into place with ``os.replace``, so a crash
never leaves a half-written ``epoch_k/``; Ray records a checkpoint only after that move. What a
killed writer leaves behind (``.epoch_k.tmp-*``) matches no checkpoint name and is removed on resume
(`remove_partial_writes`); `check_checkpoint_dir` reads a folder back before a resume trusts it.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

# the folder layout's file names are defined once, in mgpt_bridge (convert reads these folders too)
from mgpt_bridge.checkpoint import TRAIN_STATE_FILE as STATE_FILE
from mgpt_bridge.checkpoint import TRAINABLE_FILE, trainable_file
from mgpt_train.checkpoint_extras import bridge_facts, write_adapter_if_lora
from mgpt_train.fault_injection import checkpoint_copy_function
from mgpt_train.rundir import SETTINGS_FILE, write_json

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- RNG states
def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy (global) and torch RNG states as weights_only-loadable tensors/ints."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"name": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "cached_gaussian": float(np_gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of `capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------- trainable params
def _save_trainable(path: Path, state_dict: dict[str, torch.Tensor], metadata: dict[str, Any]) -> None:
    from mgpt_bridge.checkpoint import save_trainable

    save_trainable(path, state_dict, metadata)


def _load_trainable(path: Path) -> dict[str, torch.Tensor]:
    from mgpt_bridge.checkpoint import load_trainable

    loaded = load_trainable(path)
    return loaded[0] if isinstance(loaded, tuple) else loaded


# ---------------------------------------------------------------------------- folders
def write_checkpoint_dir(
    dest: Path,
    trainable: dict[str, torch.Tensor],
    train_state: dict[str, Any],
    settings: dict[str, Any],
) -> Path:
    """Write a complete checkpoint folder at ``dest`` atomically (temp sibling + ``os.replace``)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        metadata = {k: str(train_state[k]) for k in ("epoch", "step_in_epoch", "global_step")
                    if k in train_state}
        tensors = {k: v.detach().cpu().contiguous() for k, v in trainable.items()}
        metadata.update(bridge_facts(settings))
        _save_trainable(tmp / TRAINABLE_FILE, tensors, metadata)
        write_adapter_if_lora(tmp, tensors, settings)
        torch.save(train_state, tmp / STATE_FILE)
        write_json(tmp / SETTINGS_FILE, settings)
        _replace_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _replace_dir(src: Path, dest: Path) -> None:
    """Move folder ``src`` onto ``dest``; an existing ``dest`` (a redone epoch) is swapped out first."""
    if dest.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
        os.replace(dest, old / dest.name)
        os.replace(src, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dest)


def copy_dir_atomic(src: Path, dest: Path) -> Path:
    """Copy folder ``src`` to ``dest`` through a temporary sibling and ``os.replace``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        shutil.copytree(src, tmp, dirs_exist_ok=True, copy_function=checkpoint_copy_function(dest))
        _replace_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def read_checkpoint_dir(path: Path | str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read ``(trainable_state_dict, train_state)`` back from a checkpoint folder."""
    path = Path(path)
    for name in (TRAINABLE_FILE, STATE_FILE):
        if not (path / name).is_file():
            raise FileNotFoundError(f"checkpoint {path} lacks {name}")
    return _load_trainable(path / TRAINABLE_FILE), read_train_state(path)


def read_train_state(path: Path | str) -> dict[str, Any]:
    """The ``train_state.pt`` of a checkpoint folder (``torch.load(weights_only=True)``)."""
    return torch.load(Path(path) / STATE_FILE, map_location="cpu", weights_only=True)


def latest_checkpoint_dir(run_dir: Path | str) -> Path | None:
    """The checkpoint Ray Train will hand to ``get_checkpoint()`` when this run resumes, or None.

    Read from Ray's own record (``checkpoints/checkpoint_manager_snapshot.json``: its
    ``latest_checkpoint_result``), so it is the checkpoint the workers restore, never a folder Ray
    did not register (a crash between the folder's move and Ray's record).
    """
    from mgpt_train.rundir import CHECKPOINTS_DIR, SNAPSHOT_FILE

    root = Path(run_dir) / CHECKPOINTS_DIR
    snapshot = root / SNAPSHOT_FILE
    if not snapshot.is_file():
        return None
    latest = json.loads(snapshot.read_text()).get("latest_checkpoint_result")
    if not latest:
        return None
    return root / plain_checkpoint_name(latest["checkpoint_dir_name"], snapshot)


def wait_until_recorded(run_dir: Path | str, dir_name: str, *, timeout_s: float = 60.0,
                        poll_s: float = 0.05) -> bool:
    """Wait until Ray's record (`latest_checkpoint_dir`) names ``dir_name``; False after ``timeout_s``.

    Ray Train's controller records a reported checkpoint only when it next drains the worker's result
    queue (every ``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S``), and a worker killed before that takes the
    report with it: the folder is on disk, but a resume would not know it. Rank 0 waits here after each
    report, so training never runs past a checkpoint that Ray could still forget.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            latest = latest_checkpoint_dir(run_dir)
        except ValueError:  # the controller is rewriting the record: read it again
            latest = None
        if latest is not None and latest.name == dir_name:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)


def plain_checkpoint_name(name: str, source: Path | str) -> str:
    """``name`` when it is a plain folder name (so it stays inside ``checkpoints/``); else ValueError."""
    if not isinstance(name, str) or not name or name in {".", ".."} or "/" in name or "\\" in name:
        raise ValueError(f"{source} names checkpoint {name!r}, not a folder inside checkpoints/")
    return name


def read_trainable(path: Path | str) -> dict[str, torch.Tensor]:
    """The trainable parameters of a checkpoint folder (or of a ``.safetensors`` file)."""
    path = Path(path)
    file = trainable_file(path)
    if not file.is_file():
        raise FileNotFoundError(f"no trainable parameters at {file}")
    return _load_trainable(file)


def atomic_upload_fn(experiment_dir: Path) -> Callable[[Any, str], Any]:
    """A ``checkpoint_upload_fn`` for `ray.train.report` that copies atomically into ``experiment_dir``.

    Ray's default upload copies file by file into the final folder; this one copies into a
    temporary sibling and renames it, so ``checkpoints/epoch_k/`` is either complete or absent.
    Local (or shared-filesystem) storage only.
    """

    def upload(checkpoint: Any, checkpoint_dir_name: str) -> Any:
        import ray.train

        dest = copy_dir_atomic(Path(checkpoint.path), Path(experiment_dir) / checkpoint_dir_name)
        return ray.train.Checkpoint.from_directory(str(dest))

    return upload


def list_checkpoints(run_dir: Path) -> list[Path]:
    """The ``epoch_k`` folders of a run, in epoch order."""
    from mgpt_train.rundir import CHECKPOINTS_DIR

    root = Path(run_dir) / CHECKPOINTS_DIR
    found = [p for p in root.glob("epoch_*") if p.is_dir() and p.name.split("_", 1)[1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("_", 1)[1]))


# ---------------------------------------------------------------------------- the best checkpoint
BEST_FILE = "best.json"
BEST_METRIC = "CIDEr"


def best_pointer(run_dir: Path | str) -> Path:
    """``RUN_DIR/checkpoints/best.json``: which checkpoint scored the highest CIDEr (a pointer file)."""
    from mgpt_train.rundir import CHECKPOINTS_DIR

    return Path(run_dir) / CHECKPOINTS_DIR / BEST_FILE


def read_best(run_dir: Path | str) -> dict[str, Any] | None:
    """The best-checkpoint record, with ``path`` resolved, or None when there is none (or it is stale)."""
    import json

    pointer = best_pointer(run_dir)
    if not pointer.is_file():
        return None
    record = json.loads(pointer.read_text())
    path = Path(record["checkpoint"])
    path = path if path.is_absolute() else Path(run_dir) / path
    if not path.is_dir():
        logger.warning("%s names %s, which no longer exists (removed by train.keep_checkpoints?)",
                       pointer, path)
        return None
    return {**record, "path": path.resolve()}


def best_scored_row(rows: list[dict[str, Any]], metric: str = BEST_METRIC) -> dict[str, Any] | None:
    """The trained row (epoch >= 0; never the baseline) with the highest ``metric``, ties to the later
    epoch, or None: the one rule that picks a run's best (``best.json``, `mgpt_train.compare`)."""
    scored = [r for r in rows if int(r.get("epoch", -1)) >= 0 and r.get("scores", {}).get(metric) is not None]
    return max(scored, key=lambda r: (float(r["scores"][metric]), int(r["epoch"])), default=None)


def record_best_checkpoint(
    run_dir: Path | str, rows: list[dict[str, Any]], checkpoints: dict[str, Path | None], *, split: str,
) -> dict[str, Any] | None:
    """Point ``checkpoints/best.json`` (and ``summary.json``'s ``best_checkpoint``) at the checkpoint with
    the highest CIDEr among ``rows`` (mgpt_eval report rows; the baseline never counts). A previous best
    scored on the same split and images stays when it still exists and scored higher."""
    from mgpt_train.rundir import SUMMARY_FILE, read_json

    run_dir = Path(run_dir).resolve()
    row = best_scored_row([r for r in rows if checkpoints.get(r["name"]) is not None])
    if row is None:
        return None
    value = float(row["scores"][BEST_METRIC])
    path = Path(checkpoints[row["name"]]).resolve()
    where = path.relative_to(run_dir) if path.is_relative_to(run_dir) else path
    best = {"checkpoint": str(where), "name": row["name"], "epoch": int(row["epoch"]), "metric": BEST_METRIC,
            "value": value, "split": split, "n_images": int(row.get("n_images", 0))}
    previous = read_best(run_dir)
    if (previous is not None and previous["split"] == split and previous["n_images"] == best["n_images"]
            and previous["value"] > value):
        best = {k: v for k, v in previous.items() if k != "path"}
    write_json(best_pointer(run_dir), best)
    summary_path = run_dir / SUMMARY_FILE
    summary = read_json(summary_path) if summary_path.is_file() else {}
    write_json(summary_path, {**summary, "best_checkpoint": best})
    logger.info("best checkpoint: %s (%s %.4f on %s)", best["name"], BEST_METRIC, best["value"], split)
    return best


def default_checkpoint(run_dir: Path | str) -> Path | None:
    """The checkpoint inference uses for a run when none is named: ``best`` (highest CIDEr at the last
    evaluation) if recorded, else the last epoch, else None (no checkpoint: the untrained bridge)."""
    best = read_best(run_dir)
    if best is not None:
        return best["path"]
    found = list_checkpoints(Path(run_dir))
    return found[-1] if found else None
# ---------------------------------------------------------------------------- checks
class DamagedCheckpointError(ValueError):
    """A checkpoint folder with a file that is missing or cannot be read back (e.g. truncated)."""


def _read_back(file: Path) -> None:
    if file.suffix == ".safetensors":
        _load_trainable(file)
    elif file.suffix == ".pt":
        torch.load(file, map_location="cpu", weights_only=True)
    elif file.suffix == ".json":
        json.loads(file.read_text())


def check_checkpoint_dir(path: Path | str) -> None:
    """Read every file of checkpoint folder ``path`` back (tensors, train state, JSON, a LoRA adapter);
    raise `DamagedCheckpointError` naming the first file that is missing or unreadable."""
    path = Path(path)
    for name in (TRAINABLE_FILE, STATE_FILE, SETTINGS_FILE):
        if not (path / name).is_file():
            raise DamagedCheckpointError(f"checkpoint file {path / name} is missing")
    for file in sorted(f for f in path.rglob("*") if f.is_file()):
        try:
            _read_back(file)
        except Exception as e:  # every reader has its own error types; all mean "damaged"
            why = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise DamagedCheckpointError(f"checkpoint file {file} cannot be read back ({why}); "
                                         f"{file.stat().st_size} bytes on disk") from e


def remove_partial_writes(run_dir: Path | str) -> list[Path]:
    """Clean up after checkpoint writers that were killed in ``run_dir/checkpoints``: ``.NAME.tmp-*``
    folders (a copy that never finished, never a checkpoint) are deleted; a ``.NAME.old-*/NAME`` whose
    ``NAME`` is gone (killed between `_replace_dir`'s two moves) is moved back. Returns the folders
    handled. Call only while no run writes there."""
    from mgpt_train.rundir import CHECKPOINTS_DIR

    root = Path(run_dir) / CHECKPOINTS_DIR
    found = sorted(p for pattern in (".*.tmp-*", ".*.old-*") for p in root.glob(pattern) if p.is_dir())
    for leftover in found:
        name = leftover.name[1:].split(".old-", 1)[0]
        if ".old-" in leftover.name and (leftover / name).is_dir() and not (root / name).exists():
            os.replace(leftover / name, root / name)
            logger.warning("moved %s back: the write that was replacing it never finished", root / name)
        else:
            logger.warning("removed %s: a checkpoint write that never finished", leftover)
        shutil.rmtree(leftover, ignore_errors=True)
    return found


def estimate_checkpoint_bytes(n_trainable: int, world_size: int) -> int:
    """Upper estimate of one checkpoint folder: fp32 parameters + AdamW's two moments + a LoRA adapter
    copy (16 bytes a parameter), per-rank RNG states (~16 KiB each) and the JSON files."""
    return 16 * n_trainable + 32 * 1024 * world_size + 64 * 1024
