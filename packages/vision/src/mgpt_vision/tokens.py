"""Turn backbone features (CNN maps or ViT sequences) into [B, N, D] tokens."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def grid_side(num_tokens: int) -> int:
    """Side of the square grid for ``num_tokens`` (must be a perfect square)."""
    side = math.isqrt(num_tokens)
    if num_tokens <= 0 or side * side != num_tokens:
        raise ValueError(f"num_tokens must be a positive perfect square, got {num_tokens}")
    return side


class TokenPool(nn.Module):
    """Feature map [B,C,H,W] (or NHWC) → adaptive-avg-pool to side² → [B, side², C].

    Sequences [B,T,D] are kept as they are when ``num_tokens`` is None; otherwise the
    ``num_prefix_tokens`` (CLS/register) are dropped, the patches laid out as a square grid and pooled.
    """

    def __init__(self, num_tokens: int | None, *, num_prefix_tokens: int = 0, channels_last: bool = False):
        super().__init__()
        self.num_tokens = num_tokens
        self.side = None if num_tokens is None else grid_side(num_tokens)
        self.num_prefix_tokens = num_prefix_tokens
        self.channels_last = channels_last

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        if feats.ndim == 4:
            if self.channels_last:
                feats = feats.permute(0, 3, 1, 2)
            if self.side is not None:
                feats = F.adaptive_avg_pool2d(feats, self.side)
            return feats.flatten(2).transpose(1, 2)
        if feats.ndim != 3:
            raise ValueError(f"expected features [B,C,H,W] or [B,T,D], got shape {tuple(feats.shape)}")
        if self.side is None:
            return feats
        patches = feats[:, self.num_prefix_tokens :]
        b, t, d = patches.shape
        g = math.isqrt(t)
        if g * g != t:
            raise ValueError(f"cannot pool {t} patch tokens: not a square grid (set num_tokens=None)")
        grid = patches.transpose(1, 2).reshape(b, d, g, g)
        return F.adaptive_avg_pool2d(grid, self.side).flatten(2).transpose(1, 2)

    def extra_repr(self) -> str:
        return f"num_tokens={self.num_tokens}, num_prefix_tokens={self.num_prefix_tokens}"


class BackboneTokens(nn.Module):
    """A (freezable) backbone followed by :class:`TokenPool`; casts pixels to the backbone's dtype."""

    def __init__(self, backbone: nn.Module, pool: TokenPool) -> None:
        super().__init__()
        self.backbone = backbone
        self.pool = pool

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        param = next(self.backbone.parameters(), None)
        if param is not None and pixels.dtype != param.dtype:
            pixels = pixels.to(param.dtype)
        return self.pool(self.backbone(pixels))
