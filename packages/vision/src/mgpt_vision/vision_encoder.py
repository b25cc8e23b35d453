"""VisionEncoder: the module plus what callers need to know about it (tokens, preprocessing)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mgpt_vision.params import count_parameters
from mgpt_vision.preprocess import PreprocessSpec


@dataclass
class VisionEncoder:
    """``module(pixels [B,3,S,S]) -> tokens [B, num_tokens, token_dim]`` plus its preprocessing."""

    module: nn.Module
    preprocess: PreprocessSpec
    num_tokens: int
    token_dim: int
    name: str
    details: dict[str, Any] = field(default_factory=dict)  # builder facts: grid, widths, weights file...

    @property
    def device(self) -> torch.device:
        p = next(self.module.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.module.parameters())

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalised pixels ``[B, 3, S, S]`` (``mgpt_data.pixels_from_images``) → [B, tokens, width]."""
        return self.module(pixels.to(self.device))

    def summary(self) -> dict[str, Any]:
        """Plain dict for logs and run directories."""
        return {
            "name": self.name,
            "num_tokens": self.num_tokens,
            "token_dim": self.token_dim,
            "preprocess": self.preprocess.as_dict(),
            "params": count_parameters(self.module),
            "trainable_params": count_parameters(self.module, trainable_only=True),
            **self.details,
        }
