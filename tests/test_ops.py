"""oasisgan.ops: every op's "fast" implementation computes its "ref" (forward and backward, on
random inputs), and whole networks and a training step with every op "fast" equal every op
"ref": outputs and parameter gradients within 1e-5 relative (max abs diff / max abs value) in
float32 and ~1e-10 in float64. The fast path is the same model code (nn/), so an edit of nn/
reaches both.

Gradients that are analytically zero (the bias of a conv followed by a train-mode BatchNorm)
are float noise on both paths: they are compared in absolute terms against the largest gradient.
"""
from __future__ import annotations

import copy
import platform
import sys

import pytest
import torch
import torch.nn.functional as F

from oasisgan import ops
from oasisgan.nn import SPADE, Discriminator, Generator
from oasisgan.nn.layers import Conv2d, SNConv2d, settle_spectral_norms
from oasisgan.ops import conv as C
from oasisgan.ops import labelmap as LC
from oasisgan.ops import modulation as M
from oasisgan.ops import tuning

N_CLASSES = 7


def blob_labels(b, h, w, n=N_CLASSES, cell=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, n, (b, -(-h // cell), -(-w // cell)), generator=g)
    ids = ids.repeat_interleave(cell, 1).repeat_interleave(cell, 2)[:, :h, :w]
    # a few isolated pixels so that every kind of neighbourhood occurs
    ids[:, 1, 1] = (ids[:, 1, 1] + 1) % n
    return ids.contiguous()


def onehot(ids, n=N_CLASSES, dtype=torch.float32):
    return F.one_hot(ids, n).permute(0, 3, 1, 2).to(dtype)


def small_generator(**kw):
    torch.manual_seed(0)
    args = dict(channels=4, num_blocks=4, z_dim=8, spade_hidden=16)
    args.update(kw)
    return Generator(N_CLASSES, **args)


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def assert_close(fast, plain, tol):
    (o1, g1), (o0, g0) = fast, plain
    assert rel(o1, o0) < tol, f"outputs differ: {rel(o1, o0):.3g}"
    gmax = max(float(g.abs().max()) for g in g0.values())
    assert gmax > 0
    for name in g0:
        ref = float(g0[name].abs().max())
        diff = float((g1[name] - g0[name]).abs().max())
        if ref > 1e-4 * gmax:
            assert diff / ref < tol, f"grad of {name} differs: {diff / ref:.3g} (max {ref:.3g})"
        else:  # analytically zero gradient: float noise on both paths
            assert diff < tol * gmax, f"grad of {name} differs: {diff:.3g} (network max {gmax:.3g})"


def grads(net):
    return {n: p.grad.detach().clone() for n, p in net.named_parameters() if p.grad is not None}


def run(net, impl, *inputs, gout, seed=None, **kw):
    """net's output and parameter gradients with every op `impl`, on a copy of net; and its state."""
    net = copy.deepcopy(net)
    if seed is not None:
        kw["generator"] = torch.Generator().manual_seed(seed)
    with ops.use(impl):
        out = net(*inputs, **kw)
    (out * gout).sum().backward()
    return (out.detach(), grads(net)), {k: v.clone() for k, v in net.state_dict().items()}


def assert_same_state(s1, s0, tol):
    for k in s0:  # power-iteration vectors, BatchNorm statistics
        assert torch.allclose(s1[k].double(), s0[k].double(), rtol=tol, atol=tol), k


# ------------------------------------------------------------------------------------------------
# each op against its reference
# ------------------------------------------------------------------------------------------------
def _op_grads(fn, impl, *tensors):
    """fn's output and the gradients of `tensors` (leaves requiring grad) under `impl`."""
    leaves = [t.detach().clone().requires_grad_(t.is_floating_point()) for t in tensors]
    out = fn(*leaves, impl=impl)
    g = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(9))
    (out * g).sum().backward()
    return out.detach(), [t.grad for t in leaves if t.grad is not None]


def assert_op_equal(fn, tensors, tol):
    (o1, g1), (o0, g0) = _op_grads(fn, "fast", *tensors), _op_grads(fn, "ref", *tensors)
    assert rel(o1, o0) < tol, rel(o1, o0)
    assert len(g1) == len(g0)
    for a, b in zip(g1, g0):
        assert rel(a, b) < tol, rel(a, b)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("k,up", [(3, False), (1, False), (3, True), (1, True)])
@pytest.mark.parametrize("layout", ["auto", "channels_last", "contiguous"])
def test_conv2d_op(dtype, tol, k, up, layout, monkeypatch):
    monkeypatch.setattr(tuning, "FUSE_UPSAMPLING_MIN_PIXELS", 1)  # the folded kernel on small maps
    monkeypatch.setattr(tuning, "MEMORY_FORMAT", layout)
    torch.manual_seed(0)
    x = torch.randn(2, 5, 6, 7, dtype=dtype)
    w, b = torch.randn(4, 5, k, k, dtype=dtype), torch.randn(4, dtype=dtype)
    assert_op_equal(lambda x, w, b, impl: ops.conv2d(x, w, b, k // 2, up, impl), (x, w, b), tol)


@pytest.mark.parametrize("layout", ["auto", "channels_last", "contiguous"])
def test_layout_op(layout, monkeypatch):
    """Same values (and gradients); fast: the layout `tuning.memory_format` names; ref: x itself."""
    monkeypatch.setattr(tuning, "MEMORY_FORMAT", layout)
    monkeypatch.setattr(tuning, "CHANNELS_LAST_MIN_PIXELS", 2 * 6 * 7)
    x = torch.randn(2, 5, 6, 7, dtype=torch.float64)
    assert_op_equal(lambda x, impl: ops.layout(x, impl) * 2, (x,), 1e-300)
    assert ops.layout(x, "ref") is x
    fmt = torch.contiguous_format if layout == "contiguous" else torch.channels_last
    assert ops.layout(x, "fast").is_contiguous(memory_format=fmt)
    assert ops.layout(x[:1], "fast").is_contiguous(memory_format=torch.contiguous_format
                                                  if layout == "auto" else fmt)


def test_generator_blocks_run_in_one_layout(monkeypatch):
    """Fast: each residual block's norms see its input in the convolutions' layout (channels_last
    maps here), not the layout the previous block left (mixed layouts make every elementwise op
    and the BatchNorms strided: 256x256 inference ~15% slower)."""
    monkeypatch.setattr(tuning, "CHANNELS_LAST_MIN_PIXELS", 1)
    gen = small_generator().eval()
    seen = []
    for m in gen.modules():
        if isinstance(m, SPADE):
            m.first_norm.register_forward_pre_hook(
                lambda mod, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    with torch.no_grad():
        gen(blob_labels(1, 16, 16), torch.randn(1, 8))
    assert len(seen) > 4 and all(seen)


def test_nearest2x_conv3x3_is_the_upsampled_conv():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 6, 7, dtype=torch.float64)
    w, b = torch.randn(4, 5, 3, 3, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    ref = F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"), w, b, padding=1)
    assert rel(C.nearest2x_conv3x3(x, w, b), ref) < 1e-12
    assert rel(C.nearest2x_conv3x3(x.contiguous(memory_format=torch.channels_last), w, b), ref) < 1e-12


def test_conv2d_op_takes_winograd_in_cpu_float32_inference_only(monkeypatch):
    from oasisgan.ops import winograd

    monkeypatch.setattr(tuning, "WINOGRAD_MIN_PIXELS", 16 * 16)
    monkeypatch.setattr(tuning, "WINOGRAD_MIN_CHANNELS", 1)
    calls = []
    real = winograd.conv3x3_padded
    monkeypatch.setattr(winograd, "conv3x3_padded", lambda *a, **k: calls.append(1) or real(*a, **k))
    torch.manual_seed(0)
    x, w, b = torch.randn(1, 8, 16, 16), torch.randn(6, 8, 3, 3), torch.randn(6)
    with torch.no_grad():
        assert rel(ops.conv2d(x, w, b, 1, impl="fast"), ops.conv2d(x, w, b, 1, impl="ref")) < 1e-5
    assert calls == [1]
    assert_op_equal(lambda x, w, b, impl: ops.conv2d(x, w, b, 1, impl=impl), (x, w, b), 1e-5)
    assert calls == [1]  # with autograd: direct convolutions


def _sn_conv(k=3, cin=5, cout=4, up=False, dtype=torch.float64):
    torch.manual_seed(0)
    conv = SNConv2d(cin, cout, k, padding=k // 2, up=up).to(dtype)
    torch.nn.init.normal_(conv.bias)
    return conv


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("hw", [(1, 1), (6, 7)])  # output smaller than the weight, and larger
@pytest.mark.parametrize("parts", [None, (2, 1, 3)])
@pytest.mark.parametrize("up", [False, True])
def test_sn_conv2d_op(training, hw, parts, up):
    """Output, gradients (input, weight, bias) and the u/v vectors after the call equal the
    reference's; with `parts`, one power iteration and sigma per part, as separate calls."""
    conv = _sn_conv(up=up).train(training)
    x = torch.randn(6, 5, *hw, dtype=torch.float64)
    res = []
    for impl in ("fast", "ref"):
        c = copy.deepcopy(conv)
        xx = x.clone().requires_grad_(True)
        if parts is None:
            with ops.use(impl):
                out = c(xx)
        elif impl == "fast":
            with ops.use(impl), ops.batched.parts(parts):
                out = c(xx)
        else:  # the reference of a batched call: one call per part
            with ops.use(impl):
                out = torch.cat([c(p) for p in xx.split(list(parts))])
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        res.append((out.detach(), [xx.grad, c.weight_orig.grad, c.bias.grad], c.weight_u.clone(), c.weight_v.clone()))
    (o1, g1, u1, v1), (o0, g0, u0, v0) = res
    assert rel(o1, o0) < 1e-10
    assert all(rel(a, b) < 1e-10 for a, b in zip(g1, g0))
    assert torch.allclose(u1, u0, atol=1e-12) and torch.allclose(v1, v0, atol=1e-12)
    assert training == (not torch.equal(u0, conv.weight_u))


def test_sn_conv2d_reference_is_torchs_spectral_norm():
    """SNConv2d (ref) computes torch.nn.utils.spectral_norm's function bit for bit, u/v included,
    with the same state-dict keys, parameter order and random draws at construction."""
    torch.manual_seed(3)
    ours = SNConv2d(6, 4, 3, padding=1)
    torch.manual_seed(3)
    theirs = torch.nn.utils.spectral_norm(torch.nn.Conv2d(6, 4, 3, padding=1))
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert all(torch.equal(ours.state_dict()[k], v) for k, v in theirs.state_dict().items())
    x = torch.randn(2, 6, 5, 5)
    with ops.use("ref"):
        for mode in (True, True, False):
            ours.train(mode), theirs.train(mode)
            assert torch.equal(ours(x), theirs(x))
    assert torch.equal(ours.weight_u, theirs.weight_u) and torch.equal(ours.weight_v, theirs.weight_v)
    theirs_keys = torch.nn.utils.spectral_norm(torch.nn.Conv2d(6, 4, 3, padding=1)).state_dict()
    ours.load_state_dict(theirs_keys)  # torch's state dicts load


@pytest.mark.parametrize("zkind", ["broadcast", "spatial", "none"])
@pytest.mark.parametrize("hw", [(1, 1), (1, 4), (2, 3), (5, 4), (8, 12)])
def test_label_conv_op(zkind, hw):
    """Forward and gradients (weight, bias, noise) equal the dense one-hot convolution."""
    torch.manual_seed(0)
    n, zd, k = 4, 3, 3
    h, w = hw
    ids = torch.randint(0, n, (2, h, w))
    z = {"broadcast": torch.randn(2, zd, dtype=torch.float64), "none": None,
         "spatial": torch.randn(2, zd, h, w, dtype=torch.float64)}[zkind]
    cin = n + (zd if z is not None else 0)
    weight, bias = torch.randn(6, cin, k, k, dtype=torch.float64), torch.randn(6, dtype=torch.float64)

    def fn(weight, bias, *zz, impl):
        return ops.label_conv(ops.LabelMap(ids, n, zz[0] if zz else None), weight, bias, impl)

    assert_op_equal(fn, (weight, bias) + ((z,) if z is not None else ()), 1e-12)
    dense = ops.LabelMap(ids, n, z).dense(torch.float64)
    assert rel(fn(weight, bias, *((z,) if z is not None else ()), impl="fast"),
               F.conv2d(dense, weight, bias, padding=1)) < 1e-12


def test_label_map_resizes_as_the_official_interpolation():
    ids = blob_labels(2, 24, 40, cell=3)
    z = torch.randn(2, 3, 24, 40)
    seg = ops.LabelMap(ids, N_CLASSES, z)
    for h, w in ((12, 20), (3, 5), (6, 10)):
        official = F.interpolate(torch.cat((z, onehot(ids)), 1), size=(h, w))
        assert torch.equal(seg.at(h, w).dense(), official)
    assert seg.at(12, 20) is seg.at(12, 20)  # cached: one gather index per resolution
    soft = ops.LabelMap(onehot(ids) * 0.5, N_CLASSES, z)  # float maps take the reference
    assert torch.equal(soft.at(6, 10).dense(), F.interpolate(torch.cat((z, onehot(ids) * 0.5), 1), size=(6, 10)))


@pytest.mark.parametrize("project", [None, "sn", "plain"])
@pytest.mark.parametrize("training", [True, False])
def test_modulate_op(project, training, monkeypatch):
    """normalized * (1 + gamma(actv)) + beta(actv) (then the 1x1 shortcut conv, folded into beta's
    conv): outputs, gradients and the shortcut's u/v equal the reference's (float64)."""
    monkeypatch.setattr(tuning, "FOLD_SHORTCUT_FACTOR", 0)  # fold on small maps too
    torch.manual_seed(0)
    gamma, beta = Conv2d(5, 8, 3, padding=1).double(), Conv2d(5, 8, 3, padding=1).double()
    proj = {"sn": SNConv2d(8, 3, 1, bias=False), "plain": Conv2d(8, 3, 1, bias=False), None: None}[project]
    mods = [m.double().train(training) for m in (gamma, beta, proj) if m is not None]
    n, a = torch.randn(2, 8, 6, 7, dtype=torch.float64), torch.randn(2, 5, 6, 7, dtype=torch.float64)
    res = []
    for impl in ("fast", "ref"):
        ms = copy.deepcopy(mods)
        nn_, aa = n.clone().requires_grad_(True), a.clone().requires_grad_(True)
        with ops.use(impl):
            out = ops.modulate(nn_, aa, ms[0], ms[1], ms[2] if proj is not None else None)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        res.append((out.detach(), [nn_.grad, aa.grad] + [p.grad for m in ms for p in m.parameters()],
                    [b.clone() for m in ms for b in m.buffers()]))
    (o1, g1, b1), (o0, g0, b0) = res
    assert rel(o1, o0) < 1e-10
    assert all(rel(x, y) < 1e-10 for x, y in zip(g1, g0))
    assert all(torch.allclose(x, y, atol=1e-12) for x, y in zip(b1, b0))


def test_spade_layer_fast_equals_ref():
    torch.manual_seed(0)
    n, zd = 5, 3
    spade = SPADE(6, n + zd, 3, 4, "batch").double()
    for p in spade.parameters():
        torch.nn.init.normal_(p)
    b, h, w = 2, 5, 7
    ids = torch.randint(0, n, (b, h, w))
    seg = ops.LabelMap(ids, n, torch.randn(b, zd, dtype=torch.float64))
    x = torch.randn(b, 6, h, w, dtype=torch.float64)
    gout = torch.randn(b, 6, h, w, dtype=torch.float64)
    fast, _ = run(spade, "fast", x, seg, gout=gout)
    ref, _ = run(spade, "ref", x, seg, gout=gout)
    assert_close(fast, ref, 1e-10)


# ------------------------------------------------------------------------------------------------
# whole networks and the training step: every op "fast" against every op "ref"
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("zkind", ["broadcast", "spatial", "drawn"])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_generator_fast_equals_ref(mode, zkind, dtype, tol):
    b, h, w = 2, 24, 40  # odd aspect ratio, not a power of two
    gen = small_generator(num_blocks=4).to(dtype).train(mode == "train")
    ids = blob_labels(b, h, w, cell=8)
    torch.manual_seed(1)
    z = {"broadcast": torch.randn(b, 8, dtype=dtype), "spatial": torch.randn(b, 8, h, w, dtype=dtype),
         "drawn": None}[zkind]
    seed = 5 if zkind == "drawn" else None
    gout = torch.randn(b, 3, h, w, dtype=dtype)
    fast, sf = run(gen, "fast", ids, z, gout=gout, seed=seed)
    ref, sr = run(gen, "ref", ids, z, gout=gout, seed=seed)
    assert_close(fast, ref, tol)
    assert_same_state(sf, sr, 1e-4 if dtype == torch.float32 else 1e-9)
    # the one-hot input computes the same (the official input: the reference label conv)
    onehot_out, _ = run(gen, "ref", onehot(ids, dtype=dtype), z, gout=gout, seed=seed)
    assert torch.equal(onehot_out[0], ref[0])


@pytest.mark.parametrize("kw", [dict(noise_3d=False), dict(spectral_norm=False, norm="instance"),
                                dict(spade_ks=5), dict(num_blocks=3, norm="batch"),
                                dict(channels=16, num_blocks=3)])  # wide layers at tiny maps
def test_generator_variants_fast_equals_ref(kw, monkeypatch):
    monkeypatch.setattr(tuning, "FOLD_SHORTCUT_FACTOR", 0)  # the folded shortcut on these sizes
    gen = small_generator(**kw).to(torch.float64)
    b, h, w = 2, 16, 24
    ids = blob_labels(b, h, w, cell=7)
    z = torch.randn(b, 8, dtype=torch.float64)
    gout = torch.randn(b, 3, h, w, dtype=torch.float64)
    fast, sf = run(gen, "fast", ids, z, gout=gout)
    ref, sr = run(gen, "ref", ids, z, gout=gout)
    assert_close(fast, ref, 1e-10)
    assert_same_state(sf, sr, 1e-9)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_discriminator_fast_equals_ref(mode, dtype, tol, monkeypatch):
    monkeypatch.setattr(tuning, "FUSE_UPSAMPLING_MIN_PIXELS", 1)  # the folded upsampling everywhere
    monkeypatch.setattr(tuning, "CHANNELS_LAST_MIN_PIXELS", 200)  # both layouts
    torch.manual_seed(0)
    d = Discriminator(N_CLASSES, channels=8, num_blocks=3).to(dtype).train(mode == "train")
    x = torch.randn(2, 3, 16, 24, dtype=dtype)
    gout = torch.randn(2, N_CLASSES + 1, 16, 24, dtype=dtype)
    fast, sf = run(d, "fast", x, gout=gout)
    ref, sr = run(d, "ref", x, gout=gout)
    assert_close(fast, ref, tol)
    assert_same_state(sf, sr, 1e-5)


@pytest.mark.parametrize("layout", ["auto", "channels_last"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_batched_discriminator_calls_equal_separate_calls(layout, mode, monkeypatch):
    """The D step's three calls as one (`ops.calls`): outputs, gradients and the power-iteration
    state equal three official calls in a row."""
    monkeypatch.setattr(tuning, "MEMORY_FORMAT", layout)
    torch.manual_seed(0)
    d = Discriminator(N_CLASSES, channels=8, num_blocks=3).train(mode == "train")
    xs = [torch.randn(2, 3, 16, 24) for _ in range(3)]
    gouts = [torch.randn(2, N_CLASSES + 1, 16, 24) for _ in range(3)]
    res = []
    for impl in ("fast", "ref"):
        net = copy.deepcopy(d)
        with ops.use("ref"):  # only the batching differs
            outs = ops.calls(net, xs, impl)
        sum((o * g).sum() for o, g in zip(outs, gouts)).backward()
        res.append(((torch.cat(outs).detach(), grads(net)), net.state_dict()))
    assert_close(res[0][0], res[1][0], 1e-5)
    assert_same_state(res[0][1], res[1][1], 1e-5)
    if mode == "train":
        assert not torch.equal(res[1][1]["body_down.0.conv1.0.weight_u"], d.state_dict()["body_down.0.conv1.0.weight_u"])


def _tiny_cfg(**kw):
    from oasisgan.config import preset

    return preset("ade20k", semantic_nc=N_CLASSES, channels_G=4, channels_D=4, crop_size=32,
                  load_size=32, z_dim=8, num_res_blocks=3, **kw)


def _one_train_step(cfg, impl=None, layout=torch.contiguous_format, configure=lambda step: None):
    """Losses, D's state and the gradients of G and D after one TrainStep from fixed networks and
    data, with every op `impl`."""
    from oasisgan.training.amp import Precision
    from oasisgan.training.step import TrainStep

    torch.manual_seed(0)
    g, d = Generator.from_config(cfg), Discriminator.from_config(cfg)
    batch = {"image": (torch.rand(2, 3, 32, 32) * 2 - 1).contiguous(memory_format=layout),
             "label": blob_labels(2, 32, 32)}
    ema = copy.deepcopy(g).requires_grad_(False)
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.0, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=4e-4, betas=(0.0, 0.999))
    step = TrainStep(cfg, g, d, ema, opt_g, opt_d, Precision("none", torch.device("cpu")))
    configure(step)
    torch.manual_seed(1)
    with ops.use(impl):
        losses = step.step(batch, torch.device("cpu"))
    state = {f"{tag}.{k}.grad": p.grad for tag, net in (("G", g), ("D", d)) for k, p in net.named_parameters()}
    state.update({f"D.{k}": v for k, v in d.state_dict().items()})
    state.update({f"G.{k}": v for k, v in g.state_dict().items()})
    return losses, state


def _assert_same_step(a, b):
    (l1, s1), (l0, s0) = a, b
    assert set(l1) == set(l0)
    for k in l0:
        assert torch.allclose(l1[k], l0[k], rtol=1e-5), k
    top = max(v.abs().max() for k, v in s0.items() if k.endswith(".grad"))
    for k in s0:  # analytically zero gradients (biases before BatchNorm) are float noise
        assert torch.allclose(s1[k].double(), s0[k].double(), rtol=1e-4,
                              atol=1e-6 * (top if k.endswith(".grad") else 1)), k


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_train_step_fast_equals_ref(layout):
    """One whole iteration (G step, D step with LabelMix and the batched D call, fused losses,
    EMA) with every op "fast" equals every op "ref"."""
    cfg = _tiny_cfg(batch_d_calls="on")
    _assert_same_step(_one_train_step(cfg, "fast", layout), _one_train_step(cfg, "ref", layout))


def test_train_step_takes_every_fast_op_by_default(monkeypatch):
    """On the CPU, by default: the gather label conv, the fused losses, the batched D call."""
    from oasisgan.ops import losses as L

    calls = []
    for fn in (L.WeightedCrossEntropy, L.LabelMixMSE):
        monkeypatch.setattr(fn, "apply", lambda *a, orig=fn.apply, name=fn.__name__:
                            calls.append(name) or orig(*a))
    real_gather, real_parts = LC.label_conv_nhwc, ops.batched.parts
    monkeypatch.setattr(LC, "label_conv_nhwc", lambda *a: calls.append("gather") or real_gather(*a))
    monkeypatch.setattr(ops.batched, "parts", lambda s: calls.append("batched") or real_parts(s))
    _one_train_step(_tiny_cfg(), layout=torch.channels_last)
    assert sorted(set(calls)) == ["LabelMixMSE", "WeightedCrossEntropy", "batched", "gather"]
    assert calls.count("WeightedCrossEntropy") == 3 and calls.count("batched") == 1  # G, D fake, D real
    calls.clear()
    _one_train_step(_tiny_cfg(fast_spade=False))
    assert calls == []  # every op's reference


def test_batch_d_calls_setting():
    from oasisgan.config import ConfigError

    assert _tiny_cfg().batch_d_calls == "auto"
    assert _tiny_cfg(batch_d_calls=False).batch_d_calls == "off"
    with pytest.raises(ConfigError, match="batch_d_calls"):
        _tiny_cfg(batch_d_calls="sometimes")
    seen = []
    d = lambda x: seen.append(x.shape[0]) or x[:, :1]  # noqa: E731
    ops.calls(d, [torch.zeros(4, 3, 64, 64)] * 3)  # auto: small CPU maps batched
    ops.calls(d, [torch.zeros(2, 3, 128, 128)] * 3)  # larger ones not
    ops.calls(d, [torch.zeros(2, 3, 128, 128)] * 3, "fast")  # on
    ops.calls(d, [torch.zeros(1, 3, 8, 8, device="meta")] * 3)  # accelerators: not by default
    assert seen == [12, 2, 2, 2, 6, 1, 1, 1]


# ------------------------------------------------------------------------------------------------
# the choice of implementation
# ------------------------------------------------------------------------------------------------
def _fast_kernels_raise(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("a fast kernel ran")

    monkeypatch.setattr(LC, "label_conv_nhwc", boom)
    monkeypatch.setattr(M, "_gamma_beta", boom)
    monkeypatch.setattr(C, "nearest2x_conv3x3", boom)


def test_fast_kernels_run_by_default_on_the_cpu(monkeypatch):
    gen, ids = small_generator().eval(), blob_labels(1, 16, 16)
    _fast_kernels_raise(monkeypatch)
    with pytest.raises(AssertionError, match="fast kernel"):
        gen(ids, torch.randn(1, 8))
    with ops.use("ref"):
        gen(ids, torch.randn(1, 8))


def test_an_edit_of_nn_reaches_the_default_path(monkeypatch):
    """The fast path runs nn/'s own code: patching the noise changes the default output."""
    gen, ids, z = small_generator().eval(), blob_labels(1, 16, 16), torch.randn(1, 8)
    with torch.no_grad():
        before = gen(ids, z)
        monkeypatch.setattr(Generator, "noise", lambda self, label, z, generator=None: 2 * z)
        after = gen(ids, z)
        with ops.use("ref"):
            assert rel(after, gen(ids, z)) < 1e-5
    assert rel(after, before) > 1e-3


def test_tracing_and_onnx_export_take_the_reference(monkeypatch, tmp_path):
    gen = small_generator().eval()
    label, z = onehot(blob_labels(1, 16, 16)), torch.randn(1, 8)
    with torch.no_grad():
        expected = gen(label, z)
        _fast_kernels_raise(monkeypatch)
        with ops.use("fast"):  # even when forced
            traced = torch.jit.trace(gen, (label, z), check_trace=False)
        other = onehot(blob_labels(1, 16, 16, seed=3))
        with ops.use("ref"):
            assert rel(traced(other, z), gen(other, z)) < 1e-5
        assert rel(traced(label, z), expected) < 1e-5
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / "g.onnx"
    torch.onnx.export(gen, (label, z), str(path), dynamo=False)
    sess = ort.InferenceSession(str(path))
    names = [i.name for i in sess.get_inputs()]
    out = sess.run(None, {names[0]: label.numpy(), names[1]: z.numpy()})[0]
    assert rel(torch.from_numpy(out), expected) < 1e-5


def test_compiling_and_accelerators_take_the_reference(monkeypatch):
    x = torch.zeros(1, 2, 4, 4)
    assert ops.choose(None, x) == "fast" and ops.choose(None, x.to("meta")) == "ref"
    assert ops.choose(None, x.to("meta"), cpu_only=False) == "fast"
    monkeypatch.setattr(tuning, "ON_ACCELERATORS", True)
    assert ops.choose(None, x.to("meta")) == "fast"
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    with ops.use("fast"):
        assert ops.choose(None, x) == "ref"
    assert ops.choose("fast", x) == "fast"  # an explicit choice is kept
    with pytest.raises(ValueError, match="impl"):
        ops.choose("cuda", x)


def test_state_dict_keys_are_official():
    gen = small_generator()
    keys = set(gen.state_dict())
    for k in ("body.0.norm_0.mlp_shared.0.weight", "body.0.norm_0.mlp_gamma.weight",
              "body.0.norm_0.mlp_beta.bias", "body.0.conv_0.weight_orig", "body.0.conv_0.weight_u",
              "fc.weight", "conv_img.bias"):
        assert k in keys
    d = Discriminator(N_CLASSES, channels=8, num_blocks=3)
    assert "body_up.0.conv1.2.weight_orig" in d.state_dict()


def test_settled_spectral_norm_makes_fresh_networks_finite_in_eval():
    gen = small_generator()
    settle_spectral_norms(gen, 30)
    with torch.no_grad():
        assert torch.isfinite(gen.eval()(blob_labels(1, 16, 16))).all()


def test_autocast_bf16_close_to_fp32():
    gen = small_generator().eval()
    ids, z = blob_labels(1, 16, 16), torch.randn(1, 8)
    with torch.no_grad():
        ref = gen(ids, z)
        for impl in ("fast", "ref"):
            with ops.use(impl), torch.autocast("cpu", dtype=torch.bfloat16):
                assert rel(gen(ids, z).float(), ref) < 5e-2


def test_cpu_allocator_tuning_applies_once_on_glibc():
    import subprocess

    code = ("from oasisgan.allocator import tune_cpu_allocator as t; a = t('heap'); b = t(); "
            "print(a, b)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    a, b = out.stdout.split()
    assert a == b
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert a == "True"
    from oasisgan.allocator import tune_cpu_allocator
    from oasisgan.config import ConfigError, preset

    with pytest.raises(ValueError, match="allocator mode"):
        tune_cpu_allocator("fast")
    with pytest.raises(ConfigError, match="tune_malloc"):
        preset("ade20k", tune_malloc="yes").validate()


@pytest.mark.skipif(not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"),
                    reason="glibc malloc tuning")
def test_cpu_allocator_keeps_freed_blocks():
    """Under "heap", a freed 64 MiB block is reused, not returned to the OS and faulted in again
    (a trim threshold masked to 0 by ctypes did that on every free)."""
    import subprocess

    code = """if True:
        import ctypes, resource
        from oasisgan.allocator import tune_cpu_allocator
        assert tune_cpu_allocator("heap")
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
        libc.free.argtypes = [ctypes.c_void_p]
        def touch(n=64 << 20):
            p = libc.malloc(n)
            ctypes.memset(p, 1, n)
            libc.free(p)
        touch()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(3):
            touch()
        print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) < 2000  # 3 x 16384 pages when every free trims
