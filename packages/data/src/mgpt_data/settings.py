"""DataSettings: where the Flickr30k-format data lives, how rows are sampled and preprocessed."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SampleMode = Literal["per_caption", "grounded"]
Compute = Literal["tasks", "actors"]


class DataSettings(BaseSettings):
    """Knobs of the data pipeline (env prefix ``MGPT_DATA__``).

    ``data_dir`` holds ``flickr_annotations_30k.csv`` + ``flickr30k-images/``. When it has no CSV and
    ``synthetic_images`` is set, a synthetic Flickr-format scene set of that many images is written
    there on first use (on the driver, before any worker starts); ``None`` never writes one.

    Captions: ``captions`` (the references) are kept verbatim; the training target ``caption`` is
    normalised with ``lowercase`` / ``strip_punctuation`` / ``max_words`` (the BLIP caption
    processor of MiniGPT-4 lowercases, strips ``.!"()*#:;~`` and keeps 50 words; the seed's grounded
    Flickr30k JSON applies none of it, so a seed-exact grounded run sets ``max_words = None``).

    Augmentation (``augment``) is MiniGPT-4's train transform: RandomResizedCrop with area
    ``crop_scale`` (default .5–1) instead of the eval resize. MiniGPT-4 has no flip; ``hflip`` adds a
    horizontal flip with p=.5, which makes "on the left" captions false, so it is refused on
    synthetic scene sets (whose captions name sides) by ``mgpt_data.pipeline.check_augmentation``.
    """

    model_config = SettingsConfigDict(env_prefix="MGPT_DATA__", env_nested_delimiter="__", extra="forbid")

    data_dir: Path = Path("data/flickr30k_synthetic")
    synthetic_images: int | None = Field(
        600, ge=0, description="write a synthetic set if absent; 0 or None = never (TOML has no null)")
    synthetic_image_size: int = Field(224, ge=32, description="side of the synthetic JPEGs")
    sample_mode: SampleMode = "per_caption"
    train_split: str = Field("train", min_length=1)
    augment: bool = False
    hflip: bool = False
    crop_scale: tuple[float, float] = (0.5, 1.0)
    seed: int = 42
    max_words: int | None = Field(
        50, ge=0, description="truncate the target caption; 0 or None = keep all (TOML has no null)")
    lowercase: bool = False
    strip_punctuation: bool = False
    preprocess_batch_size: int = Field(32, ge=1, description="rows per map_batches call")
    num_preprocess_workers: int = Field(2, ge=1, description="concurrent preprocess tasks / actors")
    preprocess_num_cpus: float = Field(1.0, gt=0, description="CPUs reserved per preprocess task / actor")
    prefetch_batches: int = Field(4, ge=0, description="micro-batches each training worker prefetches")
    preprocess_compute: Compute = Field(
        "actors", description="'actors' (an ImagePreprocessor actor pool: each actor always has its next "
        "block queued) or 'tasks' (pooled Ray workers, one task per block: idle between tasks); same output")

    @model_validator(mode="after")
    def _check(self) -> DataSettings:
        # TOML cannot say None: 0 means "never write" / "keep every word".
        if self.synthetic_images == 0:
            self.synthetic_images = None
        if self.max_words == 0:
            self.max_words = None
        lo, hi = self.crop_scale
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"crop_scale must satisfy 0 < min <= max <= 1, got {self.crop_scale}")
        if self.hflip and not self.augment:
            raise ValueError("hflip is part of train-time augmentation: set augment=True too "
                             "(or hflip=False)")
        return self

    def caption_options(self) -> dict:
        """Keyword arguments for :func:`mgpt_data.text.normalize_caption`."""
        return {"lowercase": self.lowercase, "strip_punctuation": self.strip_punctuation,
                "max_words": self.max_words}
