"""oasisgan.accel computes the reference networks' (nn/) function: outputs and parameter
gradients agree within 1e-5 relative (max abs diff / max abs value) in float32 and to ~1e-10
in float64, in train and eval mode, for broadcast and spatial noise, odd aspect ratios; soft
labels, tracing and export fall back to the plain path.

Gradients that are analytically zero (the bias of a conv followed by a train-mode BatchNorm)
are float noise on both paths (even plain float32 vs float64 differs by 1e9 relative there):
they are compared in absolute terms against the largest gradient of the network.
"""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from oasisgan.accel import FastDiscriminator, FastGenerator, accelerate, is_accelerated, tuning
from oasisgan.accel.generator import spade_forward
from oasisgan.accel.label_conv import LabelIndex, label_conv, onehot_ids
from oasisgan.nn import Discriminator, Generator, SPADE

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


def small_generator(fast=True, **kw):
    torch.manual_seed(0)
    args = dict(channels=4, num_blocks=4, z_dim=8, spade_hidden=16)
    args.update(kw)
    return accelerate(Generator(N_CLASSES, **args), fast)


def run(gen, fast, label, z, gout, generator_seed=None):
    gen = accelerate(copy.deepcopy(gen), fast)
    rng = None if generator_seed is None else torch.Generator().manual_seed(generator_seed)
    out = gen(label, z, generator=rng)
    (out * gout).sum().backward()
    return out.detach(), {n: p.grad.detach().clone() for n, p in gen.named_parameters()}


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


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("zkind", ["broadcast", "spatial", "drawn"])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_fast_equals_plain(mode, zkind, dtype, tol):
    b, h, w = 2, 24, 40  # odd aspect ratio, not a power of two
    gen = small_generator(num_blocks=4).to(dtype)
    gen.train(mode == "train")
    ids = blob_labels(b, h, w, cell=8)
    label = onehot(ids, dtype=dtype)
    torch.manual_seed(1)
    z = {"broadcast": torch.randn(b, 8, dtype=dtype), "spatial": torch.randn(b, 8, h, w, dtype=dtype),
         "drawn": None}[zkind]
    seed = 5 if zkind == "drawn" else None
    gout = torch.randn(b, 3, h, w, dtype=dtype)
    assert onehot_ids(label) is not None
    assert_close(run(gen, True, label, z, gout, seed), run(gen, False, label, z, gout, seed), tol)


@pytest.mark.parametrize("kw", [dict(noise_3d=False), dict(spectral_norm=False, norm="instance"),
                                dict(spade_ks=5), dict(num_blocks=3, norm="batch")])
def test_fast_equals_plain_variants(kw):
    gen = small_generator(**kw).to(torch.float64)
    b, h, w = 2, 16, 24
    label = onehot(blob_labels(b, h, w, cell=7), dtype=torch.float64)
    z = torch.randn(b, 8, dtype=torch.float64)
    gout = torch.randn(b, 3, h, w, dtype=torch.float64)
    assert_close(run(gen, True, label, z, gout), run(gen, False, label, z, gout), 1e-10)


def test_fast_path_is_taken_and_plain_is_not(monkeypatch):
    gen = small_generator().eval()
    d = accelerate(Discriminator(N_CLASSES, channels=8, num_blocks=3))
    assert isinstance(gen, FastGenerator) and isinstance(d, FastDiscriminator)
    label = onehot(blob_labels(1, 16, 16))

    def boom(*a, **k):
        raise AssertionError("reference path used")

    monkeypatch.setattr(Generator, "forward", boom)
    monkeypatch.setattr(Discriminator, "forward", boom)
    gen(label, torch.randn(1, 8))
    gen(label, torch.randn(1, 8), ids=blob_labels(1, 16, 16))
    d(torch.randn(1, 3, 16, 16))


def test_label_ids_are_the_exact_class_ids_in_any_layout_and_dtype():
    gen = small_generator()
    ids = blob_labels(2, 16, 24, seed=7)
    label = onehot(ids)
    for lab in (label, label.contiguous(memory_format=torch.channels_last), label.bfloat16(),
                label.double()):
        out = onehot_ids(lab)
        assert out is not None and out.dtype == torch.int64 and torch.equal(out, ids)


def test_soft_labels_fall_back_to_plain():
    gen = small_generator().eval()
    label = onehot(blob_labels(2, 16, 16))
    soft = label * 0.9 + 0.1 / N_CLASSES
    assert onehot_ids(soft) is None
    two_hot = label.clone()
    two_hot[0, 0, 0, 0] = 1.0
    two_hot[0, 1, 0, 0] = 1.0
    assert onehot_ids(two_hot) is None
    empty = label.clone()
    empty[1, :, 3, 3] = 0
    assert onehot_ids(empty) is None
    # the per-pixel sums are 1 but the mass is split, or a value is not 1, or not finite
    split = label.clone()
    split[0, :, 2, 2] = 0
    split[0, :2, 2, 2] = 0.5
    assert onehot_ids(split) is None
    scaled = label.clone()
    scaled[1, :, 4, 4] *= 2
    assert onehot_ids(scaled) is None
    nan = label.clone()
    nan[0, 3, 1, 1] = float("nan")
    assert onehot_ids(nan) is None
    # an empty pixel and a two-hot one: as many non-zeros as pixels, sums 0 and 2
    swap = label.clone()
    swap[0, :, 0, 0] = 0
    c = int(label[0, :, 0, 1].argmax())
    swap[0, (c + 1) % N_CLASSES, 0, 1] = 1
    assert int(torch.count_nonzero(swap)) == 2 * 16 * 16
    assert onehot_ids(swap) is None
    z = torch.randn(2, 8)
    with torch.no_grad():
        a = accelerate(gen, True)(soft, z)
        b = accelerate(gen, False)(soft, z)
    assert torch.equal(a, b)  # the reference forward either way


def test_label_requiring_grad_takes_plain_path():
    gen = small_generator().eval()
    label = onehot(blob_labels(1, 16, 16)).requires_grad_(True)
    assert onehot_ids(label) is None
    gen(label, torch.randn(1, 8)).sum().backward()
    assert label.grad is not None


def test_state_dict_keys_are_official():
    gen = small_generator()
    keys = set(gen.state_dict())
    for k in ("body.0.norm_0.mlp_shared.0.weight", "body.0.norm_0.mlp_gamma.weight",
              "body.0.norm_0.mlp_beta.bias", "body.0.conv_0.weight_orig", "body.0.conv_0.weight_u",
              "fc.weight", "conv_img.bias"):
        assert k in keys
    assert not any("fused" in k or "gamma_beta" in k for k in keys)
    assert keys == set(small_generator(fast=False).state_dict())


def test_spade_fast_equals_plain_single_layer():
    torch.manual_seed(0)
    n, zd = 5, 3
    spade = SPADE(6, n + zd, 3, 4, "batch").double()
    for p in spade.parameters():
        torch.nn.init.normal_(p)
    b, h, w = 2, 5, 7
    ids = torch.randint(0, n, (b, h, w))
    z = torch.randn(b, zd, dtype=torch.float64)
    seg = torch.cat((z[:, :, None, None].expand(b, zd, h, w), onehot(ids, n, torch.float64)), 1)
    x = torch.randn(b, 6, h, w, dtype=torch.float64)
    assert rel(spade_forward(spade, x, LabelIndex(ids, n, 3, z)), spade(x, seg)) < 1e-12


@pytest.mark.parametrize("hw", [(1, 1), (1, 4), (2, 3), (5, 4)])
def test_label_conv_tiny_maps_and_borders(hw):
    torch.manual_seed(0)
    n, zd, k = 4, 3, 3
    h, w = hw
    weight = torch.randn(6, zd + n, k, k, dtype=torch.float64)
    bias = torch.randn(6, dtype=torch.float64)
    ids = torch.randint(0, n, (2, h, w))
    z = torch.randn(2, zd, dtype=torch.float64)
    seg = torch.cat((z[:, :, None, None].expand(2, zd, h, w), onehot(ids, n, torch.float64)), 1)
    ref = F.conv2d(seg, weight, bias, padding=1)
    assert rel(label_conv(weight, bias, LabelIndex(ids, n, k, z)), ref) < 1e-12


def test_autocast_bf16_close_to_plain():
    gen = small_generator().eval()
    label = onehot(blob_labels(1, 16, 16))
    z = torch.randn(1, 8)
    outs = []
    for fast in (True, False):
        accelerate(gen, fast)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            outs.append(gen(label, z).float())
    with torch.no_grad():
        ref = gen(label, z)
    assert rel(outs[0], ref) < 5e-2 and rel(outs[1], ref) < 5e-2


def test_tracing_uses_plain_path():
    gen = small_generator().eval()
    label = onehot(blob_labels(1, 16, 16))
    z = torch.randn(1, 8)
    with torch.no_grad():
        traced = torch.jit.trace(gen, (label, z), check_trace=False)
        other = onehot(blob_labels(1, 16, 16, seed=3))
        assert rel(traced(other, z), gen(other, z)) < 1e-5


def test_onnx_export_takes_plain_path(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    gen = small_generator().eval()
    label = onehot(blob_labels(1, 16, 16))
    z = torch.randn(1, 8)
    path = tmp_path / "g.onnx"
    torch.onnx.export(gen, (label, z), str(path), dynamo=False)
    sess = ort.InferenceSession(str(path))
    names = [i.name for i in sess.get_inputs()]
    out = sess.run(None, {names[0]: label.numpy(), names[1]: z.numpy()})[0]
    with torch.no_grad():
        ref = gen(label, z)
    assert rel(torch.from_numpy(out), ref) < 1e-5


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_discriminator_fast_spectral_norm_equals_plain(mode):
    torch.manual_seed(0)
    d = Discriminator(N_CLASSES, channels=8, num_blocks=3)
    d.train(mode == "train")
    x = torch.randn(2, 3, 16, 16)
    gout = torch.randn(2, N_CLASSES + 1, 16, 16)
    res = []
    for fast in (True, False):
        dd = accelerate(copy.deepcopy(d), fast)
        out = dd(x)
        (out * gout).sum().backward()
        res.append((out.detach(), {n: p.grad.clone() for n, p in dd.named_parameters()},
                    {k: v.clone() for k, v in dd.state_dict().items()}))
    assert_close(res[0][:2], res[1][:2], 1e-5)
    for k in res[1][2]:  # power-iteration vectors advance identically
        assert torch.allclose(res[0][2][k], res[1][2][k], rtol=1e-5, atol=1e-7), k


def test_accelerate_switches_in_place_and_keeps_the_state():
    gen = small_generator(channels=16, fast=False)
    params = list(gen.parameters())
    assert accelerate(gen) is gen and is_accelerated(gen) and list(gen.parameters()) == params
    ema = copy.deepcopy(gen)  # the EMA generator keeps the class
    assert is_accelerated(ema)
    accelerate(gen, False)
    assert type(gen) is Generator and not is_accelerated(gen)
    ema.load_state_dict(gen.state_dict())  # state dicts load across the two
    assert set(ema.state_dict()) == set(gen.state_dict())
    other = torch.nn.Linear(2, 2)
    assert accelerate(other) is other and type(other) is torch.nn.Linear


def test_a_changed_reference_falls_back_and_warns(monkeypatch):
    """Editing nn/ makes `accelerate` refuse (warn, reference kept) until the fast path is
    re-checked and VERIFIED_NN updated; this test fails when the two differ."""
    import oasisgan.accel as A

    assert A.nn_fingerprint() == A.VERIFIED_NN, (
        "oasisgan/nn changed since the fast path was checked: run tests/test_accel.py, fix "
        f"oasisgan/accel if it fails, then set oasisgan.accel.VERIFIED_NN = {A.nn_fingerprint()!r}")
    monkeypatch.setattr(A, "VERIFIED_NN", "0" * 64)
    monkeypatch.setattr(A, "_warned", False)
    gen = small_generator(fast=False)
    with pytest.warns(UserWarning, match="changed since the fast path was checked"):
        accelerate(gen)
    assert type(gen) is Generator


def test_a_changed_reference_loss_falls_back_and_warns(monkeypatch):
    """The same for the fused losses: an edit of oasisgan/losses.py turns them off (one warning)
    until tests/test_losses.py passed and VERIFIED_LOSSES is updated; this test fails meanwhile."""
    from oasisgan import losses
    from oasisgan.accel import losses as fused

    assert fused.losses_fingerprint() == fused.VERIFIED_LOSSES, (
        "oasisgan/losses.py changed since the fused losses were checked: run tests/test_losses.py, "
        "fix oasisgan/accel/losses.py if it fails, then set oasisgan.accel.losses.VERIFIED_LOSSES = "
        f"{fused.losses_fingerprint()!r}")
    logits, label = torch.randn(2, 4, 8, 8), torch.randint(0, 3, (2, 8, 8))
    calls = []
    monkeypatch.setattr(fused.WeightedCrossEntropy, "apply",
                        lambda *a, orig=fused.WeightedCrossEntropy.apply: calls.append(1) or orig(*a))
    fast = losses.n1_loss(logits, label, True, fused=True)
    assert calls == [1]
    monkeypatch.setattr(fused, "VERIFIED_LOSSES", "0" * 64)
    monkeypatch.setattr(fused, "_warned", False)
    with pytest.warns(UserWarning, match="changed since the fused kernels were checked"):
        ref = losses.n1_loss(logits, label, True, fused=True)
    assert calls == [1] and torch.allclose(fast, ref, rtol=1e-5)


def test_generator_fast_equals_plain_wide_low_res():
    """Wide layers at tiny maps: the output-scaled spectral norm is active there."""
    gen = small_generator(channels=16, num_blocks=3).train()
    b, h, w = 1, 8, 8
    label = onehot(blob_labels(b, h, w, cell=4))
    z = torch.randn(b, 8)
    gout = torch.randn(b, 3, h, w)
    assert_close(run(gen, True, label, z, gout), run(gen, False, label, z, gout), 1e-5)


def test_compiling_takes_plain_path(monkeypatch):
    gen = small_generator().eval()
    label = onehot(blob_labels(1, 16, 16))
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    monkeypatch.setattr(Generator, "forward", lambda *a, **k: "reference")
    assert gen(label) == "reference"


@pytest.mark.parametrize("layout", ["auto", "channels_last"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_discriminator_batched_calls_equal_separate_calls(layout, mode):
    """The D step's three calls as one (`groups`): outputs, gradients and the
    power-iteration state equal three official calls in a row."""
    torch.manual_seed(0)
    d = Discriminator(N_CLASSES, channels=8, num_blocks=3).train(mode == "train")
    xs = [torch.randn(2, 3, 16, 24) for _ in range(3)]
    gouts = [torch.randn(2, N_CLASSES + 1, 16, 24) for _ in range(3)]
    plain = copy.deepcopy(d)
    outs = [plain(x) for x in xs]
    sum((o * g).sum() for o, g in zip(outs, gouts)).backward()
    fast = accelerate(copy.deepcopy(d))
    fast.memory_format = layout
    outb = fast(torch.cat(xs), groups=[2, 2, 2]).split(2)
    sum((o * g).sum() for o, g in zip(outb, gouts)).backward()
    if layout == "channels_last":
        assert outb[0].is_contiguous(memory_format=torch.channels_last)
    grads = [{n: p.grad.clone() for n, p in net.named_parameters()} for net in (fast, plain)]
    assert_close((torch.cat(outb).detach(), grads[0]), (torch.cat(outs).detach(), grads[1]), 1e-5)
    sp, sf = plain.state_dict(), fast.state_dict()
    for k in sp:  # three power iterations per conv, as three calls
        assert torch.allclose(sf[k], sp[k], rtol=1e-5, atol=1e-7), k
    if mode == "train":
        assert not torch.equal(sp["body_down.0.conv1.0.weight_u"], d.state_dict()["body_down.0.conv1.0.weight_u"])


def _one_train_step(cfg, configure, layout=torch.contiguous_format):
    """Losses, D's state and the last gradients of G and D after one TrainStep from fixed
    networks and data, `configure(step)` applied first."""
    from oasisgan.training.amp import Precision
    from oasisgan.training.step import TrainStep

    torch.manual_seed(0)
    g, d = accelerate(Generator.from_config(cfg)), accelerate(Discriminator.from_config(cfg))
    d.memory_format = "channels_last" if layout == torch.channels_last else "contiguous"
    batch = {"image": torch.rand(2, 3, 32, 32) * 2 - 1, "label": blob_labels(2, 32, 32)}
    ema = copy.deepcopy(g).requires_grad_(False)
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.0, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=4e-4, betas=(0.0, 0.999))
    step = TrainStep(cfg, g, d, ema, opt_g, opt_d, Precision("none", torch.device("cpu")))
    configure(step)
    torch.manual_seed(1)
    losses = step.step(batch, torch.device("cpu"))
    grads = {f"{tag}.{k}.grad": p.grad for tag, net in (("G", g), ("D", d))
             for k, p in net.named_parameters()}
    return losses, {**d.state_dict(), **grads}


def _assert_same_step(a, b):
    (l1, s1), (l0, s0) = a, b
    for k in l0:
        assert torch.allclose(l1[k], l0[k], rtol=1e-5), k
    top = max(v.abs().max() for k, v in s0.items() if k.endswith(".grad"))
    for k in s0:  # analytically zero gradients (biases before BatchNorm) are float noise
        assert torch.allclose(s1[k], s0[k], rtol=1e-4, atol=1e-6 * (top if k.endswith(".grad") else 1)), k


def _tiny_cfg(**kw):
    from oasisgan.config import preset

    return preset("ade20k", semantic_nc=N_CLASSES, channels_G=4, channels_D=4, crop_size=32,
                  load_size=32, z_dim=8, num_res_blocks=3, **kw)


def test_train_step_batched_d_equals_separate_calls():
    """A whole training iteration with the batched D step equals the official three calls."""
    cfg = _tiny_cfg(batch_d_calls=True)
    assert cfg.batch_d_calls == "on"

    def batched(on):
        def configure(step):
            assert step.batched_d == "on"
            step.batched_d = "on" if on else "off"
        return configure

    _assert_same_step(_one_train_step(cfg, batched(True)), _one_train_step(cfg, batched(False)))


def test_batch_d_calls_auto_batches_small_cpu_maps_only():
    from oasisgan.config import ConfigError
    from oasisgan.training.amp import Precision
    from oasisgan.training.step import TrainStep

    assert _tiny_cfg().batch_d_calls == "auto"
    assert _tiny_cfg(batch_d_calls=False).batch_d_calls == "off"
    with pytest.raises(ConfigError, match="batch_d_calls"):
        _tiny_cfg(batch_d_calls="sometimes")
    cfg = _tiny_cfg()
    g, d = accelerate(Generator.from_config(cfg)), accelerate(Discriminator.from_config(cfg))
    step = TrainStep(cfg, g, d, None, None, None, Precision("none", torch.device("cpu")))
    assert step.batch_d(torch.zeros(4, 3, 64, 64)) and not step.batch_d(torch.zeros(2, 3, 128, 128))
    assert not step.batch_d(torch.zeros(1, 3, 8, 8, device="meta"))
    accelerate(d, False)  # the reference: three calls, as the official code
    assert TrainStep(cfg, g, d, None, None, None, Precision("none", torch.device("cpu"))).batched_d == "off"


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_train_step_fused_losses_equal_autograd(layout):
    """A whole iteration with the fused losses equals autograd's losses (both D layouts)."""
    runs = [_one_train_step(_tiny_cfg(fused_losses=on), lambda step: None, layout) for on in (True, False)]
    _assert_same_step(*runs)


def test_cpu_allocator_tuning_applies_once_on_glibc():
    import platform
    import subprocess
    import sys

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


def test_accelerators_take_the_plain_path_by_default(monkeypatch):
    """On GPUs the plain path is faster (measured on an H100); the switch forces the fast one."""
    gen = small_generator()
    d = accelerate(Discriminator(N_CLASSES, channels=8, num_blocks=3))
    monkeypatch.setattr(Generator, "forward", lambda *a, **k: "reference")
    monkeypatch.setattr(Discriminator, "forward", lambda *a, **k: "reference")
    assert gen(torch.zeros(1, N_CLASSES, 16, 16, device="meta")) == "reference"
    assert d(torch.zeros(1, 3, 16, 16, device="meta")) == "reference"
    d.memory_format = "channels_last"
    assert d._layout(torch.zeros(1, 3, 16, 16)).is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_discriminator_folded_upsampling_equals_plain(dtype, tol):
    """Up blocks fold the nearest 2x upsampling into conv1 (a stride-2 transposed conv with
    summed 4x4 kernels) and run the 1x1 shortcut before upsampling: the same function and
    gradients, in either layout."""
    from oasisgan.accel.convs import nearest2x_conv3x3
    from oasisgan.accel import discriminator as AD

    torch.manual_seed(0)
    x = torch.randn(2, 5, 6, 7, dtype=dtype)
    w, b = torch.randn(4, 5, 3, 3, dtype=dtype), torch.randn(4, dtype=dtype)
    ref = F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"), w, b, padding=1)
    assert rel(nearest2x_conv3x3(x, w, b), ref) < tol

    assert rel(nearest2x_conv3x3(x.contiguous(memory_format=torch.channels_last), w, b), ref) < tol

    d = Discriminator(N_CLASSES, channels=8, num_blocks=3).to(dtype).train()
    x = torch.randn(2, 3, 16, 24, dtype=dtype)
    gout = torch.randn(2, N_CLASSES + 1, 16, 24, dtype=dtype)
    res = []
    for fold in (True, False):
        dd = accelerate(copy.deepcopy(d), fold)
        calls = []
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(tuning, "CHANNELS_LAST_MIN_PIXELS", 200)  # both layouts: NCHW below 200 pixels
            mp.setattr(tuning, "FUSE_UPSAMPLING_MIN_PIXELS", 1)
            mp.setattr(AD, "_fuse_upsampling", lambda b, x, f=AD._fuse_upsampling: calls.append(f(b, x)) or calls[-1])
            out = dd(x)
        (out * gout).sum().backward()
        assert any(calls) == fold
        res.append((out.detach(), {n: p.grad.clone() for n, p in dd.named_parameters()}))
    assert_close(res[0], res[1], tol)


def test_folded_upsampling_thresholds(monkeypatch):
    """Folding applies on maps of >= 1024 input pixels (>= 4096 under autocast)."""
    from oasisgan.accel import discriminator as AD

    d = accelerate(Discriminator(N_CLASSES, channels=4, num_blocks=4))
    seen = []
    orig = AD._fuse_upsampling

    def spy(block, x):
        if block.up_or_down > 0:
            seen.append((x.shape[0] * x.shape[2] * x.shape[3], orig(block, x)))
        return orig(block, x)

    monkeypatch.setattr(AD, "_fuse_upsampling", spy)
    with torch.no_grad():
        d(torch.zeros(1, 3, 128, 128))
        assert [f for _, f in seen] == [px >= 1024 for px, _ in seen] and any(f for _, f in seen)
        seen.clear()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            d(torch.zeros(1, 3, 128, 128))
        assert [f for _, f in seen] == [px >= 4096 for px, _ in seen]


def test_train_step_takes_the_fused_losses_by_default(monkeypatch):
    from oasisgan.accel import losses as L

    calls = []
    for fn in (L.WeightedCrossEntropy, L.LabelMixMSE):
        monkeypatch.setattr(fn, "apply", lambda *a, orig=fn.apply, name=fn.__name__:
                            calls.append(name) or orig(*a))
    _one_train_step(_tiny_cfg(), lambda step: None, torch.channels_last)
    assert sorted(calls) == ["LabelMixMSE"] + ["WeightedCrossEntropy"] * 3  # G, D fake, D real


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("sn", [True, False])
def test_folded_shortcut_equals_plain(mode, sn, monkeypatch):
    """conv_s folded into norm_s's beta conv: outputs, gradients and the spectral-norm u/v
    vectors after the call equal the plain path's (float64)."""
    from oasisgan.accel import generator as AG

    gen = small_generator(num_blocks=4, spectral_norm=sn).to(torch.float64)
    gen.train(mode == "train")
    folded = []
    orig = AG.fold_shortcut
    monkeypatch.setattr(AG, "fold_shortcut", lambda block, index: folded.append(orig(block, index)) or folded[-1])
    b, h, w = 2, 32, 48
    label = onehot(blob_labels(b, h, w, cell=8), dtype=torch.float64)
    torch.manual_seed(3)
    z = torch.randn(b, 8, dtype=torch.float64)
    gout = torch.randn(b, 3, h, w, dtype=torch.float64)
    states = []
    for fast in (True, False):
        g = accelerate(copy.deepcopy(gen), fast)
        out = g(label, z)
        (out * gout).sum().backward()
        states.append(((out.detach(), {n: p.grad.clone() for n, p in g.named_parameters()}),
                       {k: v.clone() for k, v in g.state_dict().items()}))
    assert any(folded), "the folded shortcut was not taken"
    assert_close(states[0][0], states[1][0], 1e-10)
    for k, v in states[1][1].items():
        assert torch.allclose(states[0][1][k], v, rtol=1e-10, atol=1e-12), k
