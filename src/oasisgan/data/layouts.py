"""The dataset layouts (folder conventions) by config ``dataset`` name, and the file listing of a split."""
from __future__ import annotations

from pathlib import Path
from typing import Union

from ..errors import DataError
from . import ade20k, camvid, cityscapes, coco_stuff, custom, lvis
from .base import Listing

LAYOUTS = {"ade20k": ade20k, "ade20k-outdoor": ade20k, "cityscapes": cityscapes, "coco-stuff": coco_stuff,
           "camvid": camvid, "lvis": lvis, "custom": custom}


def list_split(cfg, root: Union[str, Path], split: str = "train") -> Listing:
    """The matched image/label files of a split (plus unmatched ones), for the config's layout."""
    if cfg.dataset not in LAYOUTS:
        raise DataError(f"unknown dataset layout {cfg.dataset!r}; one of {', '.join(LAYOUTS)}")
    if cfg.dataset == "ade20k-outdoor":
        return ade20k.list_outdoor_split(root, split)
    return LAYOUTS[cfg.dataset].list_split(root, split)
