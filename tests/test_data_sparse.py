"""Sparse annotations (annotation_density / annotation_unit) and how the losses and evaluation treat
label maps that are mostly don't care."""
import numpy as np
import pytest
import torch

from oasisgan.config import ConfigError
from oasisgan.data import build_dataset, config_for_root
from oasisgan.data.sparse import regions, sparse_rng, thin_labels
from oasisgan.errors import DataError
from oasisgan.losses import class_balance_weights, labelmix_mask, n1_loss


def _blocks(seed=0, size=32):
    rng = np.random.default_rng(seed)
    return np.kron(rng.integers(0, 5, (8, 8)), np.ones((size // 8, size // 8), np.int64))


def test_regions_are_kept_or_dropped_whole_and_density_holds_on_average():
    kept_regions = total_regions = 0
    for k in range(200):
        ids = _blocks(k)
        region, n = regions(ids, dontcare=0)
        out = thin_labels(ids, 0.25, "regions", 0, sparse_rng(0, f"img{k}"))
        for r in range(1, n + 1):
            vals = out[region == r]
            assert (vals == 0).all() or (vals == ids[region == r]).all()  # whole regions only
            kept_regions += int(vals[0] != 0)
        total_regions += n
        assert (out[ids == 0] == 0).all()  # don't care stays don't care
    assert kept_regions / total_regions == pytest.approx(0.25, abs=0.03)


def test_pixels_unit_and_determinism_per_name():
    ids = _blocks(1, 64)
    a = thin_labels(ids, 0.1, "pixels", 0, sparse_rng(3, "x.png"))
    b = thin_labels(ids, 0.1, "pixels", 0, sparse_rng(3, "x.png"))
    c = thin_labels(ids, 0.1, "pixels", 0, sparse_rng(3, "y.png"))
    assert (a == b).all() and (a != c).any()
    labelled = ids != 0
    assert (a[labelled] != 0).mean() == pytest.approx(0.1, abs=0.03)
    assert thin_labels(ids, 1.0, "regions", 0, sparse_rng(0, "x")) is ids


def test_bad_settings_are_refused():
    with pytest.raises(DataError, match="don't-care"):
        thin_labels(_blocks(), 0.5, "regions", None, sparse_rng(0, "x"))
    with pytest.raises(DataError, match="annotation_unit"):
        thin_labels(_blocks(), 0.5, "blobs", 0, sparse_rng(0, "x"))


def test_config_validates_density_and_unit(toy_root):
    for bad in (dict(annotation_density=0.0), dict(annotation_density=1.5), dict(annotation_unit="blobs"),
                dict(annotation_density=0.5, dontcare_label=None), dict(class_weight_cap=0.0)):
        with pytest.raises(ConfigError):
            config_for_root("toy", toy_root, **bad)


def test_dataset_thins_train_only_fixed_across_epochs(toy_root):
    dense_cfg = config_for_root("toy", toy_root)
    cfg = config_for_root("toy", toy_root, annotation_density=0.25)
    dc = cfg.dontcare_label
    train, dense = build_dataset(cfg, toy_root, "train"), build_dataset(dense_cfg, toy_root, "train")
    frac = np.mean([(train[(i, 0)]["label"] != dc).float().mean().item() for i in range(32)])
    full = np.mean([(dense[(i, 0)]["label"] != dc).float().mean().item() for i in range(32)])
    assert 0.1 < frac / full < 0.45
    for i in range(4):
        a, b = train[(i, 0)], dense[(i, 0)]
        kept = a["label"] != dc
        assert (a["label"][kept] == b["label"][kept]).all()  # same crop, a subset of the labels
    # the same regions survive every epoch (the crop and flip change, the annotation does not)
    unaug = build_dataset(cfg, toy_root, "train", augment=False)
    assert (unaug[(5, 0)]["label"] == unaug[(5, 9)]["label"]).all()
    val_sparse = build_dataset(cfg, toy_root, "val")
    val_dense = build_dataset(dense_cfg, toy_root, "val")
    assert (val_sparse[0]["label"] == val_dense[0]["label"]).all()


def test_class_weights_of_a_few_pixels_and_the_cap():
    label = torch.zeros(2, 16, 16, dtype=torch.long)  # 512 pixels, mostly don't care
    label[0, :4, :] = 1  # 64 px
    label[1, 5, 5] = 2  # 1 px
    w = class_balance_weights(label, 3, dontcare=0)
    # K = 2 present classes: w_c = B*H*W / (K * n_c)
    assert w[0, 0, 0] == pytest.approx(512 / (2 * 64)) and w[1, 5, 5] == pytest.approx(512 / 2)
    assert w[label == 0].abs().sum() == 0
    # every present class carries the same share of the summed weight, however few its pixels
    assert w[label == 1].sum() == pytest.approx(w[label == 2].sum())
    capped = class_balance_weights(label, 3, dontcare=0, cap=10.0)
    assert capped.max() == pytest.approx(10.0) and capped[0, 0, 0] == pytest.approx(4.0)
    assert torch.equal(class_balance_weights(label, 3, 0, cap=None), w)


def test_losses_finite_on_all_dontcare_and_mostly_dontcare_batches():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 16, 16, requires_grad=True)
    empty = torch.zeros(2, 16, 16, dtype=torch.long)
    for impl in ("ref", "fast"):
        loss = n1_loss(logits, empty, True, True, 0, impl)
        assert loss.item() == 0.0
        loss.backward()
        assert torch.isfinite(logits.grad).all()
        logits.grad = None
    sparse = empty.clone()
    sparse[1, 3, 3] = 2
    ref = n1_loss(logits, sparse, True, True, 0, "ref", weight_cap=None)
    fast = n1_loss(logits, sparse, True, True, 0, "fast", weight_cap=None)
    assert torch.isfinite(ref) and ref.item() == pytest.approx(fast.item(), rel=1e-5)
    capped = n1_loss(logits, sparse, True, True, 0, "ref", weight_cap=1.0)
    assert capped.item() == pytest.approx(ref.item() / 512, rel=1e-5)  # 1 px: weight 512 -> 1
    mask = labelmix_mask(sparse)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}


def test_evaluation_ignores_unlabelled_pixels():
    from oasisgan.metrics.miou import SegmentationScore
    from oasisgan.metrics.segmenters.common import identity_label_map

    lmap = identity_label_map(4, dontcare=0)
    target = torch.tensor([[[1, 2, 0, 0]]])
    s1, s2 = SegmentationScore(4), SegmentationScore(4)
    s1.update(torch.tensor([[[1, 2, 3, 3]]]), lmap[target])
    s2.update(torch.tensor([[[1, 2, 1, 2]]]), lmap[target])
    assert torch.equal(s1.cm, s2.cm) and s1.miou == 1.0


def test_training_runs_at_low_density(toy_root, tmp_path):
    from oasisgan.cli import main

    out = tmp_path / "run"
    rc = main(["train", "--preset", "toy", "--data-root", str(toy_root), "--out", str(out), "--iters", "2",
               "--batch-size", "2", "--channels-g", "8", "--num-workers", "0", "--set", "channels_D=8",
               "--set", "annotation_density=0.1", "--set", "class_weight_cap=50", "--set", "bn_stats_batches=1",
               "--no-progress"])
    assert rc == 0
    import yaml

    c = yaml.safe_load((out / "config.yaml").read_text())
    flat = {k: v for part in c.values() if isinstance(part, dict) for k, v in part.items()} if "data" in c else c
    assert flat["annotation_density"] == 0.1 and flat["class_weight_cap"] == 50


def test_evaluate_cli_on_maps_as_sparse_as_training(toy_root, tmp_path):
    import json

    from oasisgan.loading.checkpoint import save_checkpoint
    from oasisgan.cli import main
    from oasisgan.nn import Discriminator, Generator

    cfg = config_for_root("toy", toy_root, channels_G=4, spade_hidden=8, channels_D=4)
    torch.manual_seed(0)
    g, d = Generator.from_config(cfg), Discriminator.from_config(cfg)
    ckpt = tmp_path / "tiny.ckpt"
    save_checkpoint(ckpt, config=cfg, ema=g, generator=g, discriminator=d)
    seen = []
    import oasisgan.metrics as metrics

    real = metrics.evaluate_report

    def spy(*a, **k):
        seen.append(k["data"].dataset)
        return real(*a, **k)

    import pytest as _pytest

    with _pytest.MonkeyPatch.context() as mp:
        mp.setattr("oasisgan.metrics.evaluate_report", spy)
        out = tmp_path / "e.json"
        rc = main(["evaluate", "--checkpoint", str(ckpt), "--data-root", str(toy_root), "--metrics", "miou",
                   "--segmenter", "discriminator", "--max-images", "4", "--annotation-density", "0.25",
                   "--no-progress", "--num-workers", "0", "--out", str(out)])
    assert rc == 0 and json.loads(out.read_text())["annotation_density"] == 0.25
    ds = seen[0]
    assert ds.split == "val" and ds.sparse
    dense = build_dataset(cfg, toy_root, "val")
    frac = np.mean([(ds[i]["label"] != cfg.dontcare_label).float().mean().item() for i in range(8)])
    full = np.mean([(dense[i]["label"] != cfg.dontcare_label).float().mean().item() for i in range(8)])
    assert frac < 0.6 * full
