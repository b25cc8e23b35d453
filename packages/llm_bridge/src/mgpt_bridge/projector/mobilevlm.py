"""MobileVLM's lightweight downsample projectors, LDP and LDPv2, from torchvision/timm building blocks.

Same architecture, parameter count and state-dict layout as MobileVLM's
``mobilevlm/model/vision_projector.py`` (``LDPNetProjector``/``LDPBlock``, ``LDPNetV2Projector``), so
its ``mm_projector.*`` tensors load under the same names. Image tokens [B, N, D] are laid out
row-major on a √N×√N grid (as a ViT's patches) for the convolutions and pooling, and the grid side
is halved (rounded up): 576 tokens (24×24) → 144 (12×12).
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from timm.layers.norm_act import LayerNormAct2d
from torch import nn
from torchvision.models.mobilenetv3 import InvertedResidual, InvertedResidualConfig
from torchvision.ops.misc import SqueezeExcitation

#: MobileNetV3 blocks round channel counts to this multiple (torchvision ``_make_divisible``).
CHANNEL_MULTIPLE = 8


def grid_side(num_tokens: int, kind: str) -> int:
    """Side of the square grid of ``num_tokens`` image tokens; one-line ``ValueError`` when not square."""
    side = math.isqrt(max(num_tokens, 0))
    if num_tokens < 1 or side * side != num_tokens:
        raise ValueError(
            f"projector {kind!r} lays image tokens out on a square grid: {num_tokens} tokens is not a "
            "perfect square (use an encoder/num_tokens giving 4, 16, 49, 576, ...)"
        )
    return side


def halved_tokens(num_tokens: int, kind: str) -> int:
    """Tokens after halving the grid side (rounded up, as a 3×3 stride-2 conv with padding 1)."""
    side = (grid_side(num_tokens, kind) + 1) // 2
    return side * side


def _to_grid(tokens: torch.Tensor, kind: str) -> torch.Tensor:
    """[B, N, C] → [B, C, √N, √N]."""
    b, n, c = tokens.shape
    side = grid_side(n, kind)
    return tokens.transpose(1, 2).reshape(b, c, side, side)


def _to_tokens(grid: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] → [B, H·W, C]."""
    return grid.flatten(2).transpose(1, 2)


def _mobilenet_v3_block(channels: int, stride: int) -> InvertedResidual:
    """MobileNetV3 inverted residual as LDP configures it: no expansion, 3×3 depthwise, squeeze-excitation
    with a hard sigmoid, Hardswish, channel LayerNorm (no bias in the convs); residual when stride is 1."""
    config = InvertedResidualConfig(channels, 3, channels, channels, True, "HS", stride, 1, 1.0)
    return InvertedResidual(
        config,
        norm_layer=partial(LayerNormAct2d, act_layer=None),
        se_layer=partial(SqueezeExcitation, scale_activation=nn.Hardsigmoid),
    )


def _check_channels(width: int, kind: str) -> None:
    if width % CHANNEL_MULTIPLE:
        raise ValueError(
            f"projector {kind!r} needs an LM width divisible by {CHANNEL_MULTIPLE} (its MobileNetV3 blocks "
            f"round channels to {CHANNEL_MULTIPLE}), got {width}"
        )


class _LDPBody(nn.Module):
    """Token MLP (Linear-GELU-Linear) → MobileNetV3 block (stride 1) → MobileNetV3 block (stride 2).

    Index 0 of each Sequential is an Identity, as upstream, so the weights sit at ``mlp.1``/``mlp.3``
    and ``mb_block.1``/``mb_block.2``.
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Identity(), nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim)
        )
        self.mb_block = nn.Sequential(
            nn.Identity(), _mobilenet_v3_block(out_dim, stride=1), _mobilenet_v3_block(out_dim, stride=2)
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return _to_tokens(self.mb_block(_to_grid(self.mlp(tokens), "ldp")))


class LDPProjector(nn.Module):
    """MobileVLM v1 LDP: [B, N, D] → [B, ⌈√N/2⌉², H] (keys ``model.mlp.*``, ``model.mb_block.*``)."""

    kind = "ldp"

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        _check_channels(out_dim, self.kind)
        self.model = _LDPBody(in_dim, out_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model(tokens)

    def output_tokens(self, num_tokens: int) -> int:
        return halved_tokens(num_tokens, self.kind)


class _TokenMLP(nn.Module):
    """Linear-GELU-Linear over tokens (MobileVLM's ``FeatureIRLayer``)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.mlp(tokens)


class _PositionConv(nn.Module):
    """Depthwise 3×3 conv added back onto the grid (a Twins-style positional encoding generator)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.peg = nn.Sequential(nn.Conv2d(dim, dim, 3, 1, 1, bias=True, groups=dim))

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        return self.peg(grid) + grid


class LDPv2Projector(nn.Module):
    """MobileVLM v2 LDP: token MLP → average pool to a grid of half the side → positional conv (residual).

    Keys ``mlp.mlp.{0,2}.*`` and ``peg.peg.0.*`` (the pooling has no parameters). MobileVLM v2 pools to a
    fixed 12×12, which is the half side of its 24×24 grid; here the half side follows the input grid.
    """

    kind = "ldpv2"

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.mlp = _TokenMLP(in_dim, out_dim)
        self.peg = _PositionConv(out_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        grid = _to_grid(self.mlp(tokens), self.kind)
        side = (grid.shape[-1] + 1) // 2
        return _to_tokens(self.peg(F.adaptive_avg_pool2d(grid, side)))

    def output_tokens(self, num_tokens: int) -> int:
        return halved_tokens(num_tokens, self.kind)
