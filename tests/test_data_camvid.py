"""CamVid (SegNet layout): the loader, its lists, palette and classes, `data check`, and the
preprocessing mode that keeps a photo's aspect ratio."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from oasisgan.config import ConfigError, preset
from oasisgan.data import build_dataset, check_dataset, config_for_root, list_split
from oasisgan.data.camvid import sequence_of
from oasisgan.data.classes import CAMVID_CLASSES, CAMVID_PALETTE
from oasisgan.data.transforms import TransformSpec, apply_pair, item_rng, sample_params
from oasisgan.errors import DataError


def _write_camvid(root: Path, split: str, names, size=(48, 36), ids=None, listed=True) -> None:
    (root / split).mkdir(parents=True, exist_ok=True)
    (root / f"{split}annot").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(names))
    lines = []
    for n in names:
        w, h = size
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / split / n)
        lab = np.full((h, w), 3, np.uint8) if ids is None else np.full((h, w), ids, np.uint8)
        lab[: h // 3] = 0  # sky
        lab[-2:, :4] = 11  # unlabelled
        Image.fromarray(lab).save(root / f"{split}annot" / n)
        lines.append(f"/SegNet/CamVid/{split}/{n} /SegNet/CamVid/{split}annot/{n}")
    if listed:
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")


def test_preset_classes_palette_and_dontcare():
    cfg = config_for_root("camvid")
    assert cfg.dataset == "camvid" and cfg.semantic_nc == 12 and cfg.dontcare_label == 11
    assert cfg.class_names == CAMVID_CLASSES and cfg.class_names[11] == "Unlabelled"
    assert cfg.palette == CAMVID_PALETTE and cfg.palette[3] == [128, 64, 128]  # Road
    assert (cfg.height, cfg.width) == (96, 128)  # 4:3 like the photos
    assert cfg.preprocess_mode == "scale_shortside_and_crop"


def test_list_file_decides_pairs_and_order(tmp_path):
    root = tmp_path / "CamVid"
    _write_camvid(root, "train", ["b_1.png", "a_2.png", "c_3.png"])
    # a file in the folder that the list does not name is not used
    shutil.copy(root / "train" / "c_3.png", root / "train" / "z_9.png")
    shutil.copy(root / "trainannot" / "c_3.png", root / "trainannot" / "z_9.png")
    cfg = config_for_root("camvid")
    listing = list_split(cfg, tmp_path, "train")  # the parent of CamVid/ works too
    assert [p.name for p in listing.pairs] == ["b_1.png", "a_2.png", "c_3.png"]
    (root / "train.txt").unlink()
    assert [p.name for p in list_split(cfg, root, "train").pairs] == ["a_2.png", "b_1.png", "c_3.png", "z_9.png"]


def test_listed_label_missing_is_named(tmp_path):
    root = tmp_path / "CamVid"
    _write_camvid(root, "train", ["a_1.png", "a_2.png"])
    (root / "trainannot" / "a_2.png").unlink()
    with pytest.raises(DataError, match=r"without a label.*a_2\.png"):
        build_dataset(config_for_root("camvid"), root, "train")
    with pytest.raises(DataError, match="unknown split 'testing'"):
        list_split(config_for_root("camvid"), root, "testing")


def test_data_check_names_bad_label_file_and_id(tmp_path):
    root = tmp_path / "CamVid"
    _write_camvid(root, "train", [f"s_{i}.png" for i in range(5)])
    _write_camvid(root, "val", ["v_1.png"])
    _write_camvid(root, "test", ["t_1.png", "t_2.png"])
    lab = np.array(Image.open(root / "testannot" / "t_2.png"))
    lab[5, 5] = 12  # one past Unlabelled
    Image.fromarray(lab).save(root / "testannot" / "t_2.png")
    cfg = config_for_root("camvid")
    assert check_dataset(cfg, root, splits=["train", "val"]).ok
    report = check_dataset(cfg, root, splits=["test"])
    text = report.format()
    assert not report.ok and "t_2.png" in text and "12" in text
    cli = subprocess.run([sys.executable, "-m", "oasisgan.cli", "data", "check", "--preset", "camvid",
                          "--root", str(root), "--split", "test", "--no-progress"], capture_output=True, text=True)
    assert cli.returncode == 1 and "t_2.png" in cli.stdout and "Traceback" not in cli.stderr


def test_real_camvid_loads(shared_dir):
    root = shared_dir / "datasets" / "camvid"
    cfg = config_for_root("camvid")
    train, val = build_dataset(cfg, root, "train"), build_dataset(cfg, root, "val")
    assert len(train) == 367 and len(val) == 101
    item = val[0]
    assert item["image"].shape == (3, 96, 128) and item["label"].shape == (96, 128)
    assert int(item["label"].max()) <= 11
    assert sequence_of(item["name"]) == "0016E5"


# --- preprocessing that keeps the aspect ratio ------------------------------------------------------------------
def _stripes(w: int, h: int):
    """An image and label with one vertical stripe per 10 % of the width and a horizon at 40 %."""
    lab = np.zeros((h, w), np.uint8)
    for k in range(10):
        lab[:, k * w // 10:(k + 1) * w // 10] = k % 5
    lab[: 2 * h // 5] = 7
    pal = np.random.default_rng(0).integers(0, 255, (8, 3), dtype=np.uint8)
    return Image.fromarray(pal[lab]), Image.fromarray(lab)


def test_shortside_mode_keeps_shape_and_is_deterministic():
    cfg = preset("toy", semantic_nc=8, crop_size=64, load_size=72, aspect_ratio=4 / 3,
                 preprocess_mode="scale_shortside_and_crop")
    train, val = TransformSpec.from_config(cfg, True), TransformSpec.from_config(cfg, False)
    assert train.keep_aspect and val.keep_aspect
    image, label = _stripes(400, 150)  # 8:3, much wider than the 4:3 crop
    assert train.scaled_size(image.size) == (54, 144)  # covers the 54x72 box with one scale factor
    params = [sample_params(train, item_rng(3, e, 7), image.size) for e in range(60)]
    assert params[5] == sample_params(train, item_rng(3, 5, 7), image.size)  # per item and epoch
    assert max(p.crop_x for p in params) > 40  # crops reach across the whole scaled width
    assert {p.flip for p in params} == {True, False}
    for p in params[:4]:
        im, lb = apply_pair(image, label, train, p)
        assert im.size == lb.size == (64, 48)
    # validation: the centre, at the generated size, undistorted (a stripe is 10 % of 128 px wide)
    vp = sample_params(val, None, image.size)
    im, lb = apply_pair(image, label, val, vp)
    assert im.size == (64, 48)
    widths = np.diff(np.flatnonzero(np.diff(np.asarray(lb)[-1].astype(int)) != 0))
    assert set(widths.tolist()) <= {12, 13}  # 0.1 * 400 * (48 / 150) = 12.8 px


def test_shortside_mode_equals_resize_for_same_aspect():
    image, label = _stripes(480, 360)
    for augment in (True, False):
        res = TransformSpec.from_config(preset("camvid", preprocess_mode="resize_and_crop"), augment)
        keep = TransformSpec.from_config(preset("camvid"), augment)
        for e in range(3):
            rng_a, rng_b = (item_rng(0, e, 1), item_rng(0, e, 1)) if augment else (None, None)
            a = apply_pair(image, label, res, sample_params(res, rng_a, image.size))
            b = apply_pair(image, label, keep, sample_params(keep, rng_b, image.size))
            assert np.array_equal(np.asarray(a[0]), np.asarray(b[0]))
            assert np.array_equal(np.asarray(a[1]), np.asarray(b[1]))


def test_unknown_preprocess_mode_is_refused():
    with pytest.raises(ConfigError, match="preprocess_mode"):
        preset("camvid", preprocess_mode="squash")


# --- sizes the networks can take ---------------------------------------------------------------------------------
def test_size_that_cannot_work_names_nearest_sizes():
    cfg = preset("custom", semantic_nc=5, crop_size=128, aspect_ratio=1.3333)  # the generator takes it
    with pytest.raises(ConfigError) as e:
        cfg.check_trainable()  # the discriminator does not
    msg = str(e.value)
    assert "96x128" in msg and "multiples of 64" in msg and "128x128" in msg and "num_res_blocks=5" in msg
    assert "\n" not in msg
    preset("custom", semantic_nc=5, crop_size=128, aspect_ratio=1.3333, num_res_blocks=5).check_trainable()
    with pytest.raises(ConfigError, match="fit the generator.*multiples of 32"):
        preset("custom", semantic_nc=5, crop_size=128, aspect_ratio=2.6667)  # 48: not even G's


def test_train_cli_refuses_size_before_first_iteration(tmp_path, toy_root):
    out = tmp_path / "run"
    cli = subprocess.run([sys.executable, "-m", "oasisgan.cli", "train", "--preset", "custom", "--data-root",
                          str(toy_root), "--out", str(out), "--set", "crop_size=128", "--set", "aspect_ratio=1.3333",
                          "--no-progress"], capture_output=True, text=True)
    assert cli.returncode == 2, cli.stderr
    assert "96x128" in cli.stderr and "Traceback" not in cli.stderr
    assert len(cli.stderr.strip().splitlines()) == 1
    assert not (out / "checkpoints").exists()


def test_discriminator_takes_every_size_the_check_accepts():
    from oasisgan.nn import Discriminator, Generator

    for blocks, (h, w) in ((4, (48, 64)), (5, (96, 128)), (5, (32, 96))):
        cfg = preset("toy", semantic_nc=4, crop_size=w, load_size=w, aspect_ratio=w / h, num_res_blocks=blocks,
                     channels_G=4, channels_D=4, spade_hidden=8, z_dim=4)
        g, d = Generator.from_config(cfg), Discriminator.from_config(cfg)
        label = torch.zeros(1, 4, h, w)
        label[:, 1] = 1
        with torch.no_grad():
            assert d(g(label)).shape == (1, 5, h, w)


# --- layout twins: the real-diversity reference of a dataset with one photo per layout ----------------------------
def test_masked_spread_and_agreement():
    from oasisgan.metrics.twins import agreement, masked_spread

    a = torch.zeros(2, 3, 4, 4)
    a[1, :, :2] = 1.0  # the two images differ by 1.0 (of [-1, 1]) in the top half only
    top = torch.zeros(4, 4, dtype=torch.bool)
    top[:2] = True
    assert masked_spread(a, top) == pytest.approx(2 ** -0.5 * 127.5)
    assert masked_spread(a, ~top) == 0.0
    la, lb = torch.zeros(4, 4, dtype=torch.long), torch.zeros(4, 4, dtype=torch.long)
    lb[0] = 1
    la[3] = 11  # don't care in one map: not counted
    assert float(agreement(la, lb, 11)) == pytest.approx(8 / 12)


def test_twins_come_from_other_recordings(shared_dir):
    from oasisgan.metrics.twins import find_twins

    root = shared_dir / "datasets" / "camvid"
    cfg = config_for_root("camvid")
    val = build_dataset(cfg, root, "val")
    twins = find_twins(cfg, root, val, 3)
    assert all(t is not None for t in twins)
    for twin_image, mask, agree in twins:
        assert twin_image.shape == (3, 96, 128) and mask.shape == (96, 128)
        assert 0.5 < agree <= 1.0 and 0.3 < float(mask.float().mean()) < 1.0
    # every twin is a photo of another sequence than 0016E5 (the val photos' own)
    train = build_dataset(cfg, root, "train", augment=False)
    other = {i for i in range(len(train)) if sequence_of(train.pairs[i].name) != "0016E5"}
    assert any(torch.equal(twins[0][0], train[i]["image"]) for i in other)
    # a model trained on sparse labels is measured against the same twins and pixels
    sparse = find_twins(cfg.replace(annotation_density=0.1), root, val, 3)
    for (img, mask, agree), (img_s, mask_s, agree_s) in zip(twins, sparse):
        assert torch.equal(img, img_s) and torch.equal(mask, mask_s) and agree == agree_s


def test_street_layouts_for_street_classes():
    from oasisgan.data.street import street_classes, street_label

    assert street_classes(["unlabeled", "road", "sidewalk", "building", "sky", "car"]) is not None
    assert street_classes(["sky", "sea", "sand"]) is None
    labs = [street_label(CAMVID_CLASSES, 96, 128, v) for v in range(4)]
    assert not np.array_equal(labs[0], labs[1]) and np.array_equal(labs[2], street_label(CAMVID_CLASSES, 96, 128, 2))
    for lab in labs:
        assert lab.shape == (96, 128) and lab.max() < 11  # never the don't-care id
        top, bottom = lab[:10], lab[-10:]
        assert (top == 0).mean() > 0.2 and (bottom == 3).mean() > 0.4  # sky above, road below
        assert (lab == 1).mean() > 0.1  # buildings


@pytest.mark.slow
def test_short_camvid_training_end_to_end(shared_dir, tmp_path):
    """The camvid preset as shipped (bf16 autocast included), a few iterations on the real photos,
    then the checkpoint synthesises a validation label map."""
    import oasisgan

    root, out = shared_dir / "datasets" / "camvid", tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "oasisgan.cli", "train", "--preset", "camvid", "--data-root", str(root),
                        "--out", str(out), "--iters", "3", "--num-workers", "0", "--no-progress",
                        "--set", "freq_save_ckpt=0"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    model = oasisgan.load(out / "checkpoints" / "latest.ckpt")
    assert model.config.preset == "camvid" and model.meta.get("iteration") == 3
    val = build_dataset(model.config, root, "val", augment=False)
    img = model.synthesize(val[0]["label"], seed=0)
    assert img.shape == (1, 3, 96, 128) and torch.isfinite(img).all()
