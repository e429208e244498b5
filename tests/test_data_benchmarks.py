"""The benchmark loaders on the real samples in ../shared/datasets (ADE20K, Cityscapes, COCO-Stuff)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from oasisgan.data import build_dataset, config_for_root, read_label_file
from oasisgan.data.transforms import NEAREST


@pytest.fixture(scope="module")
def ds_root(shared_dir):
    return shared_dir / "datasets"


def _raw(path):
    return np.asarray(Image.open(path))


def test_ade20k_counts_shapes_and_ids(ds_root):
    cfg = config_for_root("ade20k")
    assert cfg.class_names[3] == "sky" and len(cfg.class_names) == 151 and len(cfg.palette) == 151
    tr = build_dataset(cfg, ds_root / "ade20k", "train")
    va = build_dataset(cfg, ds_root / "ade20k" / "ADEChallengeData2016", "val")  # either root works
    assert (len(tr), len(va)) == (1, 1)
    item = tr[0]
    assert item["image"].shape == (3, 256, 256) and item["image"].dtype == torch.float32
    assert item["label"].shape == (256, 256) and item["label"].dtype == torch.int64
    assert -1.0 <= item["image"].min() and item["image"].max() <= 1.0
    assert item["name"] == "ADE_train_00000001.jpg"
    # validation: nearest resize to 256x256, ids unchanged (0 = other stays 0)
    v = va[0]
    lab_path = ds_root / "ade20k/ADEChallengeData2016/annotations/validation/ADE_val_00000001.png"
    expect = np.asarray(Image.open(lab_path).resize((256, 256), NEAREST)).astype(np.int64)
    assert np.array_equal(v["label"].numpy(), expect)
    raw = read_label_file(lab_path, cfg)
    assert raw.dtype == np.int64 and np.array_equal(raw, _raw(lab_path))


def test_ade20k_train_crop_is_a_window_of_the_resized_label(ds_root):
    cfg = config_for_root("ade20k", no_flip=True)
    ds = build_dataset(cfg, ds_root / "ade20k", "train")
    lab_path = ds.pairs[0].label
    full = np.asarray(Image.open(lab_path).resize((286, 286), NEAREST)).astype(np.int64)
    seen = set()
    for epoch in range(6):
        lab = ds[(0, epoch)]["label"].numpy()
        hits = [(y, x) for y in range(31) for x in range(31) if np.array_equal(full[y:y + 256, x:x + 256], lab)]
        assert hits, "train label is not a 256x256 window of the 286x286 resized label"
        seen.add(hits[0])
    assert len(seen) > 1  # the crop is random across epochs


def test_cityscapes_counts_shapes_ids(ds_root):
    cfg = config_for_root("cityscapes")
    tr = build_dataset(cfg, ds_root / "cityscapes", "train")
    va = build_dataset(cfg, ds_root / "cityscapes", "val")
    assert (len(tr), len(va)) == (8, 1)
    assert all(p.label.name.endswith("_gtFine_labelIds.png") for p in tr.pairs + va.pairs)
    assert tr.pairs[0].name == "aachen/aachen_000000_000019_leftImg8bit.png"
    v = va[0]
    assert v["image"].shape == (3, 256, 512) and v["label"].shape == (256, 512)
    expect = np.asarray(Image.open(va.pairs[0].label).resize((512, 256), NEAREST)).astype(np.int64)
    assert np.array_equal(v["label"].numpy(), expect)  # labelIds as is
    assert v["label"].max() < 35


def test_coco_stuff_label_conversion(ds_root):
    cfg = config_for_root("coco-stuff")
    tr = build_dataset(cfg, ds_root / "coco_stuff", "train")
    va = build_dataset(cfg, ds_root / "coco_stuff", "val")
    assert (len(tr), len(va)) == (13, 4)
    path = va.pairs[0].label
    raw = _raw(path)
    ids = read_label_file(path, cfg)
    assert (raw == 255).any()
    assert np.array_equal(ids[raw == 255], np.zeros((raw == 255).sum()))
    assert np.array_equal(ids[raw != 255], raw[raw != 255].astype(np.int64) + 1)
    v = va[0]
    assert v["image"].shape == (3, 256, 256)
    expect = np.asarray(Image.open(path).resize((256, 256), NEAREST)).astype(np.int64) + 1
    expect[expect == 256] = 0
    assert np.array_equal(v["label"].numpy(), expect)


def test_train_items_are_reproducible_and_flip_aligned(ds_root):
    cfg = config_for_root("coco-stuff")
    ds = build_dataset(cfg, ds_root / "coco_stuff", "train")
    a, b = ds[(3, 7)], ds[(3, 7)]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    ds.set_epoch(7)
    assert torch.equal(ds[3]["label"], a["label"])
    assert any(not torch.equal(ds[(3, e)]["image"], a["image"]) for e in range(8, 12))
