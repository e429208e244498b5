"""Users' own data (and the toy dataset): image and label folders with matching file stems.

Layout, either with splits::

    ROOT/classes.yaml            (or classes.yml / classes.json; see oasisgan.data.classes)
    ROOT/train/images/*.jpg|png  ROOT/train/labels/*.png
    ROOT/val/images/...          ROOT/val/labels/...

or flat (one set, used for training; evaluation then also uses it)::

    ROOT/classes.yaml  ROOT/images/...  ROOT/labels/...

Files pair by their path relative to ``images/`` / ``labels/`` without the extension (sub-folders
allowed). Labels are index PNGs holding model ids, or colour PNGs using exactly the colours of the
classes file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

from ..errors import DataError
from .base import IMAGE_EXTENSIONS, LABEL_EXTENSIONS, Listing, list_files, match_by_stem


def resolve_root(root: Union[str, Path]) -> Path:
    return Path(root)


def split_root(root: Union[str, Path], split: str) -> Path:
    root = Path(root)
    if (root / split / "images").is_dir():
        return root / split
    if split == "val" and (root / "validation" / "images").is_dir():
        return root / "validation"
    if (root / "images").is_dir():
        return root
    raise DataError(f"custom dataset {root}: no {split}/images/ (or images/) folder; expected "
                    f"{root}/{split}/images and {root}/{split}/labels, or {root}/images and {root}/labels")


def list_split(root: Union[str, Path], split: str) -> Listing:
    base = split_root(root, split)
    image_dir, label_dir = base / "images", base / "labels"
    if not label_dir.is_dir():
        raise DataError(f"custom dataset: {image_dir} has no sibling folder {label_dir}")
    return match_by_stem(list_files(image_dir, IMAGE_EXTENSIONS, recursive=True),
                         list_files(label_dir, LABEL_EXTENSIONS, recursive=True), image_dir, label_dir)
