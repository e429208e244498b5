"""Custom folders: index and colour labels, classes files, flat layout, clear errors; the toy preset."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from oasisgan.config import ConfigError
from oasisgan.data import build_dataset, config_for_root, epoch_loader, read_label_file
from oasisgan.errors import DataError, LabelError

PAL = [[0, 0, 0], [200, 30, 30], [30, 200, 30], [30, 30, 200]]
NAMES = ["void", "red", "green", "blue"]


def _make_custom(root, n=6, size=(48, 40), colour=False, split_dirs=True, fmt="yaml"):
    rng = np.random.default_rng(1)
    pal = np.array(PAL, np.uint8)
    for split in (("train", "val") if split_dirs else ("",)):
        base = root / split if split else root
        (base / "images").mkdir(parents=True)
        (base / "labels").mkdir(parents=True)
        for i in range(n):
            lab = np.zeros(size[::-1], np.uint8)
            lab[:, : size[0] // 2] = rng.integers(1, 4)
            lab[size[1] // 2:, size[0] // 2:] = rng.integers(0, 4)
            Image.fromarray(pal[lab]).save(base / "images" / f"im{i}.png")
            (Image.fromarray(pal[lab]) if colour else Image.fromarray(lab)).save(base / "labels" / f"im{i}.png")
    if fmt == "yaml":
        (root / "classes.yaml").write_text("dontcare: 0\nclasses:\n" + "".join(
            f"  - {{id: {i}, name: {n}, color: {c}}}\n" for i, (n, c) in enumerate(zip(NAMES, PAL))))
    else:
        (root / "classes.json").write_text(json.dumps({"names": NAMES, "colors": PAL, "dontcare": 0}))
    return root


@pytest.mark.parametrize("colour,fmt", [(False, "yaml"), (True, "json")])
def test_custom_index_and_colour_labels(tmp_path, colour, fmt):
    root = _make_custom(tmp_path / "d", colour=colour, fmt=fmt)
    cfg = config_for_root("custom", root, crop_size=32, load_size=32)
    assert cfg.semantic_nc == 4 and cfg.class_names == NAMES and cfg.palette == PAL and cfg.dontcare_label == 0
    ds = build_dataset(cfg, root, "train")
    assert len(ds) == 6 and len(build_dataset(cfg, root, "val")) == 6
    item = ds[0]
    assert item["image"].shape == (3, 32, 32) and item["label"].dtype == torch.int64
    # image colour == palette colour of the label everywhere away from region borders
    img = ((item["image"].numpy().transpose(1, 2, 0) + 1) * 127.5).round()
    lab = item["label"].numpy()
    inner = np.ones_like(lab, bool)
    inner[14:18, :] = inner[:, 14:18] = False
    assert np.abs(img[inner] - np.array(PAL)[lab[inner]]).max() <= 1
    ids = read_label_file(ds.pairs[0].label, cfg)
    assert ids.shape == (40, 48) and set(np.unique(ids)) <= {0, 1, 2, 3}


def test_index_and_colour_labels_give_the_same_ids(tmp_path):
    a = _make_custom(tmp_path / "a", colour=False)
    b = _make_custom(tmp_path / "b", colour=True)
    cfg = config_for_root("custom", a)
    for i in range(6):
        assert np.array_equal(read_label_file(a / "train/labels" / f"im{i}.png", cfg),
                              read_label_file(b / "train/labels" / f"im{i}.png", cfg))


def test_flat_layout_and_loader(tmp_path):
    root = _make_custom(tmp_path / "flat", n=8, split_dirs=False)
    cfg = config_for_root("custom", root, crop_size=32, load_size=48, batch_size=4)
    ds = build_dataset(cfg, root)
    assert len(ds) == 8 and len(build_dataset(cfg, root, "val")) == 8
    batch = next(iter(epoch_loader(ds, cfg, 0, 4, num_workers=0)))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["label"].shape == (4, 32, 32)
    assert len(batch["name"]) == 4


def test_errors_name_the_file(tmp_path):
    root = _make_custom(tmp_path / "e", colour=True)
    cfg = config_for_root("custom", root)
    bad = root / "train/labels/im0.png"
    arr = np.asarray(Image.open(bad)).copy()
    arr[0, 0] = (1, 2, 3)
    Image.fromarray(arr).save(bad)
    with pytest.raises(LabelError, match=r"im0\.png.*\(1,2,3\)"):
        read_label_file(bad, cfg)
    idx = root / "train/labels/im1.png"
    Image.fromarray(np.full((40, 48), 7, np.uint8)).save(idx)
    with pytest.raises(LabelError, match=r"im1\.png: ids 7"):
        read_label_file(idx, cfg)
    with pytest.raises(LabelError, match="im1.png"):
        build_dataset(cfg, root)[1]
    (root / "train/labels/im2.png").unlink()
    with pytest.raises(DataError, match=r"im2\.png"):
        build_dataset(cfg, root)
    with pytest.raises(DataError, match="no classes file"):
        config_for_root("custom", tmp_path)
    with pytest.raises(ConfigError):
        config_for_root("custom")


def test_bad_classes_file(tmp_path):
    (tmp_path / "classes.yaml").write_text("classes:\n  - {id: 0, name: a}\n  - {id: 2, name: b}\n")
    with pytest.raises(DataError, match="without gaps"):
        config_for_root("custom", tmp_path)
    (tmp_path / "classes.yaml").write_text("dontcare: 5\nnames: [a, b]\n")
    with pytest.raises(DataError, match="dontcare"):
        config_for_root("custom", tmp_path)


def test_toy_preset_reads_its_classes(toy_root):
    cfg = config_for_root("toy", toy_root)
    assert cfg.semantic_nc == 9 and cfg.dontcare_label == 0 and cfg.class_names[1] == "sky"
    assert (cfg.height, cfg.width) == (64, 64)
    ds = build_dataset(cfg, toy_root, "train")
    assert len(ds) == 64 and len(build_dataset(cfg, toy_root, "val")) == 16
    item = ds[0]
    assert item["image"].shape == (3, 64, 64) and int(item["label"].max()) < 9


def test_palette_16bit_and_grey_rgb_index_labels(tmp_path):
    root = _make_custom(tmp_path / "m", n=2)
    cfg = config_for_root("custom", root)
    lab = np.asarray(Image.open(root / "train/labels/im0.png"))
    p = Image.fromarray(lab, mode="L").convert("P")  # palette PNG: indices are the ids
    p.putpalette([255, 255, 255] * 256)
    p.save(tmp_path / "p.png")
    Image.fromarray(lab.astype(np.uint16)).save(tmp_path / "i16.png")
    Image.fromarray(np.repeat(lab[..., None], 3, 2)).save(tmp_path / "grey.png")  # ids saved as grey RGB
    for name in ("p.png", "i16.png", "grey.png"):
        assert np.array_equal(read_label_file(tmp_path / name, cfg), lab.astype(np.int64)), name
