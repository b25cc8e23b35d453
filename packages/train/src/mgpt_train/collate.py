"""Plan rows → the model's keyword arguments for one micro-batch (answers, instructions, pixels/features)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch


def sort_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A stable order independent of how the rows were read (the training plan indexes this order)."""
    return sorted(rows, key=lambda r: (str(r["image_id"]), str(r["caption"]), int(r.get("row") or 0)))


def model_inputs(
    batch: Mapping[str, np.ndarray], *, instructions: Sequence[str], spec: dict[str, Any] | None,
    features: Mapping[str, torch.Tensor] | None = None,
) -> tuple[dict[str, Any], bool]:
    """Keyword arguments for ``VisionLanguageModel.forward`` from one micro-batch of the plan.

    Rows whose image failed to decode (``valid`` False) are left out. Returns ``(kwargs, empty)``:
    when no row is valid, ``kwargs`` holds the first (placeholder) row and ``empty`` is True, so the
    caller can run a zero-weighted step that keeps the ranks' gradient all-reduce in step.
    """
    n = len(batch["caption"])
    valid = np.asarray(batch["valid"], dtype=bool) if "valid" in batch else np.ones(n, dtype=bool)
    empty = not valid.any()
    keep = np.flatnonzero(valid) if not empty else np.asarray([0])
    out: dict[str, Any] = {
        "answers": [str(batch["caption"][i]) for i in keep],
        "instructions": [instructions[int(batch["instruction"][i])] for i in keep],
    }
    if features is not None:
        out["features"] = torch.stack([features[str(batch["content_hash"][i])] for i in keep])
    else:
        from mgpt_data import normalize_pixels

        if spec is None:
            raise ValueError("training from pixels needs the encoder's preprocessing spec")
        out["pixels"] = torch.from_numpy(normalize_pixels(batch["pixels"][keep], spec))
    return out, empty
