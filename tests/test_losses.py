"""Losses against small hand-computed cases; LabelMix semantics."""
import math

import pytest
import torch
import torch.nn.functional as F

from oasisgan import losses as L


def test_class_balance_weights_hand_computed():
    # 1 image 2x3: class 0 (don't care) x1, class 1 x2, class 2 x3 -> K=2 present classes
    label = torch.tensor([[[0, 1, 1], [2, 2, 2]]])
    w = L.class_balance_weights(label, num_classes=4, dontcare=0)
    n = 6
    expect = torch.tensor([[[0.0, n / (2 * 2), n / (2 * 2)], [n / (2 * 3)] * 3]])
    assert torch.allclose(w, expect)


def test_class_balance_without_dontcare_counts_class_0():
    label = torch.tensor([[[0, 1, 1], [2, 2, 2]]])
    w = L.class_balance_weights(label, num_classes=3, dontcare=None)
    assert torch.allclose(w[0, 0, 0], torch.tensor(6 / (3 * 1)))


def test_n1_targets():
    label = torch.tensor([[[0, 3]]])
    assert L.n1_target(label, True).tolist() == [[[1, 4]]]
    assert L.n1_target(label, False).tolist() == [[[0, 0]]]


def test_n1_loss_real_is_weighted_mean_of_ce_over_all_pixels():
    torch.manual_seed(0)
    logits = torch.randn(1, 4, 2, 3)  # N=3 classes + fake
    label = torch.tensor([[[0, 1, 1], [2, 2, 2]]])
    ce = F.cross_entropy(logits, label + 1, reduction="none")
    w = torch.tensor([[[0.0, 1.5, 1.5], [1.0, 1.0, 1.0]]])
    assert torch.allclose(L.n1_loss(logits, label, True), (ce * w).sum() / 6)
    # don't-care pixels contribute nothing
    logits2 = logits.clone()
    logits2[0, :, 0, 0] = torch.tensor([50.0, -50.0, 3.0, 1.0])
    assert torch.allclose(L.n1_loss(logits2, label, True), L.n1_loss(logits, label, True))


def test_n1_loss_fake_is_unweighted_mean():
    logits = torch.zeros(2, 5, 4, 4)
    logits[:, 0] = 2.0
    expect = -math.log(math.exp(2) / (math.exp(2) + 4))
    assert L.n1_loss(logits, torch.randint(0, 4, (2, 4, 4)), False).item() == pytest.approx(expect, rel=1e-6)


def test_no_balancing_is_plain_mean():
    logits = torch.randn(1, 4, 2, 3)
    label = torch.tensor([[[0, 1, 1], [2, 2, 2]]])
    plain = F.cross_entropy(logits, label + 1)
    assert torch.allclose(L.n1_loss(logits, label, True, balancing=False), plain)


def test_labelmix_mask_is_constant_per_class_and_binary():
    torch.manual_seed(0)
    label = torch.randint(2, 7, (2, 16, 16))
    mask = L.labelmix_mask(label)
    assert mask.shape == (2, 1, 16, 16)
    for c in torch.unique(label):
        vals = mask[:, 0][label == c].unique()
        assert len(vals) == 1 and vals.item() in (0.0, 1.0)


def test_labelmix_mask_reproduces_official_in_place_loop():
    for seed in range(30):
        label = torch.randint(0, 4, (2, 6, 6))
        torch.manual_seed(seed)
        ours = L.labelmix_mask(label)
        torch.manual_seed(seed)
        t = label.clone().unsqueeze(1)
        for c in torch.unique(t):
            t[t == c] = torch.randint(0, 2, (1,))
        assert torch.equal(ours, t.float())


def test_labelmix_inputs_and_loss():
    real, fake = torch.ones(1, 3, 2, 2), -torch.ones(1, 3, 2, 2)
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    mixed = L.labelmix_inputs(mask, real, fake)
    assert mixed[0, 0].tolist() == [[1, -1], [-1, 1]]
    d_real, d_fake = torch.full((1, 4, 2, 2), 2.0), torch.zeros(1, 4, 2, 2)
    d_mixed = mask * 2.0  # perfectly consistent -> 0
    assert L.labelmix_loss(mask, d_mixed.expand(1, 4, 2, 2), d_fake, d_real).item() == 0.0
    assert L.labelmix_loss(mask, torch.zeros(1, 4, 2, 2), d_fake, d_real).item() == pytest.approx(2.0)


def test_vgg_loss_architecture_and_weights_file(tmp_path):
    loss = L.VGGLoss()
    feats = loss.vgg(torch.zeros(1, 3, 32, 32))
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512, 512]
    state = {f"features.{k}": v for k, v in loss.vgg.features.state_dict().items()}
    torch.save(state, tmp_path / "vgg19.pth")
    loaded = L.VGGLoss(str(tmp_path / "vgg19.pth"))
    x, y = torch.randn(1, 3, 32, 32), torch.randn(1, 3, 32, 32)
    assert torch.allclose(loaded(x, y), loss(x, y))
    from oasisgan.loading.weights import WeightsError

    with pytest.raises(WeightsError, match="not found"):
        L.VGGLoss(str(tmp_path / "missing.pth"))


def _logits(dtype, layout, b=2, c=6, h=5, w=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(b, c, h, w, generator=g, dtype=dtype) * 3).contiguous(memory_format=layout)
    return x.requires_grad_(True)


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-6), (torch.float32, 1e-6)])  # losses run in fp32
@pytest.mark.parametrize("for_real,balancing", [(True, True), (True, False), (False, True)])
def test_fused_n1_loss_equals_autograd(layout, dtype, tol, for_real, balancing):
    """The fused cross-entropy: the same loss and logits gradient, in the logits' layout."""
    label = torch.randint(0, 5, (2, 5, 7), generator=torch.Generator().manual_seed(1))
    label[0, 0, :3] = 0  # don't-care pixels (weight 0)
    out = []
    for impl in ("ref", "fast"):
        x = _logits(dtype, layout)
        loss = L.n1_loss(x, label, for_real, balancing, 0, impl=impl)
        (loss * 1.7).backward()
        out.append((loss.detach(), x.grad))
    assert _rel(out[1][0], out[0][0]) < tol
    assert _rel(out[1][1], out[0][1]) < tol
    assert out[1][1].is_contiguous(memory_format=layout)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-6), (torch.float32, 1e-6)])
def test_fused_labelmix_loss_equals_autograd(layout, dtype, tol):
    mask = L.labelmix_mask(torch.randint(0, 5, (2, 5, 7), generator=torch.Generator().manual_seed(2)),
                           torch.Generator().manual_seed(3))
    assert 0 < mask.mean() < 1
    out = []
    for impl in ("ref", "fast"):
        mixed, fake, real = (_logits(dtype, layout, seed=s) for s in (4, 5, 6))
        loss = L.labelmix_loss(mask.to(dtype), mixed, fake, real, impl=impl)
        (loss * 0.3).backward()
        out.append((loss.detach(), mixed.grad, fake.grad, real.grad))
    for a, b in zip(out[1], out[0]):
        assert _rel(a, b) < tol
    assert all(g.is_contiguous(memory_format=layout) for g in out[1][1:])


def test_fused_losses_refuse_a_second_backward():
    """Their backward overwrites the saved buffer: a second pass raises instead of lying."""
    x = _logits(torch.float32, torch.contiguous_format)
    loss = L.n1_loss(x, torch.zeros(2, 5, 7, dtype=torch.long), True, impl="fast")
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="one backward pass"):
        loss.backward()


def test_fused_losses_fall_back_on_mixed_layouts():
    """Logits of different layouts (one channels_last, one not) take the reference."""
    mask = torch.ones(2, 1, 5, 7)
    mixed = _logits(torch.float32, torch.channels_last)
    fake, real = _logits(torch.float32, torch.contiguous_format), _logits(torch.float32, torch.contiguous_format)
    loss = L.labelmix_loss(mask, mixed, fake, real, impl="fast")
    assert type(loss.grad_fn).__name__ == "MseLossBackward0"
    loss.backward()
    assert torch.equal(fake.grad, torch.zeros_like(fake))

