"""COCO-Stuff in the SPADE layout: ``{train,val}_img/*.jpg`` with ``{train,val}_label/*.png``.

Raw label ids 0..181 (things and stuff) and 255 = unlabeled; model id = raw + 1, 255 -> 0 (don't
care), 183 classes. ``{train,val}_inst`` (instance maps) are not used by OASIS and are ignored.
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

from ..errors import DataError
from .base import IMAGE_EXTENSIONS, LABEL_EXTENSIONS, Listing, list_files, match_by_stem


def resolve_root(root: Union[str, Path]) -> Path:
    return Path(root)


def list_split(root: Union[str, Path], split: str) -> Listing:
    root = Path(root)
    if split not in ("train", "val"):
        raise DataError(f"unknown split {split!r} for COCO-Stuff; use train or val")
    image_dir, label_dir = root / f"{split}_img", root / f"{split}_label"
    for d in (image_dir, label_dir):
        if not d.is_dir():
            raise DataError(f"COCO-Stuff: no folder {d} (expected {split}_img/ and {split}_label/)")
    return match_by_stem(list_files(image_dir, IMAGE_EXTENSIONS), list_files(label_dir, LABEL_EXTENSIONS),
                         image_dir, label_dir)
