"""`LoopConfig`: what the driver hands every Ray Train worker (``train_loop_config``), typed."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class LoopConfig:
    """Everything `train_loop_per_worker` needs besides what Ray gives it (rank, shard, checkpoint).

    ``features_path`` (a feature-cache folder) + ``features_fingerprint`` + ``feature_hashes`` (the
    content hashes this run trains on) when training from the frozen-feature cache; the encoder's
    ``preprocess_spec`` (``PreprocessSpec.as_dict()``) always, for normalising pixels.
    """

    settings: dict[str, Any]  # RunSettings.to_json_dict()
    run_dir: str
    iters_per_epoch: int
    threads: int
    preprocess_spec: dict[str, Any] | None = None
    features_path: str | None = None
    features_fingerprint: dict[str, Any] | None = None
    feature_hashes: list[str] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The plain dict Ray's ``train_loop_config`` carries (rebuilt with ``LoopConfig(**d)``)."""
        return asdict(self)
