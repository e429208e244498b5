"""The lvis preset: an LVIS-format annotation file built here over the shared COCO-Stuff photos
(polygons, uncompressed and compressed RLE, overlapping instances, an image without annotations)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

mask_api = pytest.importorskip("pycocotools.mask", reason="the lvis extra (pycocotools) is not installed")

from oasisgan.data import build_dataset, check_dataset, config_for_root  # noqa: E402
from oasisgan.data import lvis  # noqa: E402
from oasisgan.errors import DataError  # noqa: E402

# LVIS category ids are not contiguous; frequency r/c/f as in lvis_v1_*.json.
CATEGORIES = [{"id": 3, "name": "aerosol_can", "frequency": "r"}, {"id": 7, "name": "apple", "frequency": "f"},
              {"id": 12, "name": "bagel", "frequency": "c"}, {"id": 40, "name": "table", "frequency": "f"},
              {"id": 41, "name": "cup", "frequency": "f"}, {"id": 99, "name": "yak", "frequency": "r"}]
MODEL_ID = {c["id"]: i + 1 for i, c in enumerate(CATEGORIES)}


def rect(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def _image(path: Path, image_id: int, folder: str):
    from PIL import Image

    w, h = Image.open(path).size
    return {"id": image_id, "width": w, "height": h,
            "coco_url": f"http://images.cocodataset.org/{folder}/{path.name}"}


def make_lvis_root(root: Path, shared: Path) -> dict:
    """ROOT/{train2017,val2017}/ (links to the photos) + lvis_v1_{train,val}.json; returns facts."""
    coco = shared / "datasets" / "coco_stuff"
    train = sorted((coco / "train_img").glob("*.jpg"))[:4]
    val = sorted((coco / "val_img").glob("*.jpg"))[:2]
    for folder, photos in (("train2017", train), ("val2017", val)):
        (root / folder).mkdir(parents=True)
        for p in photos:
            os.symlink(p, root / folder / p.name)
    images = [_image(p, 100 + i, "train2017") for i, p in enumerate(train)]
    w0, h0 = images[0]["width"], images[0]["height"]
    # image 100: a big table (listed last) with a cup on it (listed first): the cup must stay visible
    anns = [{"id": 1, "image_id": 100, "category_id": 41, "segmentation": rect(100, 100, 140, 150), "area": 2000.0},
            {"id": 2, "image_id": 100, "category_id": 40, "segmentation": rect(50, 50, 300, 300), "area": 62500.0}]
    # image 101: an uncompressed RLE (apple) and a compressed RLE (bagel) + a polygon (aerosol can)
    w1, h1 = images[1]["width"], images[1]["height"]
    m = np.zeros((h1, w1), np.uint8, order="F")
    m[10:60, 20:90] = 1
    rle = mask_api.encode(np.asfortranarray(m))
    counts = []  # uncompressed: run lengths, column-major, starting with zeros
    flat = m.flatten(order="F")
    run, val_ = 0, 0
    for v in flat:
        if v == val_:
            run += 1
        else:
            counts.append(run)
            run, val_ = 1, v
    counts.append(run)
    anns.append({"id": 3, "image_id": 101, "category_id": 7, "segmentation": {"size": [h1, w1], "counts": counts},
                 "area": float(m.sum())})
    m2 = np.zeros((h1, w1), np.uint8)
    m2[200:240, 300:400] = 1
    c = mask_api.encode(np.asfortranarray(m2))
    anns.append({"id": 4, "image_id": 101, "category_id": 12,
                 "segmentation": {"size": c["size"], "counts": c["counts"].decode()}, "area": float(m2.sum())})
    anns.append({"id": 5, "image_id": 101, "category_id": 3, "segmentation": rect(400, 10, 420, 30),
                 "area": 400.0})
    anns.append({"id": 6, "image_id": 102, "category_id": 7, "segmentation": rect(0, 0, 100, 100), "area": 1e4})
    # image 103: no annotations (all don't care)
    train_json = {"images": images, "annotations": anns, "categories": CATEGORIES}
    (root / "lvis_v1_train.json").write_text(json.dumps(train_json))
    # val draws from both COCO folders
    val_images = [_image(val[0], 200, "val2017"), _image(val[1], 201, "val2017"),
                  _image(train[3], 103, "train2017")]
    val_anns = [{"id": 10, "image_id": 200, "category_id": 99, "segmentation": rect(5, 5, 60, 60), "area": 3025.0},
                {"id": 11, "image_id": 103, "category_id": 41, "segmentation": rect(5, 5, 30, 30), "area": 625.0}]
    (root / "lvis_v1_val.json").write_text(json.dumps({"images": val_images, "annotations": val_anns,
                                                       "categories": CATEGORIES}))
    return {"train": train, "val": val, "size0": (w0, h0), "rle_mask": m, "rle2_mask": m2}


@pytest.fixture
def lvis_root(tmp_path, shared_dir):
    root = tmp_path / "lvis"
    facts = make_lvis_root(root, shared_dir)
    return root, facts


def test_classes_metadata_contiguous_ids_names_groups(lvis_root):
    root, _ = lvis_root
    cfg = config_for_root("lvis", root)
    assert cfg.semantic_nc == len(CATEGORIES) + 1 and cfg.dontcare_label == 0
    assert cfg.class_names == ["unannotated"] + [c["name"] for c in CATEGORIES]
    assert len(cfg.palette) == cfg.semantic_nc and len({tuple(c) for c in cfg.palette}) == cfg.semantic_nc
    spec = lvis.read_classes(root)
    assert spec.groups == [None, "rare", "frequent", "common", "frequent", "frequent", "rare"]
    assert spec.to_dict()["classes"][1]["frequency"] == "rare"


def test_label_maps_polygons_rle_overlap_and_empty_image(lvis_root):
    root, facts = lvis_root
    cfg = config_for_root("lvis", root)
    ds = build_dataset(cfg, root, "train", augment=False)
    assert len(ds) == 4
    _, lab0 = ds.load(0)
    ids = np.asarray(lab0)
    assert ids.shape[::-1] == facts["size0"]
    # the cup (listed first, smaller) stays on top of the table (listed last, larger)
    assert (ids[100:150, 100:140] == MODEL_ID[41]).mean() > 0.9
    assert ids[60, 60] == MODEL_ID[40] and ids[0, 0] == 0 and ids[320:, :].max() == 0
    ids1 = np.asarray(ds.load(1)[1])
    assert (ids1[facts["rle_mask"] == 1] == MODEL_ID[7]).all()  # uncompressed RLE exact
    assert (ids1[facts["rle2_mask"] == 1] == MODEL_ID[12]).all()  # compressed RLE exact
    assert (ids1[12:28, 402:418] == MODEL_ID[3]).all()
    assert np.asarray(ds.load(3)[1]).max() == 0  # no annotations: all don't care
    item = ds[0]
    assert item["label"].shape == (cfg.height, cfg.width) and item["name"].startswith("train2017/")


def test_val_images_come_from_both_coco_folders(lvis_root):
    root, _ = lvis_root
    cfg = config_for_root("lvis", root)
    ds = build_dataset(cfg, root, "val")
    folders = sorted({Path(p.image).parent.name for p in ds.pairs})
    assert folders == ["train2017", "val2017"]
    assert np.asarray(ds.load([r.image_id for r in ds.records].index(103))[1]).max() == MODEL_ID[41]


def test_check_reports_classes_annotated_fraction_and_groups(lvis_root):
    root, _ = lvis_root
    cfg = config_for_root("lvis", root, batch_size=2)
    rep = check_dataset(cfg, root)
    assert rep.ok, rep.errors
    text = rep.format()
    assert "annotated pixels:" in text and "frequency groups" in text and "rare" in text
    frac = rep.splits["train"].annotated_fraction(0)
    assert 0 < frac < 0.5
    assert any("entirely don't-care" in w for w in rep.warnings)  # the image without annotations
    d = rep.to_dict()
    assert d["groups"][1] == "rare" and d["splits"]["train"]["annotated_fraction"] == pytest.approx(frac)


def test_missing_image_and_unknown_category_are_named(lvis_root):
    root, facts = lvis_root
    data = json.loads((root / "lvis_v1_train.json").read_text())
    data["annotations"].append({"id": 77, "image_id": 100, "category_id": 5, "segmentation": rect(0, 0, 9, 9),
                                "area": 81.0})
    (root / "lvis_v1_train.json").write_text(json.dumps(data))
    (root / "train2017" / facts["train"][2].name).unlink()
    cfg = config_for_root("lvis", root)
    with pytest.raises(DataError) as e:
        build_dataset(cfg, root, "train")
    msg = str(e.value)
    assert "annotation 77" in msg and "category_id 5" in msg and facts["train"][2].name in msg
    rep = check_dataset(cfg, root)
    assert not rep.ok
    assert any("annotation 77" in x for x in rep.errors) and any(facts["train"][2].name in x for x in rep.errors)


def test_missing_annotation_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="lvis_v1_train.json"):
        config_for_root("lvis", tmp_path)


def test_cli_check(lvis_root, capsys):
    from oasisgan.cli import main

    root, _ = lvis_root
    assert main(["data", "check", "--preset", "lvis", "--root", str(root), "--no-progress",
                 "--set", "batch_size=2"]) == 0
    out = capsys.readouterr().out
    assert "annotated pixels" in out and "frequency groups" in out


def test_without_pycocotools_the_error_names_the_extra(monkeypatch, lvis_root):
    import builtins

    root, _ = lvis_root
    real_import = builtins.__import__

    def fake(name, *a, **k):
        if name.startswith("pycocotools"):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    cfg = config_for_root("lvis", root, batch_size=2)
    with pytest.raises(DataError, match=r"oasisgan\[lvis\]"):
        build_dataset(cfg, root, "train")
    rep = check_dataset(cfg, root)
    assert not rep.ok and len(rep.errors) == 1 and "oasisgan[lvis]" in rep.errors[0]


def test_train_one_iteration_on_lvis(lvis_root, tmp_path):
    from oasisgan.cli import main

    root, _ = lvis_root
    out = tmp_path / "run"
    rc = main(["train", "--preset", "lvis", "--data-root", str(root), "--out", str(out), "--iters", "1",
               "--batch-size", "2", "--crop-size", "64", "--channels-g", "8", "--num-workers", "0",
               "--set", "load_size=72", "--set", "channels_D=8", "--set", "num_res_blocks=4",
               "--set", "bn_stats_batches=1", "--set", "annotation_density=0.5", "--no-progress"])
    assert rc == 0 and (out / "checkpoints" / "latest.ckpt").is_file()


def test_evaluate_groups_by_lvis_frequency(lvis_root):
    import torch

    from oasisgan.metrics import Segmentation, evaluate_report
    from oasisgan.nn import Discriminator, Generator

    root, _ = lvis_root
    cfg = config_for_root("lvis", root, crop_size=64, load_size=64, num_res_blocks=4, channels_G=4,
                          spade_hidden=8, channels_D=4)
    torch.manual_seed(0)
    g, d = Generator.from_config(cfg), Discriminator.from_config(cfg)
    r = evaluate_report(g, cfg, root, ["miou"], segmentation=Segmentation("discriminator", discriminator=d),
                        progress=False)
    info = r.info["iou_by_frequency"]
    assert info["source"].startswith("dataset")
    assert info["groups"]["rare"]["num_classes"] == 2 and info["groups"]["common"]["num_classes"] == 1
    assert info["groups"]["frequent"]["num_classes"] == 3
