"""Rows → the model's keyword arguments for one micro-batch (answers, features or pixels, instructions)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from mgpt_train.data_order import batch_indices, instruction_indices


def sort_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A stable order independent of how Ray delivered the rows."""
    return sorted(rows, key=lambda r: (str(r["image_id"]), str(r["caption"]), int(r.get("row") or 0)))


class Batcher:
    """Builds micro-batch ``step`` of ``epoch`` for one rank from an in-memory row table.

    Images come either from cached encoder ``features`` (image_id → [N, D]) or from a
    ``preprocessor`` (mgpt_data ``ImagePreprocessor``: path → normalised pixels).
    """

    def __init__(
        self,
        rows: list[dict[str, Any]],
        instructions: Sequence[str],
        *,
        seed: int,
        batch_size: int,
        world_size: int,
        rank: int,
        features: Mapping[str, torch.Tensor] | None = None,
        preprocessor_factory: Any = None,
    ) -> None:
        if (features is None) == (preprocessor_factory is None):
            raise ValueError("pass exactly one of features= or preprocessor_factory=")
        if not rows:
            raise ValueError("no training rows")
        self.rows = sort_rows(rows)
        self.instructions = list(instructions)
        self.seed = seed
        self.batch_size = batch_size
        self.world_size = world_size
        self.rank = rank
        self.features = features
        self.preprocessor_factory = preprocessor_factory
        self._preprocessors: dict[int, Any] = {}
        if features is not None:
            missing = sorted({str(r["image_id"]) for r in self.rows} - set(features))
            if missing:
                raise KeyError(f"{len(missing)} train images have no cached features (first: {missing[:5]})")

    def __len__(self) -> int:
        return len(self.rows)

    def _pixels(self, picked: list[dict[str, Any]], epoch: int) -> torch.Tensor:
        pre = self._preprocessors.get(epoch)
        if pre is None:  # one per epoch: augmentation is seeded with seed + epoch
            self._preprocessors = {epoch: self.preprocessor_factory(epoch)}
            pre = self._preprocessors[epoch]
        batch = {"path": np.asarray([r["path"] for r in picked], dtype=object),
                 "image_id": np.asarray([str(r["image_id"]) for r in picked], dtype=object),
                 "caption": np.asarray([r["caption"] for r in picked], dtype=object)}
        out = pre(batch)
        if len(out["pixels"]) != len(picked):
            raise RuntimeError(f"{len(picked) - len(out['pixels'])} train images failed to decode "
                               "(the driver's image check should have rejected them)")
        return torch.from_numpy(np.ascontiguousarray(out["pixels"]))

    def micro_batch(self, *, epoch: int, micro_step: int, global_step: int) -> dict[str, Any]:
        """Keyword arguments for ``VisionLanguageModel.forward`` (plus ``sample_ids`` for tests/logs)."""
        idx = batch_indices(len(self.rows), seed=self.seed, epoch=epoch, step=micro_step,
                            batch_size=self.batch_size, world_size=self.world_size, rank=self.rank)
        picked = [self.rows[i] for i in idx]
        first = (micro_step * self.world_size + self.rank) * self.batch_size
        sample_ids = list(range(first, first + len(picked)))
        which = instruction_indices(self.seed, global_step, sample_ids, len(self.instructions))
        out: dict[str, Any] = {
            "answers": [str(r["caption"]) for r in picked],
            "instructions": [self.instructions[k] for k in which],
        }
        if self.features is not None:
            out["features"] = torch.stack([self.features[str(r["image_id"])] for r in picked])
        else:
            out["pixels"] = self._pixels(picked, epoch)
        return out
