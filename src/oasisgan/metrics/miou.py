"""mIoU and pixel accuracy from a confusion matrix (rows: ground truth, columns: prediction).

Pixels whose ground truth is -1 (don't care, or a class the segmenter does not score) are
ignored. mIoU averages IoU = TP / (TP + FP + FN) over the scored classes whose union is
non-empty (classes absent from both the ground truth and the prediction are skipped, the usual
``nanmean``); pixel accuracy is TP summed over all valid pixels.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int = -1) -> torch.Tensor:
    """(C, C) int64 counts: entry [t, p] = pixels of true class t predicted as p."""
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    if pred.shape != target.shape:
        raise ValueError(f"prediction and target differ in size: {pred.numel()} vs {target.numel()}")
    keep = (target != ignore_index) & (target >= 0) & (target < num_classes)
    pred, target = pred[keep], target[keep]
    if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= num_classes):
        raise ValueError(f"predicted class outside 0..{num_classes - 1}")
    return torch.bincount(target * num_classes + pred, minlength=num_classes ** 2).reshape(
        num_classes, num_classes).cpu()


def iou_per_class(cm) -> np.ndarray:
    """IoU per class, NaN where the class has neither ground truth nor prediction."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.where(union > 0, union, 1), np.nan)


def mean_iou(cm, classes: Optional[Sequence[int]] = None) -> float:
    """Mean IoU over `classes` (default all) that occur in ground truth or prediction."""
    iou = iou_per_class(cm)
    if classes is not None:
        iou = iou[np.asarray(list(classes), dtype=np.int64)]
    iou = iou[~np.isnan(iou)]
    return float(iou.mean()) if iou.size else float("nan")


def pixel_accuracy(cm) -> float:
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum()
    return float(np.trace(cm) / total) if total > 0 else float("nan")


def resize_labels(label: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of integer label maps (B, H, W) (labels are never interpolated)."""
    if tuple(label.shape[-2:]) == tuple(size):
        return label
    return F.interpolate(label[:, None].float(), size=size, mode="nearest")[:, 0].long()


class SegmentationScore:
    """Accumulates a confusion matrix over batches of (predicted class, true class) maps."""

    def __init__(self, num_classes: int, classes: Optional[Sequence[int]] = None,
                 class_names: Optional[Sequence[str]] = None):
        self.num_classes = num_classes
        self.classes = list(classes) if classes is not None else None
        self.class_names = list(class_names) if class_names is not None else None
        self.cm = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if tuple(pred.shape[-2:]) != tuple(target.shape[-2:]):
            target = resize_labels(target, tuple(pred.shape[-2:]))
        self.cm += confusion_matrix(pred, target, self.num_classes)

    @property
    def miou(self) -> float:
        return mean_iou(self.cm.numpy(), self.classes)

    @property
    def accuracy(self) -> float:
        return pixel_accuracy(self.cm.numpy())

    def per_class(self) -> Dict[str, float]:
        iou = iou_per_class(self.cm.numpy())
        idx = self.classes if self.classes is not None else range(self.num_classes)
        out = {}
        for c in idx:
            if not np.isnan(iou[c]):
                name = self.class_names[c] if self.class_names and c < len(self.class_names) else str(c)
                out[name] = float(iou[c])
        return out
