"""EvalSettings: the knobs of caption evaluation (env prefix ``MGPT_EVAL__``)."""

from __future__ import annotations

from pathlib import Path

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
    ``checkpoints``: ``all``, ``last``, ``baseline`` or a comma list of checkpoint names.
    """

    model_config = SettingsConfigDict(env_prefix="MGPT_EVAL__", env_nested_delimiter="__", extra="forbid")

    metrics: list[str] = Field(default_factory=lambda: list(DEFAULT_METRICS))
    spice_jars: Path | None = None
    bootstrap_resamples: int = Field(1000, ge=0, description="0 turns confidence intervals off")
    confidence: float = Field(0.95, gt=0.0, lt=1.0)
    seed: int = 0
    scale_100: bool = True
    split: str = "test"
    checkpoints: str = "all"
    max_images: int | None = Field(None, ge=1)
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

    @field_validator("checkpoints")
    @classmethod
    def _checkpoints(cls, value: str) -> str:
        value = value.strip()
        if not value or any(not part.strip() for part in value.split(",")):
            raise ValueError("checkpoints must be 'all', 'last', 'baseline' or a comma list of names")
        return value

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


def select_checkpoints(spec: str, available: list[str]) -> list[str]:
    """Resolve ``EvalSettings.checkpoints`` against the names found in a run (in their given order).

    ``all`` → every name; ``last`` → the last one; otherwise a comma list whose names must all exist
    (``baseline`` is always accepted: it means the untrained bridge).
    """
    spec = spec.strip()
    if spec == "all":
        return list(available)
    if spec == "last":
        if not available:
            raise ValueError("checkpoints='last' but the run has no checkpoints")
        return [available[-1]]
    wanted = [part.strip() for part in spec.split(",")]
    missing = [w for w in wanted if w not in available and w != "baseline"]
    if missing:
        raise ValueError(f"checkpoint(s) {missing} not found; available: {available}")
    return wanted
