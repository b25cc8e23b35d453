"""Caption PIL images with a run's model, in this process (no Ray): `mgpt caption` on few images,
the real-photo gallery, and the Serve replicas."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from mgpt_train.run_settings import RunSettings


def load_captioner(settings: RunSettings, checkpoint: Path | None, *, device: str = "cpu") -> Any:
    """The run's model (``checkpoint`` None = the untrained bridge), in eval mode on ``device``."""
    from mgpt_train.modeling import build_model

    model = build_model(settings, device=device, checkpoint=checkpoint)
    return model.eval()


def caption_images(
    model: Any,
    images: Sequence[Image.Image],
    *,
    batch_size: int = 8,
    instruction: str | None = None,
    **decoding: Any,
) -> list[str]:
    """Greedy (or the run's decoding settings) captions, batched; ``decoding`` overrides settings."""
    import torch

    from mgpt_data import pixels_from_images

    out: list[str] = []
    for start in range(0, len(images), batch_size):
        chunk = list(images[start : start + batch_size])
        pixels = torch.from_numpy(pixels_from_images(chunk, model.preprocess.as_dict())).to(model.device)
        out += model.generate(pixels=pixels, instructions=instruction, **decoding)
    return out
