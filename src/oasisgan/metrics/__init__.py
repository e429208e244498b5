"""Evaluation: FID, mIoU, diversity (LPIPS, MS-SSIM) and the offline FSD; see docs/evaluation.md."""
from .evaluate import (METRICS, REFERENCE_SEGMENTER_FILENAME, DataSelection, DiversitySampling, EvalReport,
                       InceptionOptions, LPIPSOptions, Segmentation, TrainingEvaluator, check_metrics,
                       default_reference_segmenter, evaluate, evaluate_report, lower_is_better, parse_metrics)
from .fid import FeatureStats, FIDInceptionV3, frechet_distance, load_inception
from .miou import SegmentationScore, confusion_matrix, mean_iou, pixel_accuracy

__all__ = ["evaluate", "evaluate_report", "check_metrics", "DataSelection", "Segmentation", "InceptionOptions",
           "LPIPSOptions", "DiversitySampling", "default_reference_segmenter",
           "REFERENCE_SEGMENTER_FILENAME", "EvalReport", "TrainingEvaluator", "METRICS", "lower_is_better", "parse_metrics",
           "frechet_distance", "FeatureStats", "FIDInceptionV3", "load_inception", "confusion_matrix",
           "mean_iou", "pixel_accuracy", "SegmentationScore"]
