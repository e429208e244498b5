"""Segmenter architectures load state dicts with their original key names and give the right shapes."""
import json

import pytest
import torch

from oasisgan.config import preset
from oasisgan.metrics.segmenters import (DeepLabV2MSC, DRNSeg, ReferenceUNet, UperNetResNet101, load_segmenter,
                                         segmenter_checkpoint)
from oasisgan.metrics.segmenters.common import label_map_from_spec, load_original_state_dict
from oasisgan.metrics.segmenters.drn import build_drn_segmenter, cityscapes_label_map
from oasisgan.loading.weights import WeightsError


def _shapes(sd):
    return {k: tuple(v.shape) for k, v in sd.items()}


# A few keys of each public weight file, with their shapes (from the original code's modules).
DRN_KEYS = {"base.0.0.weight": (16, 3, 7, 7), "base.0.1.running_var": (16,), "base.1.0.weight": (16, 16, 3, 3),
            "base.2.0.weight": (32, 16, 3, 3), "base.3.0.conv1.weight": (64, 32, 1, 1),
            "base.3.0.downsample.0.weight": (256, 32, 1, 1), "base.5.22.conv3.weight": (1024, 256, 1, 1),
            "base.6.0.downsample.0.weight": (2048, 1024, 1, 1), "base.7.0.weight": (512, 2048, 3, 3),
            "base.8.1.weight": (512,), "seg.weight": (19, 512, 1, 1), "seg.bias": (19,),
            "up.weight": (19, 1, 16, 16)}
UPERNET_ENCODER_KEYS = {"conv1.weight": (64, 3, 3, 3), "conv3.weight": (128, 64, 3, 3), "bn3.running_mean": (128,),
                        "layer1.0.conv1.weight": (64, 128, 1, 1), "layer1.0.downsample.0.weight": (256, 128, 1, 1),
                        "layer3.22.conv3.weight": (1024, 256, 1, 1), "layer4.2.bn3.weight": (2048,)}
UPERNET_DECODER_KEYS = {"ppm_conv.0.0.weight": (512, 2048, 1, 1), "ppm_conv.3.1.running_var": (512,),
                        "ppm_last_conv.0.weight": (512, 4096, 3, 3), "fpn_in.0.0.weight": (512, 256, 1, 1),
                        "fpn_in.2.0.weight": (512, 1024, 1, 1), "fpn_out.2.0.0.weight": (512, 512, 3, 3),
                        "conv_last.0.0.weight": (512, 2048, 3, 3), "conv_last.1.weight": (150, 512, 1, 1),
                        "conv_last.1.bias": (150,)}
DEEPLAB_KEYS = {"base.layer1.conv1.conv.weight": (64, 3, 7, 7), "base.layer1.conv1.bn.running_mean": (64,),
                "base.layer2.block1.shortcut.conv.weight": (256, 64, 1, 1),
                "base.layer2.block1.reduce.conv.weight": (64, 64, 1, 1),
                "base.layer4.block23.conv3x3.conv.weight": (256, 256, 3, 3),
                "base.layer5.block3.increase.conv.weight": (2048, 512, 1, 1),
                "base.layer5.block3.increase.bn.weight": (2048,),
                "base.aspp.c0.weight": (182, 2048, 3, 3), "base.aspp.c3.bias": (182,)}


def _check_keys(module, expected, n_params_range=None):
    shapes = _shapes(module.state_dict())
    for k, s in expected.items():
        assert k in shapes, k
        assert shapes[k] == s, (k, shapes[k], s)


def _original_file_like(module, drop_nbt=True):
    """A state dict as the public files hold it: original keys, no num_batches_tracked, random values."""
    return {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in module.state_dict().items()
            if not (drop_nbt and k.endswith("num_batches_tracked"))}


def test_drn_d_105_keys_load_and_shape():
    net = DRNSeg(19)
    _check_keys(net, DRN_KEYS)
    assert sum(p.numel() for p in net.base.parameters()) == pytest.approx(54.8e6, rel=0.05)  # README: 54.8M
    seg = build_drn_segmenter({"module." + k: v for k, v in _original_file_like(net).items()}, 35)
    seg.net.apply(lambda m: m.eval())
    x = torch.rand(1, 3, 32, 64) * 2 - 1
    with torch.no_grad():
        out = seg(x)
    assert out.shape == (1, 19, 32, 64)
    assert seg.map_labels(torch.tensor([[7, 26, 0, 34]])).tolist() == [[0, 13, -1, -1]]


def test_upernet_resnet101_keys_load_and_shape():
    net = UperNetResNet101()
    _check_keys(net.encoder, UPERNET_ENCODER_KEYS)
    _check_keys(net.decoder, UPERNET_DECODER_KEYS)
    enc, dec = _original_file_like(net.encoder), _original_file_like(net.decoder)
    load_original_state_dict(net.encoder, enc, "enc")
    load_original_state_dict(net.decoder, dec, "dec")
    net.eval()
    with torch.no_grad():
        logits = net(torch.randn(1, 3, 64, 64))
    assert logits.shape == (1, 150, 16, 16)


def test_deeplabv2_keys_load_and_shape():
    net = DeepLabV2MSC(182)
    _check_keys(net, DEEPLAB_KEYS)
    load_original_state_dict(net, _original_file_like(net), "deeplab")
    net.eval()
    with torch.no_grad():
        logits = net(torch.randn(1, 3, 32, 32))
    assert logits.shape == (1, 182, 5, 5)  # output stride 8 with ceil-mode pooling


def test_wrong_keys_give_a_clear_error():
    net = DRNSeg(19)
    sd = _original_file_like(net)
    sd.pop("seg.weight")
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(WeightsError, match="missing key.*seg.weight.*unexpected key.*extra.weight"):
        load_original_state_dict(net, sd, "DRN weights")
    sd = _original_file_like(net)
    sd["seg.weight"] = torch.zeros(20, 512, 1, 1)
    with pytest.raises(WeightsError, match="shape mismatch"):
        load_original_state_dict(net, sd, "DRN weights")


def test_state_dict_files_are_recognised_by_their_keys(tmp_path):
    cfg = preset("cityscapes")
    p = tmp_path / "drn-d-105_ms_cityscapes.pth"
    torch.save(_original_file_like(DRNSeg(19)), p)
    seg = load_segmenter(str(p), cfg)
    assert seg.name == "drn-d-105" and seg.num_classes == 19 and len(seg.weights_sha256) == 64
    with pytest.raises(Exception, match="Cityscapes classes"):
        load_segmenter(str(p), preset("ade20k"))


def test_offline_missing_weights_message(tmp_path, monkeypatch):
    monkeypatch.setenv("OASISGAN_CACHE", str(tmp_path / "cache"))
    with pytest.raises(WeightsError, match="go.yf.io"):
        load_segmenter(None, preset("cityscapes"))
    with pytest.raises(WeightsError, match="file not found"):
        load_segmenter("drn", preset("cityscapes"), weights=tmp_path / "nope.pth")


def test_discriminator_segmenter_drops_fake_channel():
    from oasisgan.nn import Discriminator

    cfg = preset("toy", semantic_nc=5, channels_D=4)
    d = Discriminator.from_config(cfg)
    seg = load_segmenter("discriminator", cfg, discriminator=d)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        full = d(x)
        out = seg(x)
    assert out.shape == (2, 5, 64, 64)
    torch.testing.assert_close(out, full[:, 1:])
    pred = seg.predict(x)
    assert pred.shape == (2, 64, 64) and int(pred.min()) >= 1  # don't care (0) is never predicted


def test_reference_unet_roundtrip(tmp_path):
    cfg = preset("toy", semantic_nc=6)
    net = ReferenceUNet(6, width=4, depth=2)
    p = tmp_path / "seg.pt"
    torch.save(segmenter_checkpoint(net, cfg, val_miou=0.5), p)
    seg = load_segmenter(str(p), cfg)
    x = torch.rand(3, 3, 20, 28) * 2 - 1  # sizes need not be multiples of 2**depth
    with torch.no_grad():
        assert seg(x).shape == (3, 6, 20, 28)
        assert seg.features(x).shape == (3, 16)
    assert seg.map_labels(torch.tensor([0, 3])).tolist() == [-1, 3]
    with pytest.raises(WeightsError, match="another dataset"):
        load_segmenter(str(p), preset("toy", semantic_nc=7))


class _TinySeg(torch.nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, classes, 3, padding=1)

    def forward(self, x):
        return torch.nn.functional.avg_pool2d(self.conv(x), 2)  # half resolution, resized back


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_segmenter_with_class_map(tmp_path):
    cfg = preset("toy", semantic_nc=5)
    p = tmp_path / "user.ts"
    torch.jit.script(_TinySeg(3)).save(str(p))
    cmap = tmp_path / "map.json"
    cmap.write_text(json.dumps({"1": 0, "2": 0, "4": 2}))  # model id -> segmenter class; 3 unscored
    seg = load_segmenter(str(p), cfg, class_map=str(cmap), input_range="0_1")
    assert seg.num_classes == 3 and seg.name.startswith("torchscript")
    assert seg.label_map.tolist() == [-1, 0, 0, -1, 2]
    with torch.no_grad():
        assert seg(torch.zeros(2, 3, 64, 64)).shape == (2, 3, 64, 64)
        assert set(seg.predict(torch.rand(1, 3, 64, 64)).unique().tolist()) <= {0, 2}  # class 1 unscored
    with pytest.raises(Exception, match="class map"):
        load_segmenter(str(p), cfg)  # 3 outputs for 5 ids and no map


def test_label_map_from_list():
    m = label_map_from_spec([None, 0, 1, 1], 4, dontcare=0)
    assert m.tolist() == [-1, 0, 1, 1]
    assert cityscapes_label_map(35)[33] == 18


def test_multiscale_protocol_and_sync_bn_extras():
    from oasisgan.metrics.segmenters.common import Segmenter, identity_label_map

    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 4, 1)
    seg = Segmenter(net, 4, identity_label_map(4, 0), "t")
    x = torch.rand(2, 3, 64, 96) * 2 - 1
    with torch.no_grad():
        single = torch.log_softmax(seg(x), 1)
        seg.scales = [64]  # short side 64 -> 64x96, already multiples of 32: the same as one pass
        torch.testing.assert_close(seg(x), single, rtol=1e-5, atol=1e-5)
        seg.scales = [32, 64, 100]
        out = seg(x)
    assert out.shape == (2, 4, 64, 96) and torch.isfinite(out).all()
    # CSAIL's synchronized BatchNorm files carry training accumulators: ignored on load
    bn = torch.nn.BatchNorm2d(3)
    sd = dict(bn.state_dict(), **{"_tmp_running_mean": torch.zeros(3)})
    load_original_state_dict(torch.nn.Sequential(bn), {"0." + k: v for k, v in sd.items()}, "bn")
