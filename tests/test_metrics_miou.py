"""mIoU and pixel accuracy on hand-made confusion matrices."""
import math

import numpy as np
import pytest
import torch

from oasisgan.metrics.miou import (SegmentationScore, confusion_matrix, iou_per_class, mean_iou,
                                   pixel_accuracy, resize_labels)


def test_confusion_matrix_counts_and_ignores():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, -1, -1]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 0]])
    cm = confusion_matrix(pred, target, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]  # the -1 pixels are not counted


def test_hand_made_miou():
    cm = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    # IoU: class0 1/(2+2-1)=1/3, class1 2/(2+3-2)=2/3, class2 1/(2+1-1)=1/2
    np.testing.assert_allclose(iou_per_class(cm), [1 / 3, 2 / 3, 1 / 2])
    assert mean_iou(cm) == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert pixel_accuracy(cm) == pytest.approx(4 / 6)


def test_absent_classes_are_skipped_but_false_positives_count():
    # class 2 never occurs and is never predicted: skipped; class 3 is predicted but absent: IoU 0
    cm = np.zeros((4, 4), dtype=np.int64)
    cm[0, 0], cm[1, 1], cm[1, 3] = 5, 3, 1
    iou = iou_per_class(cm)
    assert math.isnan(iou[2]) and iou[3] == 0.0
    assert mean_iou(cm) == pytest.approx((1.0 + 0.75 + 0.0) / 3)
    assert mean_iou(cm, classes=[0, 1]) == pytest.approx((1.0 + 0.75) / 2)


def test_perfect_and_empty():
    assert mean_iou(np.eye(5) * 7) == 1.0 and pixel_accuracy(np.eye(5)) == 1.0
    assert math.isnan(mean_iou(np.zeros((3, 3)))) and math.isnan(pixel_accuracy(np.zeros((3, 3))))


def test_score_accumulates_and_resizes_labels_nearest():
    s = SegmentationScore(3, classes=[1, 2], class_names=["dc", "a", "b"])
    target = torch.tensor([[[1, 1, 2, 2]] * 4])  # (1, 4, 4)
    big = target.repeat_interleave(2, 1).repeat_interleave(2, 2)  # (1, 8, 8)
    pred = target.clone()
    s.update(pred, big)  # label resized (nearest) to the prediction's size
    s.update(pred, target)
    assert s.cm.sum() == 32 and s.miou == 1.0 and s.accuracy == 1.0
    assert s.per_class() == {"a": 1.0, "b": 1.0}
    assert resize_labels(big, (4, 4)).tolist() == target.tolist()


def test_prediction_out_of_range_raises():
    with pytest.raises(ValueError):
        confusion_matrix(torch.tensor([3]), torch.tensor([0]), 3)
