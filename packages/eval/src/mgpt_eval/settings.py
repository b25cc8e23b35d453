"""EvalSettings: the knobs of caption evaluation (env prefix ``MGPT_EVAL__``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mgpt_eval.names import DEFAULT_METRICS, normalise_metric_names

SPLITS = ("train", "val", "test")
CHAIR_VOCABULARIES = ("coco", "shapes")


class EvalSettings(BaseSettings):
    """How predictions are scored and reported.

    ``metrics`` accepts canonical names or aliases (``bleu_4``, ``B4``, ``rouge_l``, ``cider``, ``spice``).
    ``spice_jars`` is a folder holding ``stanford-corenlp-3.6.0.jar`` and
    ``stanford-corenlp-3.6.0-models.jar``; without it SPICE is reported unavailable, never 0.
    ``scale_100`` only affects tables and charts; JSON/CSV files keep the raw 0–1 (CIDEr 0–10) scale.
    ``checkpoints``: a list of ``all``, ``last``, ``baseline``, checkpoint names or checkpoint folder
    paths (a comma string such as ``"baseline,epoch_2"`` from the environment or ``--set`` is split
    into that list).
    """

    model_config = SettingsConfigDict(env_prefix="MGPT_EVAL__", env_nested_delimiter="__", extra="forbid")

    metrics: list[str] = Field(default_factory=lambda: list(DEFAULT_METRICS))
    spice_jars: Path | None = None
    bootstrap_resamples: int = Field(1000, ge=0, description="0 turns confidence intervals off")
    confidence: float = Field(0.95, gt=0.0, lt=1.0)
    seed: int = 0
    scale_100: bool = True
    split: str = "test"
    checkpoints: list[str] = Field(default_factory=lambda: ["all"])
    max_images: int | None = Field(None, ge=1)
    engine: Literal["auto", "local", "ray"] = "auto"
    batch_size: int = Field(8, ge=1, description="images per generate call")
    ray_min_captions: int = Field(
        2000, ge=0, description="auto engine on CPU: captions (images x models) beyond which the actor "
        "pool's start-up pays (measured: benchmarks/eval_speed.py)")
    chair: bool = True
    chair_vocabularies: list[str] = Field(default_factory=lambda: ["coco"])
    chair_extra_objects: dict[str, list[str]] = Field(default_factory=dict)
    chair_instances: Path | None = None

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, value: list[str]) -> list[str]:
        return normalise_metric_names(value)

    @field_validator("split")
    @classmethod
    def _split(cls, value: str) -> str:
        if value not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {value!r}")
        return value

    @field_validator("checkpoints", mode="before")
    @classmethod
    def _checkpoints(cls, value: object) -> object:
        items = value.split(",") if isinstance(value, str) else value
        if isinstance(items, list | tuple):
            items = [str(item).strip() for item in items]
            if not items or not all(items):
                raise ValueError("checkpoints must be 'all', 'last', 'baseline' or a comma list of names "
                                 "or folders")
        return items

    @field_validator("chair_vocabularies")
    @classmethod
    def _vocabularies(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if v not in CHAIR_VOCABULARIES]
        if bad:
            raise ValueError(f"unknown CHAIR vocabulary {bad}; choose from {list(CHAIR_VOCABULARIES)}")
        return value

    @field_validator("spice_jars", "chair_instances")
    @classmethod
    def _exists(cls, value: Path | None) -> Path | None:
        if value is not None and not Path(value).exists():
            raise ValueError(f"path does not exist: {value}")
        return value


def select_checkpoints(spec: list[str], available: list[str]) -> list[str]:
    """Resolve ``EvalSettings.checkpoints`` against the names found in a run (in their given order).

    Each item: ``all`` → every name; ``last`` → the last one; otherwise a name that must exist
    (``baseline`` is always accepted: it means the untrained bridge). Repeats are dropped.
    """
    out: list[str] = []
    for item in spec:
        if item == "all":
            out += available
        elif item == "last":
            if not available:
                raise ValueError("checkpoints=['last'] but the run has no checkpoints")
            out.append(available[-1])
        elif item in available or item == "baseline":
            out.append(item)
        else:
            raise ValueError(f"checkpoint {item!r} not found; available: {available}")
    return list(dict.fromkeys(out))
