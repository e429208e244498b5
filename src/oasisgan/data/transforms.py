"""The official OASIS transforms, with PIL/numpy/torch and an explicit RNG per item.

Official (dataloaders/*Dataset.py), per image/label pair:
  1. resize to (load_h, load_w): image bicubic, label nearest (PIL, as torchvision does for PIL images);
  2. random crop to (crop_h, crop_w) at ``x = randint(0, load_w - crop_w)``, ``y = randint(0, load_h - crop_h)``
     (both ends inclusive; a no-op when load == crop, e.g. Cityscapes 256x512);
  3. horizontal flip with probability 0.5 (not for validation, not with ``no_flip``);
  4. image: ``to_tensor`` (uint8 / 255 in float32) then ``normalize(0.5, 0.5)`` -> [-1, 1];
     label: the integer ids.
Validation ("for_metrics") resizes straight to the generated size, no crop, no flip.

That is ``preprocess_mode: resize_and_crop``, the official one: it distorts photos whose aspect
ratio is not the generated size's. ``scale_shortside_and_crop`` (SPADE's mode of that name, for
any aspect ratio) keeps the photo's shape instead: step 1 scales the image by one factor so that it
just covers the (load_h, load_w) box, and step 2 crops at a random place in the whole scaled
image; validation scales it to cover the generated size and takes the centre. For a photo of the
generated size's aspect ratio both modes give the same pixels.

Randomness comes from ``item_rng(seed, epoch, index)`` instead of Python's global ``random``, so an
item's augmentation depends only on (seed, epoch, index): not on workers, processes or resumption.
The draws are made in the official order (crop x, crop y, flip).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch
from PIL import Image

BICUBIC = Image.Resampling.BICUBIC if hasattr(Image, "Resampling") else Image.BICUBIC
NEAREST = Image.Resampling.NEAREST if hasattr(Image, "Resampling") else Image.NEAREST
FLIP_LR = Image.Transpose.FLIP_LEFT_RIGHT if hasattr(Image, "Transpose") else Image.FLIP_LEFT_RIGHT


@dataclass(frozen=True)
class TransformSpec:
    """Sizes are (height, width)."""

    load_size: Tuple[int, int]
    crop_size: Tuple[int, int]
    flip: bool
    keep_aspect: bool = False  # scale to cover load_size instead of resizing to it

    @classmethod
    def from_config(cls, cfg, augment: bool) -> "TransformSpec":
        crop = (cfg.height, cfg.width)
        keep = cfg.preprocess_mode == "scale_shortside_and_crop"
        if not augment:
            return cls(load_size=crop, crop_size=crop, flip=False, keep_aspect=keep)
        load = (int(round(cfg.load_size / cfg.aspect_ratio)), int(cfg.load_size))
        return cls(load_size=load, crop_size=crop, flip=not cfg.no_flip, keep_aspect=keep)

    @property
    def random(self) -> bool:
        return self.flip or self.load_size != self.crop_size

    def scaled_size(self, image_wh: Tuple[int, int]) -> Tuple[int, int]:
        """(height, width) of an image of PIL size ``image_wh`` before the crop."""
        if not self.keep_aspect:
            return self.load_size
        (w, h), (lh, lw) = image_wh, self.load_size
        s = max(lw / w, lh / h)
        return max(lh, int(round(h * s))), max(lw, int(round(w * s)))


@dataclass(frozen=True)
class AugmentParams:
    crop_x: int = 0
    crop_y: int = 0
    flip: bool = False


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random generator of one item in one epoch (independent of worker and process)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), int(index)])


def sample_params(spec: TransformSpec, rng: Optional[np.random.Generator],
                  image_wh: Optional[Tuple[int, int]] = None) -> AugmentParams:
    """The crop offsets and flip of one item; without randomness, the centre crop."""
    (lh, lw), (ch, cw) = spec.load_size, spec.crop_size
    if image_wh is not None:
        lh, lw = spec.scaled_size(image_wh)
    if rng is None or not spec.random:
        return AugmentParams((lw - cw) // 2, (lh - ch) // 2) if spec.keep_aspect else AugmentParams()
    x = int(rng.integers(0, max(0, lw - cw) + 1))
    y = int(rng.integers(0, max(0, lh - ch) + 1))
    flip = bool(rng.random() < 0.5) if spec.flip else False
    return AugmentParams(x, y, flip)


def resize_pil(img: Image.Image, size_hw: Tuple[int, int], resample) -> Image.Image:
    h, w = size_hw
    if img.size == (w, h):
        return img
    return img.resize((w, h), resample)


def apply_pair(image: Image.Image, label: Image.Image, spec: TransformSpec,
               params: AugmentParams) -> Tuple[Image.Image, Image.Image]:
    """Resize (bicubic / nearest), crop and flip an image and its label identically."""
    size = spec.scaled_size(image.size)
    image = resize_pil(image, size, BICUBIC)
    label = resize_pil(label, size, NEAREST)
    (lh, lw), (ch, cw) = size, spec.crop_size
    if (lh, lw) != (ch, cw):
        box = (params.crop_x, params.crop_y, params.crop_x + cw, params.crop_y + ch)
        image, label = image.crop(box), label.crop(box)
    if params.flip:
        image, label = image.transpose(FLIP_LR), label.transpose(FLIP_LR)
    return image, label


def image_to_array(image) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (3, H, W) in [-1, 1]: torchvision's to_tensor + normalize(0.5, 0.5)."""
    a = np.asarray(image, dtype=np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    x = a.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)
    return (x - np.float32(0.5)) / np.float32(0.5)


def image_to_tensor(image) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image_to_array(image)))
