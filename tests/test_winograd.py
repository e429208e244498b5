"""Winograd F(m x m, 3x3) convolutions (ops/winograd.py) compute F.conv2d(x, w, b, padding=1):
to float64 rounding in float64, within 1e-5 relative in float32, and the generator's SPADE and
residual convolutions take them only where they apply (CPU float32 inference, fast ops)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from oasisgan import ops
from oasisgan.nn import Generator, SPADE
from oasisgan.ops import tuning, winograd

from test_ops import N_CLASSES, blob_labels, rel


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("bias", [True, False])
def test_conv3x3_equals_conv2d_in_float64(m, bias):
    torch.manual_seed(0)
    x = torch.randn(2, 5, 8, 12, dtype=torch.float64)
    w = torch.randn(7, 5, 3, 3, dtype=torch.float64)
    b = torch.randn(7, dtype=torch.float64) if bias else None
    ref = F.conv2d(x, w, b, padding=1)
    out = winograd.conv3x3(x, w, b, m)
    assert out.shape == ref.shape and out.is_contiguous(memory_format=torch.channels_last)
    assert rel(out, ref) < 1e-12


@pytest.mark.parametrize("m", [2, 4])
def test_conv3x3_float32_rounding_is_a_convolutions(m):
    """Against float64: F(2x2) rounds no worse than the direct float32 convolution, F(4x4)
    within a small factor of it, both far inside the 1e-5 relative equivalence bound."""
    torch.manual_seed(1)
    x = torch.randn(1, 64, 32, 32).relu()
    w = torch.randn(96, 64, 3, 3) / 24
    b = torch.randn(96) * 0.1
    ref = F.conv2d(x.double(), w.double(), b.double(), padding=1)
    direct = rel(F.conv2d(x, w, b, padding=1).double(), ref)
    err = rel(winograd.conv3x3(x, w, b, m).double(), ref)
    assert err < 1e-5
    assert err < (1.5 if m == 2 else 10) * direct


def test_chunking_and_strided_input_do_not_change_the_result(monkeypatch):
    torch.manual_seed(2)
    x = torch.randn(3, 6, 16, 24, dtype=torch.float64)
    w = torch.randn(4, 6, 3, 3, dtype=torch.float64)
    ref = F.conv2d(x, w, None, padding=1)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    for chunk in (1, 7, 10_000):
        monkeypatch.setattr(tuning, "WINOGRAD_CHUNK_TILES", chunk)
        assert rel(winograd.conv3x3(x, w, None, 4), ref) < 1e-12
    # a padded view with a non-unit channel stride is made contiguous first
    xp = winograd.padded(x.permute(0, 2, 3, 1)).transpose(1, 2).contiguous().transpose(1, 2)
    assert rel(winograd.conv3x3_padded(xp, w, None, 2).permute(0, 1, 2, 3), ref) < 1e-12


def test_padded_fuses_relu_and_zeroes_the_border():
    x = torch.randn(2, 4, 6, 3)
    xp = winograd.padded(x, relu=True)
    assert xp.shape == (2, 6, 8, 3)
    assert torch.equal(xp[:, 1:-1, 1:-1], x.relu())
    inner = torch.zeros_like(xp, dtype=torch.bool)
    inner[:, 1:-1, 1:-1] = True
    assert not xp[~inner].any()


def test_map_size_must_divide_by_the_tile():
    xp = torch.zeros(1, 8, 8, 2)  # a 6x6 map
    with pytest.raises(ValueError, match="divisible by 4"):
        winograd.conv3x3_padded(xp, torch.zeros(2, 2, 3, 3), None, 4)


def test_applicable_only_for_cpu_float32_inference_on_large_maps(monkeypatch):
    w = torch.randn(128, 128, 3, 3)
    x = torch.randn(1, 128, 128, 128)  # (B, H, W, C)
    monkeypatch.setattr(tuning, "WINOGRAD_TILE", 0)
    assert winograd.applicable(x, w) == 0
    monkeypatch.setattr(tuning, "WINOGRAD_TILE", 2)
    assert winograd.applicable(x, w) == 2
    monkeypatch.setattr(tuning, "WINOGRAD_TILE", 3)
    with pytest.raises(ValueError, match="Winograd tile 3"):
        winograd.applicable(x, w)
    monkeypatch.setattr(tuning, "WINOGRAD_TILE", 4)
    assert winograd.applicable(x, w) == 4
    assert not winograd.applicable(x[:, :16, :32], w)          # small map
    assert winograd.applicable(x[:, :32, :32], w)
    assert not winograd.applicable(x[..., :64], w[:, :64])     # few channels
    assert winograd.applicable(x, w[:64], out_channels=128)    # concatenated weights
    assert not winograd.applicable(x.double(), w.double())
    assert not winograd.applicable(x[:, :126], w)              # 126 % 4
    xg = x.clone().requires_grad_()
    assert not winograd.applicable(xg, w)
    with torch.no_grad():
        assert winograd.applicable(xg, w)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not winograd.applicable(x, w)


def _generator():
    torch.manual_seed(0)
    return Generator(N_CLASSES, channels=8, num_blocks=4, z_dim=8, spade_hidden=16).eval()


@pytest.mark.parametrize("tile,layout", [(2, "channels_last"), (4, "channels_last"), (4, "contiguous")])
def test_generator_takes_winograd_in_inference_with_the_same_output(monkeypatch, tile, layout):
    """With the size thresholds lowered to reach a small network: both SPADE's gamma/beta
    convolution and the residual blocks' spectral-norm convolutions run through Winograd in
    no-grad CPU float32 inference, and the image equals the direct path's."""
    monkeypatch.setattr(tuning, "WINOGRAD_MIN_PIXELS", 16 * 16)
    monkeypatch.setattr(tuning, "WINOGRAD_MIN_CHANNELS", 1)
    monkeypatch.setattr(tuning, "MEMORY_FORMAT", layout)
    calls = []
    real = winograd.conv3x3_padded
    monkeypatch.setattr(winograd, "conv3x3_padded", lambda *a, **k: calls.append(a[3]) or real(*a, **k))
    label, z = blob_labels(2, 64, 96, seed=3), torch.randn(2, 8)
    gen = _generator()
    with torch.no_grad():
        monkeypatch.setattr(tuning, "WINOGRAD_TILE", tile)
        out = gen(label, z)
        calls_inference = len(calls)
        monkeypatch.setattr(tuning, "WINOGRAD_TILE", 0)
        ref = gen(label, z)
    assert calls_inference >= 6 and set(calls) == {tile}
    assert rel(out, ref) < 1e-5
    calls.clear()
    monkeypatch.setattr(tuning, "WINOGRAD_TILE", tile)
    gen(label, z).sum().backward()  # training (autograd): the direct convolutions
    with torch.no_grad(), ops.use("ref"):
        assert rel(gen(label, z), ref) < 1e-5  # the reference: direct convolutions
    assert not calls


def test_generator_without_large_maps_is_unchanged(monkeypatch):
    """At the default thresholds a small test generator never reaches Winograd: bit-equal."""
    label, z = blob_labels(1, 64, 64, seed=4), torch.randn(1, 8)
    gen = _generator()
    with torch.no_grad():
        out = gen(label, z)
        monkeypatch.setattr(tuning, "WINOGRAD_TILE", 0)
        assert torch.equal(out, gen(label, z))


def test_official_size_spade_layer_matches_within_1e_5(monkeypatch):
    """One SPADE layer at a size where the default switch is on (128 channels, 128x128)."""
    torch.manual_seed(5)
    spade = SPADE(128, 12, hidden=128).eval()
    x = torch.randn(1, 128, 128, 128).contiguous(memory_format=torch.channels_last)
    seg = ops.LabelMap(blob_labels(1, 128, 128, n=12, seed=5), 12)
    calls = []
    real = winograd.conv3x3_padded
    monkeypatch.setattr(winograd, "conv3x3_padded", lambda *a, **k: calls.append(1) or real(*a, **k))
    with torch.no_grad():
        fast = spade(x, seg)
        with ops.use("ref"):
            plain = spade(x, seg)
        monkeypatch.setattr(tuning, "WINOGRAD_TILE", 0)
        direct = spade(x, seg)
    assert calls == [1]
    assert rel(fast, plain) < 1e-5
    assert rel(direct, plain) < 1e-5
