"""The toy dataset: deterministic, fast, all classes, multi-modal appearance; `oasis data toy`."""
from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from oasisgan.cli import main
from oasisgan.data import check_dataset, config_for_root
from oasisgan.data.toy import SKY, TOY_CLASSES, generate_toy, toy_sample


def _read(root, split, i):
    return (np.asarray(Image.open(root / split / "images" / f"{i:05d}.png")),
            np.asarray(Image.open(root / split / "labels" / f"{i:05d}.png")))


def test_deterministic_per_seed(tmp_path, toy_root):
    again = generate_toy(tmp_path / "again", n_train=64, n_val=16, seed=0, workers=2)
    other = generate_toy(tmp_path / "other", n_train=8, n_val=0, seed=1, workers=1)
    for i in (0, 17, 63):
        a, b = _read(toy_root, "train", i), _read(again, "train", i)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert np.array_equal(_read(toy_root, "val", 5)[0], _read(again, "val", 5)[0])
    assert not np.array_equal(_read(toy_root, "train", 0)[0], _read(other, "train", 0)[0])
    assert not np.array_equal(_read(toy_root, "train", 0)[0], _read(toy_root, "val", 0)[0])


def test_classes_and_modes(toy_root):
    cfg = config_for_root("toy", toy_root)
    assert cfg.semantic_nc == len(TOY_CLASSES) >= 9 and cfg.dontcare_label == 0
    labs = np.stack([_read(toy_root, "train", i)[1] for i in range(64)])
    assert set(np.unique(labs)) == set(range(9))
    sky_means = []
    for i in range(64):
        img, lab = _read(toy_root, "train", i)
        if (lab == SKY).sum() > 200:
            sky_means.append(img[lab == SKY].mean(0))
    sky = np.array(sky_means)
    assert (sky[:, 2] > sky[:, 0] + 40).any() and (sky[:, 0] > sky[:, 2]).any()  # day and sunset skies
    rep = check_dataset(cfg, toy_root)
    assert rep.ok, rep.format()


def test_speed_small(tmp_path):
    t = time.perf_counter()
    generate_toy(tmp_path / "t", n_train=200, n_val=20, workers=1)
    assert time.perf_counter() - t < 6.0  # 2200 images must take < 30 s


@pytest.mark.slow
def test_speed_full(tmp_path):
    t = time.perf_counter()
    generate_toy(tmp_path / "full", n_train=2000, n_val=200)
    assert time.perf_counter() - t < 30.0
    assert len(list((tmp_path / "full/train/images").iterdir())) == 2000


def test_sample_is_pure_and_sizes(tmp_path):
    a = toy_sample(3, "train", 11, 128)
    b = toy_sample(3, "train", 11, 128)
    assert a[0].shape == (128, 128, 3) and np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    with pytest.raises(ValueError):
        generate_toy(tmp_path / "bad", size=50)


def test_cli_toy_then_check(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["data", "toy", "--out", str(out), "--train", "24", "--val", "8", "--seed", "2"]) == 0
    assert "oasis train --preset toy" in capsys.readouterr().out
    assert len(list((out / "train/images").iterdir())) == 24
    assert main(["data", "check", "--preset", "toy", "--root", str(out)]) == 0
    # regenerating smaller removes the stale files
    assert main(["data", "toy", "--out", str(out), "--train", "10", "--val", "2"]) == 0
    assert len(list((out / "train/labels").iterdir())) == 10
