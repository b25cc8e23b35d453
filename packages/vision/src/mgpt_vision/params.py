"""Parameter counting: the one counter every package uses (shared tensors once, meta modules too)."""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn


def count_parameters(params: nn.Module | Iterable[nn.Parameter], *, trainable_only: bool = False) -> int:
    """Number of elements in ``params`` (a module's parameters or any iterable of them).

    A tensor shared by two modules (tied embeddings) is counted once; ``trainable_only`` keeps only
    parameters that require grad.
    """
    if isinstance(params, nn.Module):
        params = params.parameters()
    seen: dict[int, int] = {}
    for p in params:
        if not trainable_only or p.requires_grad:
            seen[id(p)] = p.numel()
    return sum(seen.values())
