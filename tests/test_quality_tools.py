"""The tools behind the quality figures: toy looks of one layout, the spread metric against the
real looks, and the initialisation gain of the spectral-normed weights."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from oasisgan.loading.checkpoint import save_checkpoint
from oasisgan.cli import main
from oasisgan.config import ConfigError, preset
from oasisgan.data import config_for_root
from oasisgan.data.toy import APPEARANCES_DIR, appearance_paths, generate_toy, toy_sample
from oasisgan.metrics import DiversitySampling, evaluate_report
from oasisgan.metrics.evaluate import pixel_spread
from oasisgan.nn import Discriminator, Generator


def test_appearances_share_the_layout_and_differ_in_look():
    img0, lab0 = toy_sample(0, "val", 3)
    looks = [toy_sample(0, "val", 3, appearance=k) for k in range(1, 6)]
    assert np.array_equal(toy_sample(0, "val", 3, appearance=0)[0], img0)  # look 0 is the image
    for img, lab in looks:
        assert np.array_equal(lab, lab0)
        assert np.abs(img.astype(int) - img0.astype(int)).mean() > 3
    again, _ = toy_sample(0, "val", 3, appearance=2)
    assert np.array_equal(again, looks[1][0])


def test_generate_with_appearances_and_cli(tmp_path):
    root = generate_toy(tmp_path / "t", size=32, n_train=4, n_val=3, appearances=3, workers=1)
    looks = appearance_paths(root)
    assert sorted(looks) == ["00000.png", "00001.png", "00002.png"]
    assert [p.name for p in looks["00001.png"]] == ["00001_1.png", "00001_2.png"]
    assert np.array_equal(np.asarray(Image.open(looks["00002.png"][1])), toy_sample(0, "val", 2, 32, 2)[0])
    assert json.loads((root / "toy.json").read_text())["appearances"] == 3
    # regenerating without looks removes them; the custom loader never sees them
    generate_toy(root, size=32, n_train=4, n_val=3, workers=1)
    assert appearance_paths(root) == {} and not list((root / APPEARANCES_DIR).glob("*.png"))
    assert main(["data", "toy", "--out", str(tmp_path / "c"), "--size", "32", "--train", "2", "--val", "2",
                 "--appearances", "2"]) == 0
    assert len(appearance_paths(tmp_path / "c")) == 2
    with pytest.raises(SystemExit) as e:  # argparse's one-line error, before anything runs
        main(["data", "toy", "--out", str(tmp_path / "d"), "--appearances", "0"])
    assert e.value.code == 2


def test_pixel_spread():
    x = torch.zeros(4, 3, 8, 8)
    assert pixel_spread(x) == 0.0
    x[0], x[1] = 1.0, -1.0   # per pixel: values 1, -1, 0, 0 -> unbiased std sqrt(2/3)
    assert pixel_spread(x) == pytest.approx(127.5 * (2 / 3) ** 0.5, rel=1e-6)


def test_evaluate_spread_against_real_looks(tmp_path):
    root = generate_toy(tmp_path / "t", size=32, n_train=8, n_val=4, appearances=4, workers=1)
    cfg = config_for_root("toy", root, crop_size=32, load_size=32, channels_G=4, spade_hidden=8, channels_D=4)
    torch.manual_seed(0)
    g = Generator.from_config(cfg)
    rep = evaluate_report(g, cfg, root, "spread,msssim", diversity=DiversitySampling(3, 4), progress=False)
    m = rep.metrics
    assert m["spread"] > 0 and m["spread_real"] > 5
    assert m["spread_ratio"] == pytest.approx(m["spread"] / m["spread_real"])
    assert 0 <= m["msssim_real"] <= 1 and rep.info["real_looks"] == {"label_maps": 4, "looks_per_map": 4}
    # without looks on disk: the generated figure only
    plain = generate_toy(tmp_path / "p", size=32, n_train=8, n_val=4, workers=1)
    m2 = evaluate_report(g, cfg, plain, "spread", diversity=DiversitySampling(3, 4), progress=False).metrics
    assert set(m2) == {"spread"}
    # the CLI's default metrics on toy data include it
    ckpt = tmp_path / "g.ckpt"
    save_checkpoint(ckpt, config=cfg, ema=g, generator=g)
    out = tmp_path / "e.json"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data-root", str(root), "--metrics", "spread",
                 "--samples", "2", "--diversity-maps", "2", "--out", str(out), "--no-progress"]) == 0
    assert set(json.loads(out.read_text())["metrics"]) == {"spread", "spread_real", "spread_ratio"}


def _sn_std(net):
    return torch.cat([m.weight_orig.detach().flatten() for m in net.modules() if hasattr(m, "weight_orig")]).std()


def test_sn_init_gain_only_scales_the_spectral_normed_weights():
    cfg = preset("cityscapes", semantic_nc=5, channels_G=4, spade_hidden=8, channels_D=4, crop_size=64,
                 load_size=64)
    torch.manual_seed(0)
    g0, d0 = Generator.from_config(cfg), Discriminator.from_config(cfg)
    torch.manual_seed(0)
    big = cfg.replace(sn_init_gain=1.0)
    g1, d1 = Generator.from_config(big), Discriminator.from_config(big)
    for a, b in ((g0, g1), (d0, d1)):
        assert float(_sn_std(b) / _sn_std(a)) == pytest.approx(50.0, rel=0.1)  # xavier std is linear in gain
        for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
            if not name.endswith("weight_orig"):
                assert torch.equal(pa, pb), name  # SPADE, fc, conv_img, D's last conv: official 0.02
    # spectral norm divides the scale out: the same function at initialisation (same directions)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(d0.eval()(x), d1.eval()(x), rtol=1e-4, atol=1e-6)
    assert preset("ade20k").sn_init_gain is None
    with pytest.raises(ConfigError, match="sn_init_gain"):
        cfg.replace(sn_init_gain=0.0)


def _quality_curve():
    """scripts/quality_curve.py as a module (scripts/ is not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "quality_curve.py"
    spec = importlib.util.spec_from_file_location("quality_curve", path)
    qc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(qc)
    return qc


def test_quality_curve_seed_bands(tmp_path):
    """scripts/quality_curve.py --bands: runs GROUP_s<seed> -> mean and min-max over the seeds, drawn
    as a translucent band under the mean line."""
    qc = _quality_curve()
    curves = {"fp32_s1": [{"iteration": 300, "miou_ratio": 0.2, "hours": 0.1},
                          {"iteration": 600, "miou_ratio": 0.5, "hours": 0.2}],
              "fp32_s2": [{"iteration": 300, "miou_ratio": 0.4, "hours": 0.3},
                          {"iteration": 600, "miou_ratio": 0.7, "hours": 0.4}, {"iteration": 900, "miou_ratio": 0.9}],
              "bf16-seed3": [{"iteration": 300, "miou_ratio": 0.3}], "other": []}
    groups = qc.seed_bands(curves)
    assert list(groups) == ["fp32", "bf16", "other"] and groups["other"] == []
    first = groups["fp32"][0]
    assert [r["iteration"] for r in groups["fp32"]] == [300, 600]  # 900: one seed only
    assert first["seeds"] == 2 and first["miou_ratio"] == pytest.approx(0.3)
    assert (first["miou_ratio_min"], first["miou_ratio_max"]) == (0.2, 0.4)
    assert first["miou_ratio_std"] == pytest.approx(0.1414, abs=1e-4) and first["hours"] == pytest.approx(0.2)
    assert groups["bf16"][0]["miou_ratio_std"] == 0.0
    out = tmp_path / "curve.png"
    qc.plot({"fp32": groups["fp32"]}, out, [("miou_ratio", "mIoU")], {}, along="iteration")
    img = np.asarray(Image.open(out).convert("RGB")).astype(int)
    blue = np.array(qc.COLOURS[0])
    tinted = (np.abs(img - (255 + (blue - 255) * 50 / 255)).max(-1) <= 2).sum()
    assert tinted > 500  # the band's translucent blue, between the min and max curves


def test_official_parity_summary(tmp_path, monkeypatch):
    """benchmarks/official_parity.py: per-seed figures and range overlap of two groups, and the
    speed of a run's first / last windows (the stretch next to the other side's run)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import official_parity

    runs = {}
    for name, vals in (("official_s1", (0.3, 0.6)), ("official_s2", (0.4, 0.6)),
                       ("oasisgan_s1", (0.35, 0.4)), ("oasisgan_s2", (0.45, 0.5))):
        d = tmp_path / name
        d.mkdir()
        speeds = [1.0, 2.0, 3.0, 4.0] if name.startswith("official") else [5.0, 5.0, 5.0, 5.0]
        d.joinpath("log.jsonl").write_text("".join(
            json.dumps({"iter": 10 * (i + 1), "speed/it_per_s": s, "loss/G": 1.0, "loss/D": 2.0}) + "\n"
            for i, s in enumerate(speeds)))
        runs[name] = [{"iteration": it, "miou_ratio": v, "spread_ratio": 0.3, "fsd": 4.0}
                      for it, v in zip((300, 600), vals)]
    curve = tmp_path / "curve.json"
    curve.write_text(json.dumps({"runs": runs, "run_dirs": {n: str(tmp_path / n) for n in runs}}))
    monkeypatch.setattr(sys, "argv", ["official_parity.py", "--curve", str(curve), "--loss-window", "0", "40",
                                      "--timing", f"official={tmp_path / 'official_s1'}@last2",
                                      "--timing", f"oasisgan={tmp_path / 'oasisgan_s1'}"])
    assert official_parity.main() == 0
    summary = json.loads((tmp_path / "curve_summary.json").read_text())
    at300, at600 = summary["comparison"]
    assert at300["miou_ratio_ranges_overlap"] and not at600["miou_ratio_ranges_overlap"]
    assert at600["miou_ratio_official_minus_oasisgan"] == pytest.approx(0.15)
    assert summary["groups"]["official"]["at_iterations"][1]["miou_ratio"]["per_seed"] == \
        {"official_s1": 0.6, "official_s2": 0.6}
    assert summary["speed"]["official"]["it_per_s_median"] == pytest.approx(3.5)  # windows 3 and 4
    assert summary["speed"]["oasisgan_over_official"] == pytest.approx(5 / 3.5)


def test_quality_curve_bn_batches_recollects_the_saved_statistics(tmp_path):
    """scripts/quality_curve.py --bn-batches N: the checkpoint's EMA BatchNorm statistics are
    collected again over N+1 training batches, the same ones for the same iteration."""
    from oasisgan import load

    qc = _quality_curve()
    root = generate_toy(tmp_path / "t", size=32, n_train=12, n_val=2, workers=1)
    cfg = config_for_root("toy", root, crop_size=32, load_size=32, channels_G=4, spade_hidden=8,
                          channels_D=4, batch_size=2)
    torch.manual_seed(0)
    g = Generator.from_config(cfg).eval()
    ckpt = tmp_path / "g.ckpt"
    save_checkpoint(ckpt, config=cfg, ema=g, generator=g)

    def stats(model):
        return torch.cat([b.flatten() for n, b in model.generator.named_buffers() if "running" in n])

    saved = stats(load(ckpt))
    runs = []
    for _ in range(2):
        model = load(ckpt)
        qc.refresh_bn_stats(model, root, 3, 600)
        assert not model.generator.training
        runs.append(stats(model))
    assert not torch.allclose(runs[0], saved) and torch.equal(runs[0], runs[1])
    model = load(ckpt)
    qc.refresh_bn_stats(model, root, 3, 900)
    assert not torch.equal(stats(model), runs[0])  # another iteration: other batches
    with pytest.raises(SystemExit, match="6 training batches"):
        qc.refresh_bn_stats(load(ckpt), root, 10, 600)


def test_official_parity_against_a_reference_group(tmp_path, monkeypatch):
    """--reference GROUP compares every other group with it, --iteration-scale matches a larger
    batch at equal images; the exact permutation p of 3 seeds against 3 is 0.1 at best."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import official_parity

    assert official_parity.permutation_p([3.0, 4.0, 5.0], [0.0, 1.0, 2.0]) == pytest.approx(0.1)
    assert official_parity.permutation_p([1.0, 2.0], [1.0, 2.0]) == 1.0
    runs, dirs = {}, {}
    for name, its, vals in (("base_s1", (300, 600), (0.3, 0.5)), ("base_s2", (300, 600), (0.32, 0.52)),
                            ("base_s3", (300, 600), (0.34, 0.54)), ("lr_s1", (300, 600), (0.1, 0.2)),
                            ("lr_s2", (300, 600), (0.11, 0.21)), ("lr_s3", (300, 600), (0.12, 0.22)),
                            ("batch_s1", (75,), (0.6,)), ("batch_s2", (75,), (0.5,)), ("batch_s3", (75,), (0.4,))):
        d = tmp_path / name
        d.mkdir()
        d.joinpath("log.jsonl").write_text(json.dumps({"iter": 10, "loss/G": 1.0, "loss/D": 2.0}) + "\n")
        runs[name] = [{"iteration": it, "miou_ratio": v, "spread_ratio": 0.3, "fsd": 4.0} for it, v in zip(its, vals)]
        dirs[name] = str(d)
    curve = tmp_path / "c.json"
    curve.write_text(json.dumps({"runs": runs, "run_dirs": dirs}))
    monkeypatch.setattr(sys, "argv", ["official_parity.py", "--curve", str(curve), "--reference", "base",
                                      "--iteration-scale", "batch=8", "--loss-window", "0", "40"])
    assert official_parity.main() == 0
    comp = json.loads((tmp_path / "c_summary.json").read_text())["comparisons"]
    assert set(comp) == {"lr_vs_base", "batch_vs_base"}
    lr600 = comp["lr_vs_base"][1]
    assert lr600["miou_ratio_lr_minus_base"] == pytest.approx(-0.31)
    assert lr600["miou_ratio_permutation_p"] == pytest.approx(0.1) and not lr600["miou_ratio_ranges_overlap"]
    assert lr600["miou_ratio_welch_t"] < -10
    (b,) = comp["batch_vs_base"]
    assert (b["iteration"], b["iteration_of_base"]) == (75, 600)
    assert b["miou_ratio_batch_minus_base"] == pytest.approx(-0.02) and b["miou_ratio_ranges_overlap"]
    assert b["fsd_welch_t"] is None  # no spread on either side
    monkeypatch.setattr(sys, "argv", ["official_parity.py", "--curve", str(curve), "--reference", "nope"])
    with pytest.raises(SystemExit, match="no group 'nope'"):
        official_parity.main()


def test_quality_curve_iteration_scale():
    """--iteration-scale RUN=K draws a run of K times the batch at equal images seen, relabelled."""
    qc = _quality_curve()
    curves = {"base": [{"iteration": 600, "miou_ratio": 0.5}], "batch": [{"iteration": 75, "miou_ratio": 0.1}]}
    out = qc.scaled(curves, {"batch": "8"})
    assert out == {"base": curves["base"], "batch (x8)": [{"iteration": 600.0, "miou_ratio": 0.1}]}
    assert curves["batch"][0]["iteration"] == 75  # the JSON's rows are not changed
