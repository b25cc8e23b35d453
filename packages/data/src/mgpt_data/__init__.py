"""mgpt_data: Flickr30k-format ingestion (CSV record by record → polars/Arrow → Ray Data), synthetic scenes,
rejects report.

Imports no other workspace package: the encoder's preprocessing arrives as a plain dict
(``PreprocessSpec.as_dict()``). Ray is imported lazily, only where a Ray Dataset is built.
"""

from mgpt_data.annotations import (
    CSV_NAME,
    IMAGES_DIRNAME,
    MAX_CAPTIONS,
    Flickr30kFormatError,
    scan_annotations,
)
from mgpt_data.check import check_data_dir
from mgpt_data.csv_records import MAX_FIELD_CHARS
from mgpt_data.flickr30k import Flickr30kRead, Flickr30kRows, read_flickr30k, read_local, read_rows
from mgpt_data.grounded import GROUNDED_NAME, write_grounded_json
from mgpt_data.images import normalize_pixels, pixels_from_images
from mgpt_data.pipeline import add_pixels, check_augmentation
from mgpt_data.preprocess import ImageChecker, ImagePreprocessor, check_batch, preprocess_batch
from mgpt_data.ray_runtime import RayUnavailableError, apply_process_env, start_ray
from mgpt_data.rejects import RejectReason, append_rejects, drain_rejects, start_rejects_sink
from mgpt_data.settings import DataSettings
from mgpt_data.synthetic import SCENES_NAME, ensure_data_dir, write_synthetic_scenes

__all__ = [
    "CSV_NAME", "GROUNDED_NAME", "IMAGES_DIRNAME", "MAX_CAPTIONS", "MAX_FIELD_CHARS", "SCENES_NAME",
    "DataSettings", "Flickr30kFormatError", "Flickr30kRead", "Flickr30kRows", "ImageChecker",
    "ImagePreprocessor", "RayUnavailableError", "RejectReason",
    "add_pixels", "append_rejects", "apply_process_env", "check_augmentation", "check_batch",
    "check_data_dir", "drain_rejects", "ensure_data_dir", "normalize_pixels", "pixels_from_images",
    "preprocess_batch", "read_flickr30k", "read_local", "read_rows", "scan_annotations", "start_ray",
    "start_rejects_sink", "write_grounded_json", "write_synthetic_scenes",
]
