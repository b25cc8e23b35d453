"""Row lists ↔ numpy column batches (the ``batch_format="numpy"`` layout Ray Data hands to UDFs)."""

from __future__ import annotations

from typing import Any

import numpy as np


def column(values: list[Any]) -> np.ndarray:
    """A 1-D column: numeric/str values as a plain array, anything else (lists) as an object array."""
    if values and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=np.int64)
    if values and all(isinstance(v, str) for v in values):
        return np.asarray(values, dtype=object)
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


def rows_to_batch(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Rows (same keys) → ``{key: column}``."""
    if not rows:
        return {}
    return {k: column([r[k] for r in rows]) for k in rows[0]}


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.dtype == object:
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "UO":
        return [str(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def batch_to_rows(batch: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """``{key: column}`` → rows; numpy scalars become Python values, list cells lists (arrays stay)."""
    if not batch:
        return []
    n = len(next(iter(batch.values())))
    return [{k: _plain(v[i]) for k, v in batch.items()} for i in range(n)]
