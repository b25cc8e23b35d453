"""mgpt_vision: frozen image encoders, their preprocessing and a feature cache.

Light names are imported eagerly; builders that pull in timm/transformers load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from mgpt_vision.paths import cache_dir
from mgpt_vision.preprocess import PreprocessSpec, preprocess_images
from mgpt_vision.settings import VisionSettings

_LAZY = {
    "VisionEncoder": "mgpt_vision.vision_encoder",
    "build_encoder": "mgpt_vision.encoder",
    "prepare_encoder_weights": "mgpt_vision.encoder",
    "Freezable": "mgpt_vision.freeze",
    "TokenPool": "mgpt_vision.tokens",
    "WeightsMismatchError": "mgpt_vision.weights",
    "build_efficientnet_lite": "mgpt_vision.efficientnet",
    "convert_lite_state_dict": "mgpt_vision.efficientnet",
    "build_timm_encoder": "mgpt_vision.timm_encoder",
    "build_tiny": "mgpt_vision.tiny",
    "build_blip2": "mgpt_vision.blip2",
    "tiny_blip2_model": "mgpt_vision.blip2",
    "build_feature_cache": "mgpt_vision.feature_cache",
    "load_feature_cache": "mgpt_vision.feature_cache",
    "stack_features": "mgpt_vision.feature_cache",
    "encoder_fingerprint": "mgpt_vision.feature_cache",
    "default_feature_cache_path": "mgpt_vision.feature_cache",
    "StaleFeatureCacheError": "mgpt_vision.feature_cache",
}

__all__ = ["PreprocessSpec", "VisionSettings", "cache_dir", "preprocess_images", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover
    from mgpt_vision.blip2 import build_blip2 as build_blip2
    from mgpt_vision.blip2 import tiny_blip2_model as tiny_blip2_model
    from mgpt_vision.efficientnet import build_efficientnet_lite as build_efficientnet_lite
    from mgpt_vision.efficientnet import convert_lite_state_dict as convert_lite_state_dict
    from mgpt_vision.encoder import build_encoder as build_encoder
    from mgpt_vision.encoder import prepare_encoder_weights as prepare_encoder_weights
    from mgpt_vision.feature_cache import StaleFeatureCacheError as StaleFeatureCacheError
    from mgpt_vision.feature_cache import build_feature_cache as build_feature_cache
    from mgpt_vision.feature_cache import default_feature_cache_path as default_feature_cache_path
    from mgpt_vision.feature_cache import encoder_fingerprint as encoder_fingerprint
    from mgpt_vision.feature_cache import load_feature_cache as load_feature_cache
    from mgpt_vision.feature_cache import stack_features as stack_features
    from mgpt_vision.freeze import Freezable as Freezable
    from mgpt_vision.timm_encoder import build_timm_encoder as build_timm_encoder
    from mgpt_vision.tiny import build_tiny as build_tiny
    from mgpt_vision.tokens import TokenPool as TokenPool
    from mgpt_vision.vision_encoder import VisionEncoder as VisionEncoder
    from mgpt_vision.weights import WeightsMismatchError as WeightsMismatchError


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mgpt_vision' has no attribute {name!r}")
