"""Projectors from the image encoder's tokens [B, N, D] to the LM's embeddings [B, M, H].

Each kind has one builder (:func:`build_projector`). ``linear`` and ``mlp`` keep the token count
(M = N); ``ldp`` and ``ldpv2`` (MobileVLM) halve the side of the square token grid. A projector that
changes the count says so with ``output_tokens(N) -> M``; :func:`projected_tokens` asks it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

from torch import nn

from .mobilevlm import LDPProjector, LDPv2Projector, grid_side

ProjectorKind = Literal["linear", "mlp", "ldp", "ldpv2"]
PROJECTOR_KINDS: tuple[str, ...] = get_args(ProjectorKind)

__all__ = [
    "PROJECTOR_KINDS",
    "LDPProjector",
    "LDPv2Projector",
    "ProjectorKind",
    "ProjectorSpec",
    "build_projector",
    "grid_side",
    "projected_tokens",
    "projector_label",
]


@dataclass(frozen=True)
class ProjectorSpec:
    """Which projector: ``kind`` and, for ``mlp``, its number of Linear ``layers``."""

    kind: ProjectorKind
    layers: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in PROJECTOR_KINDS:
            raise ValueError(f"unknown projector {self.kind!r}; choose one of {', '.join(PROJECTOR_KINDS)}")
        if self.kind == "mlp" and (self.layers is None or self.layers < 2):
            raise ValueError(f"an mlp projector needs layers >= 2, got {self.layers}")
        if self.kind != "mlp" and self.layers is not None:
            raise ValueError(f"layers applies to the mlp projector only (kind is {self.kind!r})")

    @classmethod
    def of(cls, kind: str, layers: int = 2) -> ProjectorSpec:
        """From the settings' ``projector`` / ``projector_layers`` (layers ignored unless mlp)."""
        return cls(kind, layers if kind == "mlp" else None)  # type: ignore[arg-type]

    @property
    def label(self) -> str:
        """``linear``, ``mlp-3``, ``ldp``, ``ldpv2``: the name checkpoints and summaries use."""
        return f"mlp-{self.layers}" if self.kind == "mlp" else self.kind


def build_projector(kind: str, in_dim: int, out_dim: int, *, layers: int = 2) -> nn.Module:
    """The projector ``kind`` from token width ``in_dim`` to LM width ``out_dim``.

    - ``linear``: MiniGPT-4's ``llama_proj``, keys ``weight``/``bias`` (768→4096: 3,149,824 params).
    - ``mlp``: ``layers`` Linear layers with GELU between, keys ``0.*``, ``2.*``, ``4.*``... (LLaVA's
      ``mlp{layers}x_gelu``; hidden width ``out_dim``).
    - ``ldp`` / ``ldpv2``: MobileVLM's projectors (:mod:`mgpt_bridge.projector.mobilevlm`).
    """
    if in_dim < 1 or out_dim < 1:
        raise ValueError(f"projector widths must be positive, got {in_dim}→{out_dim}")
    spec = ProjectorSpec.of(kind, layers)
    if spec.kind == "linear":
        return nn.Linear(in_dim, out_dim)
    if spec.kind == "mlp":
        modules: list[nn.Module] = [nn.Linear(in_dim, out_dim)]
        for _ in range(layers - 1):
            modules += [nn.GELU(), nn.Linear(out_dim, out_dim)]
        return nn.Sequential(*modules)
    if spec.kind == "ldp":
        return LDPProjector(in_dim, out_dim)
    return LDPv2Projector(in_dim, out_dim)


def projected_tokens(projector: nn.Module, num_tokens: int) -> int:
    """Image tokens the LM sees for ``num_tokens`` encoder tokens (``output_tokens`` or unchanged)."""
    output_tokens = getattr(projector, "output_tokens", None)
    return int(output_tokens(num_tokens)) if callable(output_tokens) else int(num_tokens)


_MLP_KEY = re.compile(r"(\d+)\.(weight|bias)")


def projector_label(keys: Iterable[str]) -> str | None:
    """The projector that state-dict keys (relative to the projector) hold: a
    :attr:`ProjectorSpec.label`, ``"custom"`` for any other layout, None for no keys."""
    names = set(keys)
    if not names:
        return None
    if names == {"weight", "bias"}:
        return "linear"
    matches = [_MLP_KEY.fullmatch(name) for name in names]
    if all(matches):
        indices = sorted({int(m.group(1)) for m in matches if m})
        if indices == list(range(0, 2 * len(indices), 2)) and len(names) == 2 * len(indices) >= 4:
            return ProjectorSpec("mlp", len(indices)).label
    if any(name.startswith("model.mb_block.") for name in names):
        return "ldp"
    if any(name.startswith("peg.peg.") for name in names):
        return "ldpv2"
    return "custom"
