"""Cityscapes: ``leftImg8bit/{train,val}/<city>/*_leftImg8bit.png`` with
``gtFine/{train,val}/<city>/*_gtFine_labelIds.png`` (labelIds 0..33 as model ids; 0 = don't care).

Other gtFine files (``labelTrainIds``, ``instanceIds``, ``color``, polygons) are ignored, as in the
official loader. Images are resized to 256x512 (no crop), flipped with p = 0.5 for training.
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

from ..errors import DataError
from .base import Listing, list_files, match_by_stem

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"


def resolve_root(root: Union[str, Path]) -> Path:
    return Path(root)


def list_split(root: Union[str, Path], split: str) -> Listing:
    root = Path(root)
    if split not in ("train", "val", "test"):
        raise DataError(f"unknown split {split!r} for Cityscapes; use train or val")
    image_dir, label_dir = root / "leftImg8bit" / split, root / "gtFine" / split
    for d, what in ((image_dir, "leftImg8bit"), (label_dir, "gtFine")):
        if not d.is_dir():
            raise DataError(f"Cityscapes: no folder {d} (expected {what}/{split}/<city>/)")
    images = [p for p in list_files(image_dir, (".png",), recursive=True) if p.name.endswith(IMAGE_SUFFIX)]
    labels = [p for p in list_files(label_dir, (".png",), recursive=True) if p.name.endswith(LABEL_SUFFIX)]

    def key(p: Path, base: Path, suffix: str) -> str:
        rel = str(p.relative_to(base))
        return rel[: -len(suffix)]

    return match_by_stem(images, labels, image_dir, label_dir,
                         image_key=lambda p: key(p, image_dir, IMAGE_SUFFIX),
                         label_key=lambda p: key(p, label_dir, LABEL_SUFFIX))
