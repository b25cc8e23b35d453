"""Projectors from the image encoder's token width to the LM's hidden width."""

from __future__ import annotations

from typing import Literal

from torch import nn


def build_projector(kind: Literal["linear", "mlp"], in_dim: int, out_dim: int) -> nn.Module:
    """``linear``: MiniGPT-4's ``llama_proj`` (768→4096 has 3,149,824 params); ``mlp``: Linear-GELU-Linear.

    Parameter names: ``weight``/``bias`` for linear (so upstream ``llama_proj.*`` maps 1:1),
    ``0.*`` and ``2.*`` for mlp (LLaVA-1.5 style, hidden width = ``out_dim``).
    """
    if in_dim < 1 or out_dim < 1:
        raise ValueError(f"projector widths must be positive, got {in_dim}→{out_dim}")
    if kind == "linear":
        return nn.Linear(in_dim, out_dim)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))
    raise ValueError(f"unknown projector {kind!r}; choose 'linear' or 'mlp'")
