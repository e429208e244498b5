"""Transforms: official math, alignment of image and label, per-item reproducibility."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from oasisgan.config import preset
from oasisgan.data.transforms import (AugmentParams, TransformSpec, apply_pair, image_to_array, item_rng,
                                      sample_params)


def test_normalisation_is_torchvision_to_tensor_then_normalize():
    a = np.arange(256, dtype=np.uint8).repeat(3).reshape(16, 16, 3)
    ours = image_to_array(a)
    t = torch.from_numpy(a).permute(2, 0, 1).contiguous().to(torch.float32).div(255)  # to_tensor
    t = t.sub(torch.tensor([0.5] * 3)[:, None, None]).div(torch.tensor([0.5] * 3)[:, None, None])  # normalize
    assert ours.dtype == np.float32 and np.array_equal(ours, t.numpy())
    assert ours.min() == -1.0 and ours.max() == 1.0


def test_spec_from_config():
    ade = preset("ade20k")
    assert TransformSpec.from_config(ade, True) == TransformSpec((286, 286), (256, 256), True)
    assert TransformSpec.from_config(ade, False) == TransformSpec((256, 256), (256, 256), False)
    city = preset("cityscapes")
    assert TransformSpec.from_config(city, True) == TransformSpec((256, 512), (256, 512), True)
    assert TransformSpec.from_config(preset("ade20k", no_flip=True), True).flip is False


def test_crop_range_inclusive_and_deterministic():
    spec = TransformSpec((286, 286), (256, 256), True)
    xs = {sample_params(spec, item_rng(0, 0, i)).crop_x for i in range(3000)}
    assert min(xs) == 0 and max(xs) == 30
    assert sample_params(spec, item_rng(5, 2, 9)) == sample_params(spec, item_rng(5, 2, 9))
    flips = [sample_params(spec, item_rng(0, e, 1)).flip for e in range(400)]
    assert 0.4 < np.mean(flips) < 0.6


def test_flip_moves_image_and_label_together():
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 5, (40, 60)).astype(np.uint8)
    pal = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [9, 9, 9]], np.uint8)
    img = Image.fromarray(pal[lab])
    spec = TransformSpec((40, 60), (32, 48), True)
    for params in (AugmentParams(3, 5, False), AugmentParams(3, 5, True), AugmentParams(12, 8, True)):
        im, lb = apply_pair(img, Image.fromarray(lab), spec, params)
        assert np.array_equal(np.asarray(im), pal[np.asarray(lb)])
    im0, lb0 = apply_pair(img, Image.fromarray(lab), spec, AugmentParams(3, 5, False))
    im1, lb1 = apply_pair(img, Image.fromarray(lab), spec, AugmentParams(3, 5, True))
    assert np.array_equal(np.asarray(lb1), np.asarray(lb0)[:, ::-1])
    assert np.array_equal(np.asarray(im1), np.asarray(im0)[:, ::-1])
