"""Freezable: a wrapper that keeps a frozen sub-module in eval mode and runs it without grad."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Freezable(nn.Module):
    """Wrap ``module``; when frozen: ``requires_grad`` False, eval mode even under ``parent.train()``,
    and forward under ``torch.no_grad()``. When not frozen it is a transparent wrapper.

    ``method`` picks what forward calls (e.g. timm's ``forward_features``); ``output_attr`` picks a
    field of a ModelOutput (e.g. ``last_hidden_state``). Both are plain strings so the wrapper pickles.
    """

    def __init__(
        self, module: nn.Module, *, frozen: bool, method: str = "forward", output_attr: str | None = None
    ) -> None:
        super().__init__()
        self.module = module
        self.method = method
        self.output_attr = output_attr
        self.frozen = False
        self.set_frozen(frozen)

    def set_frozen(self, frozen: bool) -> None:
        """Freeze (eval, no grad) or unfreeze (trainable; mode follows the parent's next .train())."""
        self.frozen = bool(frozen)
        self.module.requires_grad_(not self.frozen)
        if self.frozen:
            super().train(False)

    def train(self, mode: bool = True) -> Freezable:
        """Keep eval mode while frozen, whatever the parent asks."""
        return super().train(mode and not self.frozen)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        fn = self.module if self.method == "forward" else getattr(self.module, self.method)
        if self.frozen:
            with torch.no_grad():
                out = fn(*args, **kwargs)
        else:
            out = fn(*args, **kwargs)
        return getattr(out, self.output_attr) if self.output_attr else out

    def extra_repr(self) -> str:
        return f"frozen={self.frozen}, method={self.method!r}"
