"""`oasis data check` finds each kind of defect in a damaged copy, names the file, and sets the exit code."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from oasisgan.cli import main
from oasisgan.data import check_dataset, config_for_root


@pytest.fixture()
def coco_copy(shared_dir, tmp_path):
    dst = tmp_path / "coco"
    for sub in ("train_img", "train_label", "val_img", "val_label"):
        shutil.copytree(shared_dir / "datasets/coco_stuff" / sub, dst / sub)
    return dst


def test_clean_samples_pass(coco_copy, capsys):
    cfg = config_for_root("coco-stuff", batch_size=4)
    rep = check_dataset(cfg, coco_copy)
    assert rep.ok, rep.format()
    assert rep.splits["train"].pairs == 13 and rep.splits["val"].pairs == 4
    assert rep.splits["train"].class_pixels.sum() > 0
    assert main(["data", "check", "--preset", "coco-stuff", "--root", str(coco_copy), "--set", "batch_size=4"]) == 0
    assert "OK" in capsys.readouterr().out


def test_each_defect_is_found(coco_copy, capsys):
    tr_img, tr_lab = coco_copy / "train_img", coco_copy / "train_label"
    imgs = sorted(tr_img.iterdir())
    # 1. image without label
    (tr_lab / (imgs[0].stem + ".png")).unlink()
    # 2. label without image
    shutil.copy(tr_lab / (imgs[1].stem + ".png"), tr_lab / "orphan.png")
    # 3. truncated (unreadable) image
    data = imgs[2].read_bytes()
    imgs[2].write_bytes(data[: len(data) // 3])
    # 4. raw id 200 -> model id 201 >= 183
    p4 = tr_lab / (imgs[3].stem + ".png")
    a = np.asarray(Image.open(p4)).copy()
    a[:5, :5] = 200
    Image.fromarray(a).save(p4)
    # 5. label of the wrong size
    p5 = tr_lab / (imgs[4].stem + ".png")
    Image.open(p5).resize((100, 80), Image.NEAREST).save(p5)
    # 6. a label saved as JPEG (and the PNG removed)
    p6 = tr_lab / (imgs[5].stem + ".png")
    Image.open(p6).save(p6.with_suffix(".jpg"))
    p6.unlink()
    rep = check_dataset(config_for_root("coco-stuff", batch_size=4), coco_copy)
    assert not rep.ok
    text = rep.format()
    s = rep.splits["train"]
    assert [p for p in s.unmatched_images] == [str(imgs[0])]
    assert s.unmatched_labels == [str(tr_lab / "orphan.png")]
    assert [f for f, _ in s.unreadable] == [str(imgs[2])]
    assert s.bad_ids[str(p4)] == [201]
    assert set(s.bad_ids) <= {str(p4), str(p6.with_suffix(".jpg"))}  # JPEG artefacts may add ids
    assert len(s.size_mismatch) == 1 and s.size_mismatch[0][1] == str(p5)
    assert s.jpeg_labels == [str(p6.with_suffix(".jpg"))]
    for needle in (imgs[0].name, "orphan.png", imgs[2].name, f"{p4}: ids 201 (raw 200)", p5.name,
                   "stored as JPEG"):
        assert needle in text, needle
    assert main(["data", "check", "--preset", "coco-stuff", "--root", str(coco_copy), "--set", "batch_size=4",
                 "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and str(p4) in out["splits"]["train"]["bad_ids"]


def test_colour_labels_with_unknown_colours_and_small_dataset(toy_root, tmp_path):
    root = tmp_path / "toy"
    shutil.copytree(toy_root, root)
    cfg = config_for_root("toy", root)
    pal = np.array(cfg.palette, np.uint8)
    lab_path = root / "train/labels/00003.png"
    rgb = pal[np.asarray(Image.open(lab_path))]
    rgb[0, 0] = (1, 2, 3)  # anti-aliasing-like stray colour
    Image.fromarray(rgb).save(lab_path)
    rep = check_dataset(cfg, root)
    assert list(rep.splits["train"].unknown_colors) == [str(lab_path)]
    assert any("(1,2,3)" in e and "00003.png" in e for e in rep.errors)
    rep = check_dataset(cfg.replace(batch_size=100), root, mode="sample", splits=["train"])
    assert any("fewer than one batch" in e for e in rep.errors)


def test_missing_layout(tmp_path, capsys):
    assert main(["data", "check", "--preset", "ade20k", "--root", str(tmp_path)]) == 1
    assert "ADEChallengeData2016/images/training" in capsys.readouterr().out
    assert main(["data", "check", "--preset", "custom", "--root", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
