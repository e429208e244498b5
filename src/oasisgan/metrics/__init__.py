"""Evaluation: FID, mIoU, diversity (LPIPS, MS-SSIM) and the offline FSD; see docs/evaluation.md."""
from .evaluate import METRICS, EvalReport, evaluate, evaluate_report, lower_is_better, parse_metrics
from .fid import FeatureStats, FIDInceptionV3, frechet_distance, load_inception
from .miou import SegmentationScore, confusion_matrix, mean_iou, pixel_accuracy

__all__ = ["evaluate", "evaluate_report", "EvalReport", "METRICS", "lower_is_better", "parse_metrics",
           "frechet_distance", "FeatureStats", "FIDInceptionV3", "load_inception", "confusion_matrix",
           "mean_iou", "pixel_accuracy", "SegmentationScore"]
