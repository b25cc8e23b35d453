"""What a set of trainable parameters holds (projector kind, LM tuning, LoRA, encoder parts), from its keys.

One function reads both sides of a load: the checkpoint's state dict and the model's trainable
parameters, so a mismatch is told in words ("checkpoint holds an mlp-3 projector, this model has a
linear projector"). :func:`mgpt_bridge.checkpoint.save_trainable` writes it into every file's metadata.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .projector import projector_label

PROJECTOR_PREFIX = "projector."
LM_PREFIX = "lm."
ENCODER_PREFIX = "encoder."
_LORA_A = ".lora_A."


@dataclass(frozen=True)
class TrainableContents:
    """``projector``: a projector label (``linear``, ``mlp-3``, ``ldp``, ``ldpv2``, ``custom``) or None;
    ``lm_tuning``: frozen | lora | full; ``lora_r`` and ``lora_target_modules`` when LoRA;
    ``encoder_trained``: the encoder's trained sub-modules (e.g. ``("qformer",)``)."""

    projector: str | None
    lm_tuning: str
    lora_r: int | None = None
    lora_target_modules: tuple[str, ...] = ()
    encoder_trained: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-able, with the projector's kind and layers spelled out."""
        kind, _, layers = (self.projector or "").partition("-")
        return {
            **asdict(self),
            "projector_kind": kind or None,
            "projector_layers": int(layers) if layers else None,
            "lora_target_modules": list(self.lora_target_modules),
            "encoder_trained": list(self.encoder_trained),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainableContents:
        """Inverse of :meth:`as_dict` (extra keys ignored)."""
        return cls(
            projector=data.get("projector"),
            lm_tuning=str(data.get("lm_tuning", "frozen")),
            lora_r=data.get("lora_r"),
            lora_target_modules=tuple(data.get("lora_target_modules") or ()),
            encoder_trained=tuple(data.get("encoder_trained") or ()),
        )

    def _phrases(self) -> dict[str, str]:
        if self.projector is None:
            projector = "no projector"
        else:
            article = "a" if self.projector in ("linear", "custom") else "an"  # an mlp-3, an ldp
            projector = f"{article} {self.projector} projector"
        if self.lm_tuning == "lora":
            lm = f"LoRA r={self.lora_r} on {','.join(self.lora_target_modules)}"
        else:
            lm = "a fully tuned LM" if self.lm_tuning == "full" else "a frozen LM"
        trained = "+".join(self.encoder_trained)
        encoder = f"a trained encoder {trained}" if trained else "a frozen encoder"
        return {"projector": projector, "lm": lm, "encoder": encoder}

    def describe(self) -> str:
        """E.g. ``an mlp-3 projector, LoRA r=8 on q_proj,v_proj, a frozen encoder``."""
        return ", ".join(self._phrases().values())

    def mismatch(self, model: TrainableContents) -> str | None:
        """One line naming what differs between this (a checkpoint's) contents and ``model``'s, or None."""
        mine, theirs = self._phrases(), model._phrases()
        parts = [part for part in mine if mine[part] != theirs[part]]
        if not parts:
            return None
        return (
            f"checkpoint holds {' and '.join(mine[p] for p in parts)}; "
            f"this model has {' and '.join(theirs[p] for p in parts)}"
        )


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(value.shape) if hasattr(value, "shape") else tuple(value)


def describe_trainable(params: Mapping[str, Any]) -> TrainableContents:
    """Contents of a trainable state dict (values: tensors or shapes) named as ``VisionLanguageModel``'s."""
    projector = projector_label(k[len(PROJECTOR_PREFIX) :] for k in params if k.startswith(PROJECTOR_PREFIX))
    lm_keys = [k for k in params if k.startswith(LM_PREFIX)]
    lora_a = {k: _shape(params[k]) for k in lm_keys if _LORA_A in k}
    if lora_a:
        tuning = "lora"
        ranks = sorted({shape[0] for shape in lora_a.values()})
        targets = tuple(sorted({k.split(_LORA_A)[0].rsplit(".", 1)[-1] for k in lora_a}))
        rank = ranks[0] if len(ranks) == 1 else None
    else:
        tuning, rank, targets = ("full" if lm_keys else "frozen"), None, ()
    encoder = tuple(sorted({k.split(".")[1] for k in params if k.startswith(ENCODER_PREFIX)}))
    return TrainableContents(projector, tuning, rank, targets, encoder)
