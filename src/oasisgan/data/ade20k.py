"""ADE20K (``ADEChallengeData2016``) and its outdoor subset.

Layout (the SceneParsing release)::

    ADEChallengeData2016/images/{training,validation}/ADE_*.jpg
    ADEChallengeData2016/annotations/{training,validation}/ADE_*.png   (0 = other/don't care, 1..150)

``root`` may be the ``ADEChallengeData2016`` folder or its parent.

ADE20K-outdoor
--------------
The official OASIS code does not ship the outdoor file list, so we select it from the annotations
with this rule (``OUTDOOR_RULE_VERSION``): an image is *outdoor* when

1. the classes of ``OUTDOOR_CLASSES`` (sky, mountain, earth, sea, field, sand, river, hill, land,
   waterfall, lake) together cover at least ``min_outdoor`` (default 1%) of its pixels, and
2. it contains not a single pixel of an ``INDOOR_CLASSES`` class (ceiling, floor, bed, cabinet, sofa,
   rug, wardrobe, bathtub, cushion, chest of drawers, sink, fireplace, refrigerator, pool table,
   pillow, bookcase, coffee table, toilet, countertop, stove, kitchen island, chandelier, ottoman,
   washer, cradle, oven, microwave, dishwasher, blanket, sconce, shower, radiator).

The list is built once per split (``oasis data outdoor-list --root DIR``, or automatically on first
use) and cached as ``outdoor_{training,validation}.txt`` under
``$OASISGAN_CACHE`` (default ``~/.cache/oasisgan``) ``/ade20k-outdoor/<hash of the root>/``, or in the
dataset folder when the cache is not writable. A list placed in the dataset folder itself is used
as well (so a list can travel with the data). The first line records the rule version and
threshold; a list made with another rule is ignored and rebuilt.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable, List, Optional, Tuple, Union

import numpy as np

from ..errors import DataError
from ..loading.checkpoint import CheckpointWriteError, atomic_write
from .base import IMAGE_EXTENSIONS, LABEL_EXTENSIONS, Listing, list_files, match_by_stem

SPLIT_DIRS = {"train": "training", "val": "validation"}

OUTDOOR_RULE_VERSION = 1
# ADE20K model ids (= annotation values); names in oasisgan.data.classes.ADE20K_CLASSES
OUTDOOR_CLASSES = (3, 14, 17, 27, 30, 47, 61, 69, 95, 114, 129)
INDOOR_CLASSES = (4, 6, 8, 11, 24, 29, 36, 38, 40, 45, 48, 50, 51, 57, 58, 63, 65, 66, 71, 72, 74, 86,
                  98, 108, 118, 119, 125, 130, 132, 135, 146, 147)


def resolve_root(root: Union[str, Path]) -> Path:
    root = Path(root)
    if (root / "ADEChallengeData2016").is_dir() and not (root / "images").is_dir():
        root = root / "ADEChallengeData2016"
    return root


def split_dir(split: str) -> str:
    if split not in SPLIT_DIRS:
        raise DataError(f"unknown split {split!r} for ADE20K; use train or val")
    return SPLIT_DIRS[split]


def list_split(root: Union[str, Path], split: str) -> Listing:
    root = resolve_root(root)
    mode = split_dir(split)
    image_dir, label_dir = root / "images" / mode, root / "annotations" / mode
    if not image_dir.is_dir():
        raise DataError(f"ADE20K: no folder {image_dir} (expected ADEChallengeData2016/images/{mode})")
    if not label_dir.is_dir():
        raise DataError(f"ADE20K: no folder {label_dir} (expected ADEChallengeData2016/annotations/{mode})")
    return match_by_stem(list_files(image_dir, IMAGE_EXTENSIONS), list_files(label_dir, LABEL_EXTENSIONS),
                         image_dir, label_dir)


# --- ADE20K-outdoor ----------------------------------------------------------------------------------
def is_outdoor(label: np.ndarray, min_outdoor: float = 0.01) -> bool:
    """The selection rule on one annotation (ADE20K ids, (H, W))."""
    counts = np.bincount(label.ravel(), minlength=256)
    if counts[list(INDOOR_CLASSES)].sum() > 0:
        return False
    return counts[list(OUTDOOR_CLASSES)].sum() >= min_outdoor * label.size


def _rule_header(min_outdoor: float) -> str:
    return f"# oasisgan ADE20K-outdoor rule v{OUTDOOR_RULE_VERSION} min_outdoor={min_outdoor:g}"


def _cache_candidates(root: Path, split: str) -> List[Path]:
    name = f"outdoor_{split_dir(split)}.txt"
    digest = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]
    return [cache_dir() / "ade20k-outdoor" / digest / name, root / name]


def cache_dir() -> Path:
    if os.environ.get("OASISGAN_CACHE"):
        return Path(os.environ["OASISGAN_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "oasisgan"


def read_outdoor_cache(root: Union[str, Path], split: str, min_outdoor: float = 0.01) -> Optional[List[str]]:
    root = resolve_root(root)
    for path in _cache_candidates(root, split):
        if path.is_file():
            lines = path.read_text().splitlines()
            if lines and lines[0].strip() == _rule_header(min_outdoor):
                return [ln.strip() for ln in lines[1:] if ln.strip()]
    return None


def build_outdoor_list(root: Union[str, Path], split: str, min_outdoor: float = 0.01,
                       progress: bool = True, write: bool = True) -> Tuple[List[str], Optional[Path]]:
    """Scan the split's annotations with the rule; return (image stems, cache path or None)."""
    from PIL import Image
    from tqdm import tqdm

    from concurrent.futures import ThreadPoolExecutor

    root = resolve_root(root)
    listing = list_split(root, split)

    def judge(pair) -> bool:
        try:
            with Image.open(pair.label) as im:
                lab = np.asarray(im)
        except Exception as e:
            raise DataError(f"cannot read label file {pair.label}: {e}") from None
        return lab.ndim == 2 and is_outdoor(lab, min_outdoor)

    with ThreadPoolExecutor(4) as pool:  # PNG decoding releases the GIL
        verdicts = list(tqdm(pool.map(judge, listing.pairs), total=len(listing.pairs),
                             desc=f"ADE20K-outdoor {split}", unit="label", disable=not progress, leave=False))
    stems = [p.label.stem for p, keep in zip(listing.pairs, verdicts) if keep]
    written = None
    if write:
        text = _rule_header(min_outdoor) + "\n" + "".join(s + "\n" for s in stems)
        for path in _cache_candidates(root, split):
            try:
                atomic_write(path, lambda f: f.write(text), text=True)
                written = path
                break
            except (OSError, CheckpointWriteError):  # a read-only dataset folder: the next candidate
                continue
    return stems, written


def outdoor_stems(root: Union[str, Path], split: str, min_outdoor: float = 0.01,
                  progress: Optional[bool] = None) -> List[str]:
    """The cached outdoor list, built (and cached) first when missing."""
    cached = read_outdoor_cache(root, split, min_outdoor)
    if cached is not None:
        return cached
    if progress is None:
        import sys

        progress = sys.stderr.isatty()
    return build_outdoor_list(root, split, min_outdoor, progress=progress)[0]


def list_outdoor_split(root: Union[str, Path], split: str, min_outdoor: float = 0.01) -> Listing:
    listing = list_split(root, split)
    keep = set(outdoor_stems(root, split, min_outdoor))
    listing.pairs = [p for p in listing.pairs if p.label.stem in keep]
    return listing
