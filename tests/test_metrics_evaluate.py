"""evaluate() and the `oasis evaluate` / `oasis segmenter` commands on the toy dataset (tiny networks)."""
import json
import math
import urllib.request

import pytest
import torch

from oasisgan.loading.checkpoint import save_checkpoint
from oasisgan.cli import main
from oasisgan.metrics import (REFERENCE_SEGMENTER_FILENAME, DataSelection, DiversitySampling, InceptionOptions,
                              Segmentation, check_metrics, evaluate, evaluate_report,
                              lower_is_better, parse_metrics)
from oasisgan.nn import Discriminator, Generator

TINY = dict(channels_G=4, spade_hidden=8, channels_D=4)


@pytest.fixture(scope="module")
def toy(toy_root, tmp_path_factory):
    from oasisgan.data import config_for_root

    cfg = config_for_root("toy", toy_root, **TINY)
    torch.manual_seed(0)
    g, d = Generator.from_config(cfg), Discriminator.from_config(cfg)
    ckpt = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    save_checkpoint(ckpt, config=cfg, ema=g, generator=g, discriminator=d)
    return cfg, g, d, ckpt


@pytest.fixture(scope="module")
def reference_segmenter(toy, toy_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("seg") / "seg.pt"
    rc = main(["segmenter", "train", "--preset", "toy", "--data-root", str(toy_root), "--out", str(out),
               "--iters", "8", "--batch-size", "4", "--width", "4", "--no-progress", "--device", "cpu"])
    assert rc == 0 and out.is_file()
    return out


def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("OASISGAN_CACHE", str(tmp_path / "empty_cache"))

    def refuse(*a, **k):
        raise OSError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_parse_metrics_and_directions():
    assert parse_metrics("fid, MIoU,ms-ssim,fid") == ("fid", "miou", "msssim")
    with pytest.raises(Exception, match="unknown metric"):
        parse_metrics("is")
    assert lower_is_better("fid") and lower_is_better("fsd") and not lower_is_better("miou")


def test_segmenter_train_reports_real_miou(reference_segmenter, toy_root, capsys):
    ck = torch.load(reference_segmenter, weights_only=True)
    assert ck["format"] == "oasisgan-segmenter" and 0 <= ck["val_miou"] <= 1 and ck["val_images"] == 16
    rc = main(["segmenter", "score", "--preset", "toy", "--data-root", str(toy_root), "--segmenter",
               str(reference_segmenter), "--json", "--no-progress"])
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and res["miou"] == pytest.approx(ck["val_miou"])


def test_evaluate_api_restores_mode_and_is_seeded(toy, toy_root, reference_segmenter, tmp_path):
    cfg, g, d, _ = toy
    g.train()
    kw = dict(segmentation=Segmentation(str(reference_segmenter)), diversity=DiversitySampling(2, 2),
              data=DataSelection(max_images=8, batch_size=4, cache_dir=tmp_path), progress=False)
    a = evaluate(g, cfg, toy_root, ("fsd", "miou", "msssim"), **kw)
    assert g.training  # mode restored
    b = evaluate(g, cfg, toy_root, ("fsd", "miou", "msssim"), **kw)  # real FSD statistics now cached
    groups = {"miou_rare", "miou_common", "miou_frequent"}  # mIoU by frequency group (metrics.longtail)
    assert set(a) - groups == {"fsd", "miou", "miou_ratio", "accuracy", "msssim"} and set(a) & groups
    assert a == pytest.approx(b)
    assert len(list((tmp_path / "stats").glob("fsd-*-val-64x64-*.npz"))) == 1
    assert all(math.isfinite(v) for v in a.values())
    c = evaluate(g, cfg, toy_root, ("fsd",), seed=1, **kw)
    assert c["fsd"] != pytest.approx(a["fsd"])  # another noise draw


def test_discriminator_as_segmenter(toy, toy_root):
    cfg, g, d, _ = toy
    r = evaluate_report(g, cfg, toy_root, ["miou"], segmentation=Segmentation("discriminator", discriminator=d),
                        data=DataSelection(max_images=4), progress=False)
    assert r.info["segmenter"]["name"] == "oasis-discriminator"
    assert 0 <= r.metrics["miou"] <= 1 and 0 <= r.metrics["accuracy"] <= 1


@pytest.mark.slow
def test_evaluate_fid_with_random_inception(toy, toy_root, tmp_path):
    from oasisgan.metrics.fid import FIDInceptionV3

    cfg, g, _, _ = toy
    inc = FIDInceptionV3().init_random(0)
    r = evaluate_report(g, cfg, toy_root, ["fid"], inception=InceptionOptions(model=inc), progress=False,
                        data=DataSelection(max_images=2, batch_size=2, cache_dir=tmp_path))
    assert math.isfinite(r.metrics["fid"]) and r.metrics["fid"] > 0


def test_cli_toy_run_writes_finite_sensible_json(toy, toy_root, reference_segmenter, shared_dir, tmp_path, capsys):
    from oasisgan.metrics.diversity import backbone_features

    _, _, _, ckpt = toy
    backbone = tmp_path / "alexnet.pth"
    torch.manual_seed(0)
    torch.save({"features." + k: v for k, v in backbone_features("alex").state_dict().items()}, backbone)
    lin = shared_dir / "weights" / "lpips" / "v0.1" / "alex.pth"
    if not lin.is_file():
        pytest.skip("LPIPS linear weights not in shared/")
    out = tmp_path / "eval.json"
    rc = main(["evaluate", "--checkpoint", str(ckpt), "--data-root", str(toy_root), "--metrics",
               "fsd,miou,lpips,msssim", "--segmenter", str(reference_segmenter), "--lpips-backbone", str(backbone),
               "--lpips-weights", str(lin), "--samples", "3", "--diversity-maps", "2", "--max-images", "8",
               "--batch-size", "4", "--out", str(out), "--no-progress", "--cache-dir", str(tmp_path / "c"),
               "--device", "cpu"])
    printed = capsys.readouterr().out
    assert rc == 0 and "Fréchet Segmenter Distance" in printed and "fsd" in printed
    res = json.loads(out.read_text())
    m = res["metrics"]
    groups = {"miou_rare", "miou_common", "miou_frequent"}  # mIoU by frequency group (metrics.longtail)
    assert set(m) - groups == {"fsd", "miou", "miou_ratio", "accuracy", "lpips", "msssim"} and set(m) & groups
    assert set(res["iou_by_frequency"]["groups"]) == {"rare", "common", "frequent"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in m.values())
    assert m["fsd"] >= 0 and 0 <= m["miou"] <= 1 and 0 <= m["accuracy"] <= 1
    assert m["lpips"] >= 0 and 0 <= m["msssim"] <= 1 + 1e-9
    assert res["num_images"] == 8 and res["protocol"]["noise"] == "fresh z per image"
    assert res["segmenter"]["name"] == "reference-unet" and res["skipped"] == {}


def test_cli_default_metrics_skip_missing_weights_offline(toy, toy_root, reference_segmenter, tmp_path, monkeypatch,
                                                          capsys):
    _offline(monkeypatch, tmp_path)
    _, _, _, ckpt = toy
    out = tmp_path / "e.json"
    rc = main(["evaluate", "--checkpoint", str(ckpt), "--data-root", str(toy_root), "--segmenter",
               str(reference_segmenter), "--samples", "2", "--diversity-maps", "1", "--max-images", "4",
               "--out", str(out), "--no-progress", "--no-cache", "--device", "cpu"])
    assert rc == 0
    res = json.loads(out.read_text())
    assert "lpips" in res["skipped"] and "--lpips-backbone" in res["skipped"]["lpips"]
    assert {"fsd", "miou", "msssim"} <= set(res["metrics"])
    # an explicitly requested metric whose weights are missing fails with a clear message
    rc = main(["evaluate", "--checkpoint", str(ckpt), "--data-root", str(toy_root), "--metrics", "fid",
               "--out", str(out), "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "--inception-weights" in err and "pt_inception-2015-12-05-6726825d.pth" in err


def test_check_metrics_and_default_reference_segmenter(toy, reference_segmenter, tmp_path):
    cfg = toy[0]
    root = tmp_path / "data"
    root.mkdir()
    with pytest.raises(Exception, match="oasis segmenter train"):
        check_metrics(["miou"], cfg, root)
    with pytest.raises(Exception, match="fsd needs the reference segmenter"):
        check_metrics(["fsd"], cfg, root)
    (root / REFERENCE_SEGMENTER_FILENAME).write_bytes(reference_segmenter.read_bytes())
    check_metrics(["miou", "fsd", "msssim"], cfg, root)  # found at <data_root>/reference_segmenter.pt


def test_periodicity_metric_compares_fakes_with_the_real_images(toy, toy_root, monkeypatch):
    """The real images' scores are those of the evaluated photos themselves; a generator whose
    images carry a grid-locked period-4 checker scores far above the same generator without it,
    over the whole images and on the tiles of each class."""
    from oasisgan.data import build_dataset
    from oasisgan.metrics import periodicity
    from oasisgan.metrics.periodicity import periodic_scores

    monkeypatch.setattr(periodicity, "MIN_TILES", 2)  # 16 toy images hold few uniform 32x32 tiles

    class Checkered(torch.nn.Module):
        def __init__(self, g, amplitude):
            super().__init__()
            self.g, self.z_dim, self.amplitude = g, g.z_dim, amplitude

        def forward(self, label, z=None):
            x = self.g(label, z)
            yy, xx = torch.meshgrid(torch.arange(x.shape[-2]), torch.arange(x.shape[-1]), indexing="ij")
            return x + self.amplitude * ((((yy // 2) + (xx // 2)) % 2) * 2 - 1).to(x)

    cfg, g, _, _ = toy
    scores, regions = {}, {}
    for amplitude in (0.0, 0.3):
        r = evaluate_report(Checkered(g, amplitude), cfg, toy_root, ["periodicity"],
                            data=DataSelection(max_images=16, batch_size=4), progress=False)
        fake, real = r.info["periodicity_db"]["fake"], r.info["periodicity_db"]["real"]
        assert r.metrics["periodicity"] == max(fake[p] - real[p] for p in (2, 4, 8))
        by_class = r.info["periodicity_by_class"]  # the tiles' figure: the worst class with MIN_TILES or more
        assert by_class and set(by_class) <= set(cfg.class_names) and all(v["tiles"] >= 2 for v in by_class.values())
        assert r.metrics["periodicity_regions"] == max(v["excess_db"] for v in by_class.values())
        scores[amplitude], regions[amplitude] = fake, r.metrics["periodicity_regions"]
    ds = build_dataset(cfg, toy_root, "val")
    assert real == pytest.approx(periodic_scores(torch.stack([ds[i]["image"] for i in range(16)])), abs=1e-6)
    assert lower_is_better("periodicity")
    assert scores[0.3][4] > scores[0.0][4] + 10.0, scores
    assert regions[0.3] > regions[0.0] + 5.0, regions
