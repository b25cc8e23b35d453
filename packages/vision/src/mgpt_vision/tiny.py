"""A random-init micro CNN built in code (seeded) for fast tests and the `tiny` preset."""

from __future__ import annotations

import torch
from torch import nn

from mgpt_vision.freeze import Freezable
from mgpt_vision.params import count_parameters
from mgpt_vision.preprocess import PreprocessSpec
from mgpt_vision.timm_encoder import DTYPES
from mgpt_vision.tokens import BackboneTokens, TokenPool, grid_side
from mgpt_vision.vision_encoder import VisionEncoder

TINY_IMAGE_SIZE = 32
TINY_DIM = 32
TINY_SEED = 0


class TinyCNN(nn.Module):
    """3 stride-2 conv layers: [B,3,S,S] → [B, 32, S/8, S/8] (4×4 at 32 px)."""

    def __init__(self, dim: int = TINY_DIM) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(16, dim, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(dim, dim, 3, stride=2, padding=1),
        )
        self.num_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def build_tiny(
    *,
    num_tokens: int | None = 4,
    image_size: int | None = None,
    resize_mode: str | None = None,
    frozen: bool = True,
    dtype: str = "float32",
    device: str | torch.device = "cpu",
    meta: bool = False,
    seed: int = TINY_SEED,
) -> VisionEncoder:
    """Seeded TinyCNN → pooled tokens (``num_tokens`` ≤ grid, token_dim 32)."""
    size = image_size or TINY_IMAGE_SIZE
    grid = -(-size // 8)
    if num_tokens is not None and grid_side(num_tokens) > grid:
        raise ValueError(f"num_tokens={num_tokens} exceeds the tiny encoder's {grid}×{grid} grid at {size}px")
    if meta:
        with torch.device("meta"):
            model = TinyCNN()
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = TinyCNN()
        model = model.to(device=device)
    model = model.to(dtype=DTYPES[dtype])
    module = BackboneTokens(Freezable(model, frozen=frozen), TokenPool(num_tokens))
    spec = PreprocessSpec(
        image_size=size,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        interpolation="bilinear",
        resize_mode=resize_mode or "squash",
    )
    return VisionEncoder(
        module=module,
        preprocess=spec,
        num_tokens=num_tokens or grid * grid,
        token_dim=TINY_DIM,
        name="tiny_cnn",
        details={
            "seed": seed,
            "grid": [grid, grid],
            "frozen": frozen,
            "backbone_params": count_parameters(model),
            "dtype": dtype,
        },
    )
