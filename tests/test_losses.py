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
    from oasisgan.weights import WeightsError

    with pytest.raises(WeightsError, match="not found"):
        L.VGGLoss(str(tmp_path / "missing.pth"))
