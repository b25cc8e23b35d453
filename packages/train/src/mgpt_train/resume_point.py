"""Which checkpoint a resumed run starts from, checked before any worker starts.

Ray Train V2 resumes from the *latest* checkpoint in its own record,
``RUN_DIR/checkpoints/checkpoint_manager_snapshot.json``: the controller hands it to every worker
(``ray.train.get_checkpoint()``), and the training plan (`mgpt_train.ingest.TrainPlan`) reads the
same record (`mgpt_train.checkpointing.latest_checkpoint_dir`) to start the data where that
checkpoint left off; each micro-batch is checked against the restored position, so the two must agree.

`prepare_resume` runs on the driver before Ray Train starts:

1. it removes what killed checkpoint writers left behind (`remove_partial_writes`);
2. with ``train.resume_from = NAME`` (``train --resume RUN_DIR --resume-from NAME``) it **rewinds
   Ray's record** to NAME (`rewind_to`): NAME is read back first, then the record is rewritten
   (atomically, the old one kept as ``checkpoint_manager_snapshot.json.before-NAME``) so that NAME is
   its latest checkpoint and every checkpoint reported after NAME is dropped from it; those folders
   are moved aside (``.LATER.superseded-NAME``) and are written again as training reaches them. Because
   the workers' restore and the plan both read that one record, they agree without either being
   told about NAME;
3. it reads the latest recorded checkpoint back (`check_checkpoint_dir`) and refuses a damaged one
   with a one-line `DamagedCheckpointError` naming the file and the earlier checkpoints to fall back to.

``resume_from`` is an action, not a property of the run: the settings returned (and so
``settings.json``) have it cleared, so a later ``--resume`` does not rewind again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from mgpt_train.checkpointing import (
    DamagedCheckpointError,
    check_checkpoint_dir,
    latest_checkpoint_dir,
    plain_checkpoint_name,
    remove_partial_writes,
)
from mgpt_train.run_settings import RunSettings
from mgpt_train.rundir import CHECKPOINTS_DIR, SNAPSHOT_FILE, atomic_write_text

logger = logging.getLogger(__name__)


def _snapshot(run_dir: Path) -> tuple[Path, dict[str, Any]]:
    path = run_dir / CHECKPOINTS_DIR / SNAPSHOT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} has no checkpoints to resume from (no {path.name})")
    return path, json.loads(path.read_text())


def recorded_checkpoints(run_dir: Path | str) -> list[str]:
    """Names of the checkpoints Ray recorded for ``run_dir``, in the order they were reported."""
    _, snap = _snapshot(Path(run_dir))
    pairs = zip(snap["checkpoint_report_indices"], snap["checkpoint_results"], strict=True)
    return [r["checkpoint_dir_name"] for _, r in sorted(pairs, key=lambda p: p[0])]


def rewind_to(run_dir: Path | str, name: str) -> list[str]:
    """Make recorded checkpoint ``name`` the one Ray resumes from (see the module docstring); returns the
    names of the later checkpoints dropped from the record."""
    run_dir = Path(run_dir)
    path, snap = _snapshot(run_dir)
    names = [plain_checkpoint_name(r["checkpoint_dir_name"], path) for r in snap["checkpoint_results"]]
    if name not in names:
        raise ValueError(f"resume_from {name!r} is not a checkpoint recorded for {run_dir} "
                         f"(recorded: {', '.join(recorded_checkpoints(run_dir)) or 'none'})")
    check_checkpoint_dir(path.parent / name)
    cut = snap["checkpoint_report_indices"][names.index(name)]
    keep = [i for i, index in enumerate(snap["checkpoint_report_indices"]) if index <= cut]
    kept = {names[i] for i in keep}
    dropped = [n for n in recorded_checkpoints(run_dir) if n not in kept]
    pending = [(r, v) for r, v in zip(snap["pending_training_results"], snap["pending_validation_specs"],
                                      strict=True) if r["checkpoint_dir_name"] in kept]
    snap.update({
        "checkpoint_results": [snap["checkpoint_results"][i] for i in keep],
        "checkpoint_report_indices": [snap["checkpoint_report_indices"][i] for i in keep],
        "latest_checkpoint_result": snap["checkpoint_results"][names.index(name)],
        "pending_training_results": [r for r, _ in pending],
        "pending_validation_specs": [v for _, v in pending]})
    for key in ("validated_checkpoint_dir_names", "timed_out_validation_checkpoint_dir_names",
                "failed_validation_checkpoint_dir_names"):
        snap[key] = [n for n in snap.get(key, []) if n in kept]
    atomic_write_text(path.with_name(f"{SNAPSHOT_FILE}.before-{name}"), path.read_text())
    atomic_write_text(path, json.dumps(snap))
    for later in dropped:
        folder, aside = path.parent / later, path.parent / f".{later}.superseded-{name}"
        if folder.exists():
            shutil.rmtree(aside, ignore_errors=True)  # left by an earlier rewind to the same checkpoint
            os.replace(folder, aside)
    logger.warning("resuming %s from %s: dropped the later checkpoint(s) %s from Ray's record; they are "
                   "trained again", run_dir, name, ", ".join(dropped) or "(none)")
    return dropped


def check_resumable(run_dir: Path | str) -> Path:
    """The latest recorded checkpoint of ``run_dir``, read back; `DamagedCheckpointError` if it is not."""
    run_dir = Path(run_dir)
    latest = latest_checkpoint_dir(run_dir)
    if latest is None:
        raise FileNotFoundError(f"{run_dir} has no checkpoints to resume from")
    try:
        check_checkpoint_dir(latest)
    except DamagedCheckpointError as e:
        earlier = [n for n in recorded_checkpoints(run_dir) if n != latest.name]
        hint = (f"resume from an earlier one with --resume-from NAME (train.resume_from), recorded: "
                f"{', '.join(earlier)}" if earlier else "no earlier checkpoint is recorded")
        raise DamagedCheckpointError(f"cannot resume {run_dir}: {e}; {hint}") from e
    return latest


def prepare_resume(run_dir: Path | str, settings: RunSettings) -> RunSettings:
    """Clean up, rewind to ``settings.train.resume_from`` if set, check the latest checkpoint; returns
    ``settings`` with ``resume_from`` cleared."""
    remove_partial_writes(run_dir)
    if settings.train.resume_from is not None:
        rewind_to(run_dir, settings.train.resume_from)
    check_resumable(run_dir)
    return without_resume_from(settings)


def without_resume_from(settings: RunSettings) -> RunSettings:
    """``settings`` with ``train.resume_from`` cleared."""
    data = settings.to_json_dict()
    data["train"]["resume_from"] = None
    return RunSettings.from_json_dict(data)
