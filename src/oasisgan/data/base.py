"""The dataset class shared by every layout: a sorted list of (image, label) files + the transforms."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image

from ..errors import DataError
from ..labels import palette_array
from .labelmaps import ColorLookup, open_label, pil_label_to_ids
from .photos import read_photo
from .sparse import sparse_rng, thin_labels
from .transforms import TransformSpec, apply_pair, image_to_tensor, item_rng, sample_params

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
LABEL_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")  # jpg labels are flagged by check


@dataclass
class Pair:
    image: Path
    label: Path
    name: str  # the image's path relative to the split's image folder (the official "name")


@dataclass
class Listing:
    """The files of one split: matched pairs and what could not be matched."""

    pairs: List[Pair]
    image_dir: Path
    label_dir: Path
    unmatched_images: List[Path] = field(default_factory=list)
    unmatched_labels: List[Path] = field(default_factory=list)


def list_files(folder: Path, extensions: Sequence[str], recursive: bool = False) -> List[Path]:
    if not folder.is_dir():
        return []
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if p.suffix.lower() in extensions and p.is_file() and not p.name.startswith("."))


def match_by_stem(images: List[Path], labels: List[Path], image_dir: Path, label_dir: Path,
                  image_key=None, label_key=None) -> Listing:
    """Pair files whose keys (default: path relative to their folder, without extension) are equal."""
    image_key = image_key or (lambda p: str(p.relative_to(image_dir).with_suffix("")))
    label_key = label_key or (lambda p: str(p.relative_to(label_dir).with_suffix("")))
    lab: Dict[str, Path] = {}
    dup_labels: List[Path] = []
    for p in labels:
        k = label_key(p)
        if k is None:
            continue
        if k in lab:
            dup_labels.append(p)  # e.g. x.png and x.bmp: ambiguous
        else:
            lab[k] = p
    pairs, unmatched_images, used = [], [], set()
    for p in images:
        k = image_key(p)
        if k is None:
            continue
        if k in lab and k not in used:
            used.add(k)
            pairs.append(Pair(p, lab[k], str(p.relative_to(image_dir))))
        else:
            unmatched_images.append(p)
    unmatched_labels = [p for k, p in lab.items() if k not in used] + dup_labels
    return Listing(pairs, image_dir, label_dir, unmatched_images, sorted(unmatched_labels))


class PairedDataset(torch.utils.data.Dataset):
    """Items: ``{"image": float32 (3,H,W) in [-1,1], "label": int64 (H,W), "name": str}``.

    ``dataset[i]`` uses ``self.epoch`` (``set_epoch``); ``dataset[(i, epoch)]`` names the epoch
    explicitly. The augmentation of an item depends only on (seed, epoch, index);
    ``oasisgan.data.loader.epoch_loader`` sets the epoch on its own copy of the dataset.
    """

    def __init__(self, cfg, listing: Listing, split: str, augment: bool, seed: int, root: Path):
        self.cfg = cfg
        self.listing = listing
        self.pairs = listing.pairs
        self.split = split
        self.augment = augment
        self.seed = int(seed)
        self.root = Path(root)
        self.epoch = 0
        self.spec = TransformSpec.from_config(cfg, augment)
        self._lookup: Optional[ColorLookup] = None
        self.thin: Optional[bool] = None  # thin this split's labels (None: the training split only)

    def __len__(self) -> int:
        return len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def names(self) -> List[str]:
        return [p.name for p in self.pairs]

    def _color_lookup(self) -> ColorLookup:
        if self._lookup is None:
            self._lookup = ColorLookup(palette_array(self.cfg.palette, self.cfg.semantic_nc))
        return self._lookup

    def load(self, index: int) -> Tuple[Image.Image, Image.Image]:
        """The untransformed image (RGB) and label (PIL, in the file's own mode)."""
        pair = self.pairs[index]
        image = read_photo(pair.image)
        label = open_label(pair.label)
        if image.size != label.size:
            raise DataError(f"image {pair.image} is {image.size[0]}x{image.size[1]} but its label "
                            f"{pair.label} is {label.size[0]}x{label.size[1]} (width x height)")
        return image, label

    def __getitem__(self, key: Union[int, Tuple[int, int]]) -> Dict[str, object]:
        if isinstance(key, tuple):
            index, epoch = int(key[0]), int(key[1])
        else:
            index, epoch = int(key), self.epoch
        if index < 0:
            index += len(self)
        image, label = self.load(index)
        rng = item_rng(self.seed, epoch, index) if self.spec.random else None
        params = sample_params(self.spec, rng, image.size)
        if self.sparse:  # thinned at the file's resolution, then resized and cropped as ids
            label = Image.fromarray(self.thinned_ids(index, label).astype(np.int32))
            image, label = apply_pair(image, label, self.spec, params)
            ids = np.asarray(label).astype(np.int64)
        else:
            image, label = apply_pair(image, label, self.spec, params)
            ids = self.label_ids(index, label)
        return {"image": image_to_tensor(image), "label": torch.from_numpy(ids), "name": self.pairs[index].name}

    @property
    def sparse(self) -> bool:
        """Whether this split's label maps are thinned (``annotation_density`` < 1; by default the
        training split only, ``thin=True`` any split, e.g. to evaluate on maps as sparse)."""
        thin = self.split == "train" if self.thin is None else self.thin
        return thin and getattr(self.cfg, "annotation_density", 1.0) < 1.0

    def label_ids(self, index: int, label: Image.Image) -> np.ndarray:
        arr = np.asarray(label)
        return pil_label_to_ids(label, self.cfg, self.pairs[index].label,
                                self._color_lookup() if arr.ndim == 3 else None)

    def thinned_ids(self, index: int, label: Image.Image) -> np.ndarray:
        """The item's model ids at the file's resolution, thinned to ``annotation_density``."""
        ids = self.label_ids(index, label)
        return thin_labels(ids, self.cfg.annotation_density, self.cfg.annotation_unit, self.cfg.dontcare_label,
                           sparse_rng(self.cfg.seed, self.pairs[index].name))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.cfg.dataset}, split={self.split}, n={len(self)}, "
                f"size={self.spec.crop_size}, augment={self.augment}, root={self.root})")
