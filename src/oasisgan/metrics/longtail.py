"""Long-tail evaluation: per-class IoU summarised by frequency group (rare / common / frequent).

Where the groups come from (``frequency_groups``):

- ``auto`` (default): the dataset's own groups when its classes metadata has them (LVIS's
  ``r``/``c``/``f``, by the number of training images a category occurs in, or a classes file
  with ``frequency:`` entries), else ``pixels``;
- ``pixels`` / ``images``: the classes are ranked by their training pixel count (or the number
  of training images they occur in) and cut into thirds: the least frequent third is ``rare``,
  the middle ``common``, the rest ``frequent``. Classes never seen in training are rare. Counts
  come from `oasis data check`'s scan of the training split (every label map up to 2000 of
  them, else an evenly spaced sample of 16: the ``counted`` entry says which);
- ``none``: no grouping.

A group's mIoU averages the IoU of its classes that occur in the ground truth or the prediction
(as the overall mIoU does); the don't-care class belongs to no group.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from ..data.check import _frequency_groups, check_dataset

GROUPS = ("rare", "common", "frequent")
MODES = ("auto", "pixels", "images", "none")


def dataset_groups(cfg, data_root) -> Optional[List[Optional[str]]]:
    """The classes metadata's frequency group per model id, or None."""
    from pathlib import Path

    if data_root is None:
        return None
    return _frequency_groups(cfg, Path(data_root))


def count_groups(counts: np.ndarray, dontcare: Optional[int]) -> List[Optional[str]]:
    """Thirds of the classes by training count (ties keep id order): rare, common, frequent."""
    ids = [i for i in range(len(counts)) if i != dontcare]
    order = sorted(ids, key=lambda i: (counts[i], i))
    out: List[Optional[str]] = [None] * len(counts)
    n = len(order)
    for rank, i in enumerate(order):
        out[i] = GROUPS[min(2, rank * 3 // max(n, 1))]
    return out


_COUNTS: Dict[tuple, Tuple[np.ndarray, np.ndarray, int]] = {}


def training_counts(cfg, data_root) -> Tuple[np.ndarray, np.ndarray, int]:
    """(pixels per class, images per class, label maps counted) of the training split; counted
    once per process and dataset (training's periodic evaluations reuse it)."""
    from pathlib import Path

    key = (str(Path(data_root).resolve()), cfg.dataset, cfg.semantic_nc, cfg.dontcare_label)
    if key not in _COUNTS:
        rep = check_dataset(cfg, data_root, mode="auto", splits=["train"], workers=4)
        sr = rep.splits["train"]
        if sr.class_pixels is None or sr.decoded == 0:
            raise ValueError(sr.layout_error or "no training label maps could be read")
        _COUNTS[key] = (sr.class_pixels, sr.class_images, sr.decoded)
    return _COUNTS[key]


def frequency_groups(cfg, data_root, mode: str = "auto") -> Tuple[Optional[List[Optional[str]]], Dict]:
    """(group per model id or None, a description of where the groups come from)."""
    if mode not in MODES:
        raise ValueError(f"frequency groups: one of {', '.join(MODES)}, not {mode!r}")
    if mode == "none" or data_root is None:
        return None, {}
    if mode == "auto":
        groups = dataset_groups(cfg, data_root)
        if groups is not None and any(g is not None for g in groups):
            return groups, {"source": "dataset (classes metadata)"}
        mode = "pixels"
    try:
        pixels, images, n = training_counts(cfg, data_root)
    except (ValueError, OSError) as e:
        return None, {"source": f"none: the training split could not be counted ({e})"}
    counts = pixels if mode == "pixels" else images
    return count_groups(counts, cfg.dontcare_label), {
        "source": f"thirds of the classes by training {mode} count", "counted": int(n),
        "counts": counts.tolist()}


def iou_by_group(per_class: Dict[str, float], groups: Sequence[Optional[str]],
                 names: Sequence[str]) -> Dict[str, Dict]:
    """{group: {"miou", "classes" (scored names -> IoU), "num_classes"}} from the per-class IoU
    (keyed by class name, as `SegmentationScore.per_class` gives it)."""
    out: Dict[str, Dict] = {}
    for g in GROUPS:
        members = [i for i, x in enumerate(groups) if x == g and i < len(names)]
        if not members:
            continue
        # keyed by name, or by id where the segmenter has no class names
        scored = {names[i]: per_class[k] for i in members
                  for k in (names[i] if names[i] in per_class else str(i),) if k in per_class}
        out[g] = {"miou": float(np.mean(list(scored.values()))) if scored else float("nan"),
                  "num_classes": len(members), "scored": scored}
    return out
