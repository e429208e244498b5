"""Sparse annotations: train any dataset at a chosen annotation density (the IJCV study's setting).

``annotation_density`` (0, 1] keeps that fraction of a training label map's annotation; the rest
becomes the don't-care id, which the N+1 loss ignores (weight 0) and evaluation skips.
``annotation_unit`` says what is kept:

- ``regions`` (default): the connected regions of each class (4-connected, don't care excluded)
  are the units, as an annotator who labels some objects and areas of an image and leaves the
  rest; ``density * n`` of an image's ``n`` regions are kept, rounded stochastically
  (``floor(density * n + u)``, ``u`` uniform), so that the dataset keeps ``density`` of its
  regions on average and an image with few regions may keep none;
- ``pixels``: each labelled pixel is kept with probability ``density`` (scattered points).

Deterministic per item: which regions or pixels survive depends only on ``cfg.seed`` and the
item's name, never on the epoch, the worker or the crop, so the training set is one fixed
sparsely annotated dataset. It is drawn on the label map at its file's resolution, before the
resize and crop. Only the training split is thinned; validation label maps stay as they are.
"""
from __future__ import annotations

import zlib
from typing import Optional

import numpy as np

from ..errors import DataError

UNITS = ("regions", "pixels")


def sparse_rng(seed: int, name: str) -> np.random.Generator:
    """The generator of one item's annotation draw (independent of epoch, worker and order)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode("utf-8")), 0x5BA45E])


def regions(ids: np.ndarray, dontcare: Optional[int]) -> "tuple[np.ndarray, int]":
    """(region index per pixel, 0 = don't care, 1..n; n): the 4-connected regions of each class."""
    from scipy import ndimage

    out = np.zeros(ids.shape, np.int32)
    n = 0
    for c in np.unique(ids):
        if dontcare is not None and c == dontcare:
            continue
        lab, k = ndimage.label(ids == c)
        out[lab > 0] = lab[lab > 0] + n
        n += k
    return out, n


def thin_labels(ids: np.ndarray, density: float, unit: str, dontcare: Optional[int],
                rng: np.random.Generator) -> np.ndarray:
    """A copy of the (H, W) id map with all but `density` of its annotation set to `dontcare`."""
    if dontcare is None:
        raise DataError("sparse annotations (annotation_density < 1) need a don't-care id: the dataset's "
                        "dontcare_label is null")
    if not 0 < density <= 1:
        raise DataError(f"annotation_density must lie in (0, 1], got {density}")
    if unit not in UNITS:
        raise DataError(f"annotation_unit must be one of {', '.join(UNITS)}, got {unit!r}")
    if density >= 1:
        return ids
    out = ids.copy()
    if unit == "pixels":
        drop = rng.random(ids.shape) >= density
        out[drop] = dontcare
        return out
    region, n = regions(ids, dontcare)
    if n == 0:
        return out
    keep_n = int(np.floor(density * n + rng.random()))
    kept = np.zeros(n + 1, bool)
    kept[1 + rng.permutation(n)[:keep_n]] = True
    out[~kept[region]] = dontcare
    return out
