"""mgpt_eval: caption metrics over pycocoevalcap's scorers, bootstrap intervals, CHAIR, reports.

Pure: imports no other mgpt package. Generating predictions is mgpt_train's job; this package scores
the strings it is given and writes the tables and chart.
"""

from mgpt_eval.bootstrap import ConfidenceInterval, chair_intervals, metric_intervals
from mgpt_eval.chair import (
    caption_objects,
    chair,
    chair_with_ground_truth,
    objects_from_captions,
    objects_from_coco_instances,
)
from mgpt_eval.chair_vocab import ObjectVocabulary, build_vocabulary, coco_vocabulary, shapes_vocabulary
from mgpt_eval.chart import plot_metrics
from mgpt_eval.evaluate import evaluate_predictions, make_row
from mgpt_eval.gallery import GalleryItem, gallery_captions, load_gallery
from mgpt_eval.metrics import MetricReport, score_captions
from mgpt_eval.names import CAPTION_METRICS, CHAIR_METRICS, DEFAULT_METRICS, normalise_metric_names
from mgpt_eval.predictions import (
    predictions_to_inputs,
    read_predictions,
    score_predictions_file,
    write_predictions,
)
from mgpt_eval.report import write_report
from mgpt_eval.session import ScoringSession
from mgpt_eval.settings import EvalSettings, select_checkpoints
from mgpt_eval.singular import singularize
from mgpt_eval.tokenize import java_available

__all__ = [
    "CAPTION_METRICS",
    "CHAIR_METRICS",
    "DEFAULT_METRICS",
    "ConfidenceInterval",
    "EvalSettings",
    "GalleryItem",
    "MetricReport",
    "ObjectVocabulary",
    "ScoringSession",
    "build_vocabulary",
    "caption_objects",
    "chair",
    "chair_intervals",
    "chair_with_ground_truth",
    "coco_vocabulary",
    "evaluate_predictions",
    "gallery_captions",
    "java_available",
    "load_gallery",
    "make_row",
    "metric_intervals",
    "normalise_metric_names",
    "objects_from_captions",
    "objects_from_coco_instances",
    "plot_metrics",
    "predictions_to_inputs",
    "read_predictions",
    "score_captions",
    "score_predictions_file",
    "select_checkpoints",
    "shapes_vocabulary",
    "singularize",
    "write_predictions",
    "write_report",
]
