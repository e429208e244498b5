"""The FID Inception and LPIPS pipelines end to end with random weights of the right architecture."""
import urllib.request

import pytest
import torch
import torch.nn.functional as F

from oasisgan.metrics.diversity import LPIPS, backbone_features, load_lpips, ms_ssim, pairwise_mean
from oasisgan.metrics.fid import (FID_WEIGHTS_FILENAME, FeatureStats, FIDInceptionV3, inception_features,
                                  load_inception)
from oasisgan.loading.weights import WeightsError

INCEPTION_KEYS = {"Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3), "Conv2d_1a_3x3.bn.running_var": (32,),
                  "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3), "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
                  "Mixed_5d.branch5x5_2.conv.weight": (64, 48, 5, 5), "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
                  "Mixed_6b.branch7x7_1.conv.weight": (128, 768, 1, 1),
                  "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
                  "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
                  "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
                  "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1), "fc.weight": (1008, 2048), "fc.bias": (1008,)}


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    net = FIDInceptionV3().init_random(0)
    p = tmp_path_factory.mktemp("inc") / "random_inception.pth"
    # as the official file: original keys, no num_batches_tracked
    torch.save({k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}, p)
    return p


def test_inception_keys_and_parameter_count():
    net = FIDInceptionV3()
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    for k, s in INCEPTION_KEYS.items():
        assert shapes[k] == s, k
    assert not any(k.startswith("AuxLogits") for k in shapes)  # pytorch-fid builds it with aux_logits=False
    n = sum(p.numel() for p in net.parameters())
    assert n == pytest.approx(23.9e6, rel=0.02)  # torchvision inception_v3 without aux, 1008 logits


@pytest.mark.slow
def test_fid_pipeline_end_to_end(inception_file):
    """Resize to 299 + [0,1] -> [-1,1] as pytorch-fid; a set has FID 0 with itself, > 0 with another."""
    net, sha = load_inception(inception_file, verify=False)
    assert len(sha) == 64 and not net.training
    g = torch.Generator().manual_seed(0)
    real = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1  # generator convention
    other = torch.rand(2, 3, 32, 32, generator=g).pow(3) * 2 - 1
    f_real = inception_features(net, real)
    assert f_real.shape == (2, 2048) and torch.isfinite(f_real).all() and f_real.abs().sum() > 0
    raw = FIDInceptionV3(resize_input=False, normalize_input=False)
    raw.load_state_dict(net.state_dict())
    with torch.no_grad():
        manual = raw.eval()(F.interpolate((real[:1] + 1) / 2, size=(299, 299), mode="bilinear",
                                          align_corners=False) * 2 - 1)
    torch.testing.assert_close(f_real[:1], manual, rtol=1e-4, atol=1e-5)
    s_real = FeatureStats.from_features(f_real)
    s_other = FeatureStats.from_features(inception_features(net, other))
    assert s_real.distance(s_real) == pytest.approx(0.0, abs=1e-6)
    assert s_real.distance(s_other) > 0


def test_inception_checksum_and_wrapper_keys(inception_file, tmp_path):
    with pytest.raises(WeightsError, match="not comparable"):
        load_inception(inception_file)  # random weights are not pytorch-fid's file
    # pytorch-fid's wrapper layout (blocks.i.j.*) loads too
    state = torch.load(inception_file)
    inv = {"Conv2d_1a_3x3.": "blocks.0.0.", "Mixed_7c.": "blocks.3.2."}
    wrapped = {}
    for k, v in state.items():
        for new, old in inv.items():
            if k.startswith(new):
                k = old + k[len(new):]
        wrapped[k] = v
    p = tmp_path / "wrapped.pth"
    torch.save(wrapped, p)
    net, _ = load_inception(p, verify=False)
    torch.testing.assert_close(net.Mixed_7c.branch_pool.conv.weight, state["Mixed_7c.branch_pool.conv.weight"])


def test_offline_without_weights_says_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("OASISGAN_CACHE", str(tmp_path / "cache"))

    def offline(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(WeightsError) as e:
        load_inception(None)
    msg = str(e.value)
    assert "--inception-weights" in msg and str(tmp_path / "cache" / FID_WEIGHTS_FILENAME) in msg
    assert "github.com/mseitzer/pytorch-fid" in msg
    with pytest.raises(WeightsError, match="--lpips-backbone"):
        load_lpips("alex")
    with pytest.raises(WeightsError, match="file not found"):
        load_inception(tmp_path / "missing.pth")


@pytest.fixture(scope="module")
def backbone_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("backbones")
    out = {}
    for net in ("alex", "vgg", "squeeze"):
        torch.manual_seed(0)
        feats = backbone_features(net)
        # a torchvision-layout file: features.* plus a classifier that LPIPS ignores
        state = {"features." + k: v for k, v in feats.state_dict().items()}
        state["classifier.1.weight"] = torch.zeros(10, 4)
        out[net] = d / f"{net}.pth"
        torch.save(state, out[net])
    return out


@pytest.mark.parametrize("net", ["alex", "vgg", "squeeze"])
def test_lpips_with_official_linear_weights(net, backbone_files, shared_dir):
    lin = shared_dir / "weights" / "lpips" / "v0.1" / f"{net}.pth"
    if not lin.is_file():
        pytest.skip(f"{lin} not found")
    model = load_lpips(net, "0.1", backbone=backbone_files[net], linear=lin)
    official = torch.load(lin, map_location="cpu")
    torch.testing.assert_close(model.lin0.model[1].weight, official["lin0.model.1.weight"])
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 48, 48, generator=g) * 2 - 1
    b = torch.rand(2, 3, 48, 48, generator=g) * 2 - 1
    with torch.no_grad():
        d_ab, d_aa, d_ba = model(a, b), model(a, a), model(b, a)
    assert d_ab.shape == (2,) and (d_ab > 0).all() and torch.isfinite(d_ab).all()
    torch.testing.assert_close(d_aa, torch.zeros(2), atol=1e-6, rtol=0)
    torch.testing.assert_close(d_ab, d_ba)
    assert pairwise_mean(lambda x, y: model(x, y), a) > 0


def test_lpips_rejects_a_wrong_linear_file(backbone_files, tmp_path):
    bad = tmp_path / "alex.pth"
    torch.save({f"lin{i}.model.1.weight": torch.ones(1, c, 1, 1) for i, c in enumerate((64, 192, 384, 256, 256))}, bad)
    with pytest.raises(WeightsError, match="not the official"):
        load_lpips("alex", backbone=backbone_files["alex"], linear=bad)


def test_lpips_v00_has_no_scaling_layer():
    m = LPIPS("alex", "0.0")
    assert "shift" not in m.state_dict() and m.version == "0.0"


def test_ms_ssim_properties():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 64, 64, generator=g)
    y = (x + 0.1 * torch.randn(2, 3, 64, 64, generator=g)).clamp(0, 1)
    z = torch.rand(2, 3, 64, 64, generator=g)
    torch.testing.assert_close(ms_ssim(x, x), torch.ones(2, dtype=torch.float64))
    s_xy, s_xz = ms_ssim(x, y), ms_ssim(x, z)
    assert (s_xy < 1).all() and (s_xz < s_xy).all() and (s_xz >= 0).all()
    torch.testing.assert_close(ms_ssim(y, x), s_xy)
    big = torch.rand(1, 1, 176, 176, generator=g)  # full 11x11 window at all five scales
    assert 0 <= float(ms_ssim(big, big.flip(-1))) < 1
