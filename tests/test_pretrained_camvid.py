"""The CamVid model shipped in the package (`oasisgan/zoo/camvid`): it loads by name with no
download, draws street scenes that its reference segmenter recognises far better than an untrained
generator's, and works in the CLI, the painter and the photo editing."""
from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

import oasisgan
from oasisgan.data.classes import CAMVID_CLASSES, CAMVID_PALETTE
from oasisgan.data.street import street_label
from oasisgan.loading.pretrained import ZOO, list_models, resolve

FOLDER = ZOO / "camvid"


@pytest.fixture(scope="module")
def model():
    return oasisgan.from_pretrained("camvid")


@pytest.fixture(scope="module")
def segmenter():
    from oasisgan.metrics.segmenters import load_segmenter

    return load_segmenter(str(FOLDER / "reference_segmenter.pt"), oasisgan.load(FOLDER).config)


def test_shipped_folder_is_small_and_complete():
    files = {p.name: p.stat().st_size for p in FOLDER.iterdir()}
    assert {"config.json", "model.safetensors", "README.md", "reference_segmenter.pt"} <= set(files)
    assert sum(files.values()) < 30 * 2**20
    card = (FOLDER / "README.md").read_text()
    assert "CC BY-NC 4.0" in card and "non-commercial" in card and "MIT" in card
    assert "--preset camvid" in card and "iterations" in card


def test_loads_by_name_with_its_classes(model):
    assert resolve("camvid") == FOLDER
    cfg = model.config
    assert cfg.preset == "camvid" and cfg.class_names == CAMVID_CLASSES and cfg.palette == CAMVID_PALETTE
    assert (cfg.height, cfg.width) == (96, 128) and cfg.dontcare_label == 11
    assert not model.generator.training
    assert next(model.generator.parameters()).dtype == torch.float32  # stored as float16, used as float32
    row = [r for r in list_models() if r["name"] == "camvid"][0]
    assert row["kind"] == "path" and row["cached"]


def _miou(segmenter, images, labels) -> float:
    from oasisgan.metrics.miou import SegmentationScore

    classes = torch.nonzero(segmenter.valid_classes).flatten().tolist()
    score = SegmentationScore(segmenter.num_classes, classes, segmenter.class_names)
    with torch.no_grad():
        score.update(segmenter.predict(images), segmenter.map_labels(labels))
    return score.miou


def _untrained(model, seed: int):
    from oasisgan.nn import Generator
    from oasisgan.labels import one_hot
    from oasisgan.training.ema import recollect_bn_stats

    torch.manual_seed(seed)
    gen = Generator.from_config(model.config)
    labels = torch.stack([torch.as_tensor(street_label(CAMVID_CLASSES, 96, 128, 100 + k)) for k in range(8)])
    recollect_bn_stats(gen, [one_hot(labels[k:k + 4], 12) for k in (0, 4)], 1)
    return gen.eval()


def test_reference_segmenter_recognises_its_street_scenes(model, segmenter):
    """Street layouts drawn from class names (no dataset needed): the shipped generator's images
    against untrained generators' of the same architecture, under the shipped segmenter."""
    labels = torch.stack([torch.as_tensor(street_label(CAMVID_CLASSES, 96, 128, k)) for k in range(8)])
    z = model.sample_noise(8, seed=0)
    trained = _miou(segmenter, model.synthesize(labels, z=z), labels)
    untrained = []
    for seed in (0, 1, 2):
        gen = _untrained(model, seed)
        with torch.no_grad():
            from oasisgan.labels import one_hot

            untrained.append(_miou(segmenter, gen(one_hot(labels, 12), z), labels))
    print(f"street layouts: trained mIoU {trained:.3f}, untrained {untrained}")
    assert trained > max(untrained) + 0.15, (trained, untrained)


def test_val_label_maps_give_recognisable_photos(model, segmenter, shared_dir):
    from oasisgan.data import build_dataset

    val = build_dataset(model.config, shared_dir / "datasets" / "camvid", "val", augment=False)
    items = [val[i] for i in range(0, len(val), 10)]
    labels = torch.stack([it["label"] for it in items])
    images = model.synthesize(labels, seed=0)
    assert images.shape == (len(items), 3, 96, 128) and torch.isfinite(images).all()
    real = _miou(segmenter, torch.stack([it["image"] for it in items]), labels)
    fake = _miou(segmenter, images, labels)
    print(f"val label maps: generated mIoU {fake:.3f}, real {real:.3f}")
    assert fake > 0.4 * real, (fake, real)


def test_cli_synthesizes_street_scenes_with_no_files(tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "oasisgan.cli", "synthesize", "--checkpoint", "camvid", "--examples", "2",
                        "--out", str(out), "--samples", "2"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (out / "examples").iterdir()) == ["example_00.png", "example_01.png"]
    assert (out / "example_00_s001.png").is_file() and (out / "example_01_grid.png").is_file()


def test_painter_offers_a_street(model):
    from oasisgan.app import Painter

    painter = Painter(model)
    lab = painter.example(0)
    assert lab.shape == (96, 128)
    assert {0, 1, 3} <= set(np.unique(lab).tolist())  # sky, building, road


def test_inversion_of_a_real_street_photo(model, shared_dir):
    from oasisgan.data import build_dataset
    from oasisgan.editing import random_psnr

    val = build_dataset(model.config, shared_dir / "datasets" / "camvid", "val", augment=False)
    item = val[50]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inv = model.invert(item["image"], item["label"], steps=30, seed=0, progress=False, lpips=False)
    base = random_psnr(model, item["image"], item["label"], seed=0)
    print(f"CamVid val photo: inversion PSNR {inv.psnr:.2f} dB vs random noise {base:.2f} dB")
    assert inv.psnr > base + 1.0
    edited_label = item["label"].clone()
    edited_label[60:, 40:90] = 3  # paint road over the lower middle
    edit = model.edit(inv, edited_label, paste_back=True)
    assert torch.isfinite(edit.image).all()
