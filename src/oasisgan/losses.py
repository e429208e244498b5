"""OASIS losses: class-balanced (N+1)-class cross-entropy, LabelMix, optional VGG19 loss.

Label maps are integer tensors (B, H, W) of class ids (the official code takes one-hot maps and
argmaxes them, which gives the same ids). Channel 0 of the discriminator output means "fake",
channel k means class k-1.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .loading.weights import load_state_dict_file
from .ops.losses import cross_entropy, labelmix_mse


def class_balance_weights(label: torch.Tensor, num_classes: int,
                          dontcare: Optional[int] = 0, cap: Optional[float] = None) -> torch.Tensor:
    """Per-pixel weights (B, H, W): weight of class c = B*H*W / (K * n_c).

    n_c is the pixel count of c in this batch (this rank's batch under DDP, as the official
    code), K the number of classes present; the don't-care class gets weight 0 and is not
    counted in K. Every present class thus carries 1/K of the loss however few its pixels: one
    pixel of a class weighs B*H*W / K (docs/sparse.md). `cap` (default None, the official
    loss) bounds the weight, a guard for sparse or long-tailed label maps.
    """
    counts = torch.bincount(label.reshape(-1), minlength=num_classes)[:num_classes].to(torch.float32)
    if dontcare is not None:
        counts[dontcare] = 0
    present = (counts > 0).sum()
    coeff = torch.reciprocal(counts) * label.numel() / present
    if cap is not None:
        coeff = coeff.clamp(max=float(cap))
    if dontcare is not None:
        coeff[dontcare] = 0
    return coeff[label]


def n1_target(label: torch.Tensor, for_real: bool) -> torch.Tensor:
    """Targets of the N+1 cross-entropy: class id + 1 for real pixels, 0 ("fake") otherwise."""
    return label + 1 if for_real else torch.zeros_like(label)


def n1_loss(logits: torch.Tensor, label: torch.Tensor, for_real: bool, balancing: bool = True,
            dontcare: Optional[int] = 0, impl: Optional[str] = None,
            weight_cap: Optional[float] = None) -> torch.Tensor:
    """The OASIS adversarial loss. `for_real=True` is D's real term and G's loss.

    `impl`: of the cross-entropy op (`ops.losses.cross_entropy`: "ref" is autograd's composition,
    "fast" one logits-sized buffer; None: fast). `weight_cap`: `class_balance_weights`' cap."""
    target = n1_target(label, for_real)
    weight = (class_balance_weights(label, logits.shape[1] - 1, dontcare, weight_cap)
              if for_real and balancing else None)
    return cross_entropy(logits.float(), target, weight, impl)


def labelmix_mask(label: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """One random bit per class present in the batch, painted over its pixels: (B, 1, H, W) float.

    Reproduces the official loop exactly: one `torch.randint(0, 2, (1,))` per present class in
    increasing id order, written in place into the id map. Because the map is overwritten in
    place, pixels of class 0 that drew a 1 are caught again by class 1's draw (so class 0, the
    don't-care class of every benchmark, keeps bit b0 AND b1 when class 1 is present).
    """
    classes = torch.unique(label).tolist()
    value = {c: c for c in classes}  # what the official in-place map holds for each class
    for c in classes:
        bit = int(torch.randint(0, 2, (1,), device=label.device, generator=generator)[0])
        for k in classes:
            if value[k] == c:
                value[k] = bit
    bits = torch.zeros(max(classes) + 1, dtype=torch.float32, device=label.device)
    bits[torch.tensor(classes, device=label.device)] = torch.tensor(
        [float(value[c]) for c in classes], device=label.device)
    return bits[label].unsqueeze(1)


def labelmix_inputs(mask: torch.Tensor, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return mask * real + (1 - mask) * fake


def labelmix_loss(mask: torch.Tensor, d_mixed: torch.Tensor, d_fake: torch.Tensor,
                  d_real: torch.Tensor, impl: Optional[str] = None) -> torch.Tensor:
    """Consistency: D(mix(real, fake)) should equal mix(D(real), D(fake)) = labelmix_inputs(mask,
    D(real), D(fake)), MSE on raw logits (`ops.losses.labelmix_mse`, `impl` as in `n1_loss`)."""
    return labelmix_mse(mask, d_mixed.float(), d_fake.float(), d_real.float(), impl)


class VGG19Features(nn.Module):
    """VGG19 conv features at relu1_1..relu5_1 (torchvision layout, weights from a local file)."""

    _CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512]
    _SLICES = (2, 7, 12, 21, 30)  # indices of `features` after relu1_1, 2_1, 3_1, 4_1, 5_1

    def __init__(self, weights: Optional[str] = None):
        super().__init__()
        layers, cin = [], 3
        for v in self._CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=False)]
                cin = v
        self.features = nn.Sequential(*layers)
        if weights is not None:
            state = load_state_dict_file(weights, what="VGG19 weights")
            state = {k: v for k, v in state.items() if k.startswith("features.")}
            missing = self.load_state_dict(state, strict=False).missing_keys
            if missing:
                raise ValueError(f"VGG19 weights {weights}: missing keys {missing[:4]}...")
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor):
        # The official VGG loss feeds the [-1, 1] images without ImageNet normalisation.
        out, h = [], x
        prev = 0
        for end in self._SLICES:
            h = self.features[prev:end](h)
            out.append(h)
            prev = end
        return out


class VGGLoss(nn.Module):
    """The optional perceptual loss of the ablation (official weights 1/32 ... 1)."""

    weights = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)

    def __init__(self, vgg_weights: Optional[str] = None):
        super().__init__()
        self.vgg = VGG19Features(vgg_weights)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx, fy = self.vgg(x), self.vgg(y)
        return sum(w * F.l1_loss(a, b.detach()) for w, a, b in zip(self.weights, fx, fy))

