"""The model learns, measured as the project measures quality: a short seeded run of the toy preset
makes images that a reference segmenter (trained on the real images) recognises far better than an
untrained generator's, and different noises give different images."""
from __future__ import annotations

import os

import pytest
import torch

import oasisgan
from oasisgan.data import config_for_root
from oasisgan.metrics import DataSelection, DiversitySampling, Segmentation, evaluate_report
from oasisgan.metrics.segmenters.train import train_reference_segmenter
from oasisgan.nn import Generator
from oasisgan.training import train

SIZE = dict(crop_size=32, load_size=32)


@pytest.fixture(scope="module")
def segmenter(toy_root, tmp_path_factory):
    cfg = config_for_root("toy", toy_root, **SIZE)
    out = tmp_path_factory.mktemp("seg") / "seg.pt"
    res = train_reference_segmenter(cfg, toy_root, out, iters=300, batch_size=16, width=16, depth=2,
                                    device="cpu", progress=False)
    assert res["miou"] > 0.6  # measured 0.77 on the 16 real val images
    return out


def _quality(gen, cfg, toy_root, segmenter):
    m = evaluate_report(gen, cfg, toy_root, ("miou", "spread"), segmentation=Segmentation(str(segmenter)),
                        diversity=DiversitySampling(samples=4, label_maps=16), data=DataSelection(use_cache=False),
                        progress=False).metrics
    return m["miou"], m["spread"]


@pytest.mark.slow
def test_short_run_beats_an_untrained_generator_under_the_reference_segmenter(toy_root, segmenter, tmp_path):
    cfg = config_for_root("toy", toy_root, iters=400, num_workers=0, freq_print=400, freq_save_latest=400,
                          log_every=100, bn_stats_batches=8, seed=int(os.environ.get("OASIS_TEST_SEED", 42)),
                          **SIZE)
    torch.manual_seed(cfg.seed)
    untrained = Generator.from_config(cfg)
    with torch.no_grad():  # batch statistics of real label maps for the untrained BatchNorm
        from oasisgan.data import build_dataset
        from oasisgan.labels import one_hot

        val = build_dataset(cfg, toy_root, "val")
        untrained.train()(one_hot(torch.stack([val[i]["label"] for i in range(8)]), cfg.semantic_nc))
    before, _ = _quality(untrained.eval(), cfg, toy_root, segmenter)
    res = train(cfg, toy_root, tmp_path / "run", progress=False, tensorboard=False)
    assert res.status == "finished"
    model = oasisgan.load(tmp_path / "run/checkpoints/latest.ckpt")
    after, spread = _quality(model, cfg, toy_root, segmenter)
    print(f"reference-segmenter mIoU: untrained {before:.3f} -> trained {after:.3f}; spread {spread:.1f}")
    # Measured (toy preset, 32x32, 400 iterations, seeds 42 and 0): untrained 0.086 (grey images,
    # one predicted class), trained 0.61 and 0.45; spread between noises 7.5 and 9.1 (0-255). The
    # margins leave room for another seed or float rounding (another trajectory of the same GAN).
    assert after > before + 0.25, f"mIoU {before:.3f} -> {after:.3f}"
    assert spread > 3.0, f"two noises give almost the same image (spread {spread:.2f})"
