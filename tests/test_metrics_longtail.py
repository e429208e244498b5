"""Long-tail evaluation: frequency groups (dataset metadata or training counts) and IoU per group."""
import math

import numpy as np
import pytest
import torch

from oasisgan.metrics.longtail import count_groups, frequency_groups, iou_by_group


def test_count_groups_thirds_rarest_first_dontcare_excluded():
    counts = np.array([10**6, 5, 500, 50, 0, 5000, 7])  # id 0 don't care
    g = count_groups(counts, dontcare=0)
    assert g[0] is None
    assert [g[i] for i in (4, 1)] == ["rare", "rare"]  # 0 and 5 pixels
    assert [g[i] for i in (6, 3)] == ["common", "common"]
    assert [g[i] for i in (2, 5)] == ["frequent", "frequent"]


def test_iou_by_group_means_scored_classes_by_name_or_id():
    groups = [None, "rare", "rare", "frequent"]
    names = ["dc", "a", "b", "c"]
    out = iou_by_group({"a": 0.2, "c": 0.9}, groups, names)
    assert out["rare"]["miou"] == pytest.approx(0.2) and out["rare"]["num_classes"] == 2
    assert out["frequent"]["miou"] == pytest.approx(0.9) and "common" not in out
    by_id = iou_by_group({"1": 0.4, "2": 0.6}, groups, names)  # a segmenter without class names
    assert by_id["rare"]["miou"] == pytest.approx(0.5) and math.isnan(by_id["frequent"]["miou"])


def test_frequency_groups_from_training_pixels_and_classes_file(toy_root, tmp_path):
    from oasisgan.data import config_for_root
    from oasisgan.data.check import check_dataset

    cfg = config_for_root("toy", toy_root)
    groups, src = frequency_groups(cfg, toy_root, "auto")  # the toy has no groups: pixel thirds
    assert "pixels" in src["source"] and groups[cfg.dontcare_label] is None
    pixels = np.asarray(check_dataset(cfg, toy_root, splits=["train"]).splits["train"].class_pixels)
    rare = [i for i, g in enumerate(groups) if g == "rare"]
    freq = [i for i, g in enumerate(groups) if g == "frequent"]
    assert pixels[rare].max() <= pixels[freq].min()
    img_groups, src = frequency_groups(cfg, toy_root, "images")
    assert "images" in src["source"]
    assert frequency_groups(cfg, toy_root, "none") == (None, {})
    with pytest.raises(ValueError):
        frequency_groups(cfg, toy_root, "bogus")


def test_evaluate_reports_iou_by_frequency(toy_root):
    from oasisgan.data import config_for_root
    from oasisgan.metrics import DataSelection, Segmentation, evaluate_report
    from oasisgan.nn import Discriminator, Generator

    cfg = config_for_root("toy", toy_root, channels_G=4, spade_hidden=8, channels_D=4)
    torch.manual_seed(0)
    g, d = Generator.from_config(cfg), Discriminator.from_config(cfg)
    r = evaluate_report(g, cfg, toy_root, ["miou"], segmentation=Segmentation("discriminator", discriminator=d),
                        data=DataSelection(max_images=4), progress=False)
    info = r.info["iou_by_frequency"]
    assert set(info["groups"]) == {"rare", "common", "frequent"}
    for grp, v in info["groups"].items():
        if v["scored"]:
            assert r.metrics[f"miou_{grp}"] == pytest.approx(np.mean(list(v["scored"].values())))
    r2 = evaluate_report(g, cfg, toy_root, ["miou"], data=DataSelection(max_images=4), progress=False,
                         segmentation=Segmentation("discriminator", discriminator=d, frequency_groups="none"))
    assert "iou_by_frequency" not in r2.info and not any(k.startswith("miou_r") for k in r2.metrics)
