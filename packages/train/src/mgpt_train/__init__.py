"""mgpt_train: TrainSettings/RunSettings, the MiniGPT-4 schedule, Ray Train `fit` and Ray Data `predict`.

Light names load eagerly; those that pull in Ray, torch or the model packages load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from mgpt_train.schedule import linear_warmup_cosine_lr
from mgpt_train.settings import TrainSettings

_LAZY = {
    "RunSettings": "mgpt_train.run_settings",
    "load_run_settings": "mgpt_train.run_settings",
    "parse_set_options": "mgpt_train.run_settings",
    "fit": "mgpt_train.fit",
    "train_loop_per_worker": "mgpt_train.loop",
    "predict": "mgpt_train.predict",
    "predict_local": "mgpt_train.predict",
    "CaptionPredictor": "mgpt_train.predict",
    "build_model": "mgpt_train.modeling",
    "build_optimizer": "mgpt_train.optim",
    "param_groups": "mgpt_train.optim",
    "list_checkpoints": "mgpt_train.checkpointing",
    "read_checkpoint_dir": "mgpt_train.checkpointing",
    "read_trainable": "mgpt_train.checkpointing",
    "write_checkpoint_dir": "mgpt_train.checkpointing",
    "read_metrics": "mgpt_train.metrics_log",
    "make_run_dir": "mgpt_train.rundir",
}

__all__ = ["TrainSettings", "linear_warmup_cosine_lr", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover
    from mgpt_train.checkpointing import list_checkpoints as list_checkpoints
    from mgpt_train.checkpointing import read_checkpoint_dir as read_checkpoint_dir
    from mgpt_train.checkpointing import read_trainable as read_trainable
    from mgpt_train.checkpointing import write_checkpoint_dir as write_checkpoint_dir
    from mgpt_train.fit import fit as fit
    from mgpt_train.loop import train_loop_per_worker as train_loop_per_worker
    from mgpt_train.metrics_log import read_metrics as read_metrics
    from mgpt_train.modeling import build_model as build_model
    from mgpt_train.optim import build_optimizer as build_optimizer
    from mgpt_train.optim import param_groups as param_groups
    from mgpt_train.predict import CaptionPredictor as CaptionPredictor
    from mgpt_train.predict import predict as predict
    from mgpt_train.predict import predict_local as predict_local
    from mgpt_train.run_settings import RunSettings as RunSettings
    from mgpt_train.run_settings import load_run_settings as load_run_settings
    from mgpt_train.run_settings import parse_set_options as parse_set_options
    from mgpt_train.rundir import make_run_dir as make_run_dir


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mgpt_train' has no attribute {name!r}")
