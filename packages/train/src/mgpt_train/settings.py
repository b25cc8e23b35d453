"""`TrainSettings`: the knobs of the training run (schedule, batch, precision, Ray, checkpoints)."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = logging.getLogger(__name__)

Precision = Literal["auto", "bf16", "fp16", "fp32"]
Tracker = Literal["none", "mlflow", "wandb", "tensorboard"]
Parallel = Literal["ddp", "fsdp"]


class TrainSettings(BaseSettings):
    """Training hyper-parameters and run plumbing (env prefix ``MGPT_TRAIN__``).

    Defaults are the MiniGPT-4 stage-2 seed recipe (3e-5 → 1e-5, warmup from 1e-6 over 200
    iterations, 5 epochs, AdamW wd .05, betas (.9, .999), seed 42). One *iteration* is one
    optimizer step of ``grad_accum_steps`` micro-batches of ``batch_size`` per worker.
    """

    model_config = SettingsConfigDict(env_prefix="MGPT_TRAIN__", env_nested_delimiter="__", extra="forbid")

    # schedule (linear_warmup_cosine_lr, stepped every iteration)
    init_lr: float = Field(3e-5, ge=0, description="peak lr; 0 (with min_lr = warmup_lr = 0) trains nothing")
    min_lr: float = Field(1e-5, ge=0)
    warmup_lr: float = Field(1e-6, ge=0)
    warmup_steps: int = Field(200, ge=0)
    max_epoch: int = Field(5, ge=1)
    iters_per_epoch: int | None = Field(None, ge=1, description="None = one pass over the train split")
    # optimisation
    batch_size: int = Field(8, ge=1, description="per worker, per micro-batch")
    grad_accum_steps: int = Field(1, ge=1)
    weight_decay: float = Field(0.05, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float | None = Field(None, gt=0, description="max global grad norm; None = no clipping")
    precision: Precision = "auto"
    seed: int = 42
    init_from: Path | None = Field(
        None, description="start the trainable parameters from another run's latest checkpoint (a run "
        "directory) or a named checkpoint (folder or .safetensors); shapes must match exactly; optimizer, "
        "schedule and step start fresh. Used only while the run has no checkpoint of its own")
    parallel: Parallel = Field(
        "ddp", description="ddp: every worker holds the whole model; fsdp: FSDP2 fully_shard of the "
        "projector, LM (one unit per decoder layer) and trained encoder parts, the frozen encoder kept out")
    # Ray
    workers: int = Field(2, ge=1)
    use_gpu: bool = False
    threads_per_worker: int | None = Field(None, ge=1, description="None = CPU cores // workers (min 1)")
    cpus_per_worker: float = Field(
        1.0, gt=0, description="logical CPUs each training worker reserves; the rest run the data pipeline")
    address: str | None = Field(None, description='None = local Ray on 127.0.0.1; "auto" or "ray://host:port"')
    include_dashboard: bool = Field(True, description="a private local Ray starts its dashboard on 127.0.0.1")
    max_failures: int = Field(1, ge=0)
    # features
    cache_features: bool = Field(
        True, description="frozen encoder: encode every image once (Ray Data batch inference) and train from "
        "the cached features")
    check_images: bool = Field(False, description="decode every train image before training (Ray Data) and "
                               "drop the bad ones; streaming rejects them anyway")
    # outputs
    checkpoint_every_steps: int | None = Field(None, ge=1)
    keep_checkpoints: int | None = Field(
        None, ge=1, description="keep only the latest N checkpoints (Ray CheckpointConfig.num_to_keep); "
        "None = keep all. Evaluation afterwards sees only the kept ones")
    log_every: int = Field(10, ge=1, description="rank 0 logs every N iterations (metrics.jsonl has all)")
    output_dir: Path | None = Field(
        None, description="parent of run folders; None = runs/ (inside a Ray job: ~/mgpt-runs, since the "
        "job's working dir is a temporary copy Ray deletes)")
    run_name: str | None = Field(None, description="None = a timestamp")
    stop_at_step: int | None = Field(
        None, ge=1, description="checkpoint and stop after this global step (the schedule still spans "
        "max_epoch x iters_per_epoch); re-run with resume to continue")
    # experiment tracking, from the driver: settings, per-step metrics, eval metrics + CIs, chart, captions
    tracker: Tracker = "none"
    tracking_uri: str | None = Field(
        None, description="mlflow: a tracking URI (default: a local store RUN_DIR/mlflow/mlflow.db); "
        "tensorboard: the event-file folder (default RUN_DIR/tensorboard); wandb: unused (WANDB_BASE_URL)")
    tracking_project: str = Field("mgpt", min_length=1, description="mlflow experiment / wandb project name")
    resume_from: str | None = Field(
        None, description="with resume: continue from this recorded checkpoint (e.g. epoch_0) instead of the "
        "latest one, whose later checkpoints are then redone; used once, not kept in settings.json")
    # testing (mgpt_train.fault_injection), first attempt only (a marker file in the run dir): rank 0 raises
    # at this global step / hangs after it until the process is killed
    fail_at_step: int | None = Field(None, ge=1)
    hang_at_step: int | None = Field(None, ge=1)

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in v):
            raise ValueError(f"betas must each be in [0, 1), got {v}")
        return v

    @field_validator("address")
    @classmethod
    def _address_form(cls, v: str | None) -> str | None:
        if v is None or v == "auto" or v.startswith("ray://") or ":" in v:
            return v
        raise ValueError(f'address must be None, "auto", "ray://host:port" or "host:port", got {v!r}')

    @field_validator("resume_from")
    @classmethod
    def _plain_checkpoint_name(cls, v: str | None) -> str | None:
        if v is not None and (not v or "/" in v or v in {".", ".."} or v.startswith(".")):
            raise ValueError(f"resume_from must be a checkpoint folder name such as epoch_0, got {v!r}")
        return v

    @model_validator(mode="after")
    def _lrs_ordered(self) -> TrainSettings:
        if self.min_lr > self.init_lr:
            raise ValueError(f"min_lr ({self.min_lr}) must not exceed init_lr ({self.init_lr})")
        if self.warmup_lr > self.init_lr:
            raise ValueError(f"warmup_lr ({self.warmup_lr}) must not exceed init_lr ({self.init_lr})")
        return self


@lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """True when this CPU has bf16 units (AVX512-BF16 or AMX-BF16) and bf16 autocast matmul runs."""
    import torch

    caps = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    if not (caps.get("avx512_bf16") or caps.get("amx_bf16")):
        return False
    try:  # a quick probe: the kernel exists and gives sane numbers
        a = torch.ones(8, 8)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = a @ a
        return out.dtype == torch.bfloat16 and float(out[0, 0]) == 8.0
    except RuntimeError:  # pragma: no cover - depends on the build
        return False


def resolve_precision(precision: Precision, device_type: str) -> str:
    """Map ``auto`` to bf16 / fp16 / fp32 for this device ("cpu" or "cuda")."""
    if precision != "auto":
        return precision
    if device_type == "cuda":
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_bf16() else "fp32"
