"""OASIS losses: class-balanced (N+1)-class cross-entropy, LabelMix, optional VGG19 loss.

Label maps are integer tensors (B, H, W) of class ids (the official code takes one-hot maps and
argmaxes them, which gives the same ids). Channel 0 of the discriminator output means "fake",
channel k means class k-1.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


def class_balance_weights(label: torch.Tensor, num_classes: int,
                          dontcare: Optional[int] = 0) -> torch.Tensor:
    """Per-pixel weights (B, H, W): weight of class c = B*H*W / (K * n_c).

    n_c is the pixel count of c in this batch (this rank's batch under DDP, as the official
    code), K the number of classes present; the don't-care class gets weight 0 and is not
    counted in K.
    """
    counts = torch.bincount(label.reshape(-1), minlength=num_classes)[:num_classes].to(torch.float32)
    if dontcare is not None:
        counts[dontcare] = 0
    present = (counts > 0).sum()
    coeff = torch.reciprocal(counts) * label.numel() / present
    if dontcare is not None:
        coeff[dontcare] = 0
    return coeff[label]


def n1_target(label: torch.Tensor, for_real: bool) -> torch.Tensor:
    """Targets of the N+1 cross-entropy: class id + 1 for real pixels, 0 ("fake") otherwise."""
    return label + 1 if for_real else torch.zeros_like(label)


def n1_loss(logits: torch.Tensor, label: torch.Tensor, for_real: bool, balancing: bool = True,
            dontcare: Optional[int] = 0, fused: bool = False) -> torch.Tensor:
    """The OASIS adversarial loss. `for_real=True` is D's real term and G's loss.

    `fused`: the same loss through `_WeightedCrossEntropy` (one logits-sized buffer instead of
    four, no layout copies of channels_last logits); equal up to float rounding."""
    target = n1_target(label, for_real)
    weight = class_balance_weights(label, logits.shape[1] - 1, dontcare) if for_real and balancing else None
    if fused and _fusable(logits):
        return _WeightedCrossEntropy.apply(logits.float(), target, weight)
    loss = F.cross_entropy(logits.float(), target, reduction="none")
    if weight is not None:
        loss = loss * weight
    return loss.mean()


def _channel_last_view(x: torch.Tensor) -> Tuple[torch.Tensor, int]:
    """x (B, C, H, W) with its channel dimension: a (B, H, W, C) view of channels_last tensors,
    so that softmax and gathers over C run over contiguous memory."""
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return x.permute(0, 2, 3, 1), 3
    return x, 1


def _from_channel_view(x: torch.Tensor, dim: int) -> torch.Tensor:
    return x.permute(0, 3, 1, 2) if dim == 3 else x


def _fusable(*tensors: torch.Tensor) -> bool:
    """Fused loss functions: 4-d maps of one layout, outside compiled and traced graphs."""
    return (all(t.dim() == 4 for t in tensors) and not torch.jit.is_tracing()
            and not torch.compiler.is_compiling()
            and len({_channel_last_view(t)[1] for t in tensors}) == 1)


def _claim_backward(ctx) -> None:
    """Fused losses reuse their saved buffers for the gradient: a second backward through the
    same graph (retain_graph=True) would read overwritten values, so it raises instead."""
    if getattr(ctx, "consumed", False):
        raise RuntimeError("the fused OASIS losses support one backward pass per forward; "
                           "use fused_losses: false to backpropagate through them twice")
    ctx.consumed = True


class _WeightedCrossEntropy(torch.autograd.Function):
    """mean_p w_p * CE(logits_p, target_p), w = 1 when weight is None.

    Autograd's composition (log_softmax, nll, mul, mean) holds four logits-sized tensors: the
    log-softmax, nll's zero-filled gradient, log_softmax's gradient, and on channels_last logits
    contiguous copies of the input and the gradient. Here the log-softmax buffer becomes the
    gradient in place: exp(lsm) * c - c at the target, c = g * w / numel, the same values."""

    @staticmethod
    def forward(ctx, logits, target, weight):
        view, dim = _channel_last_view(logits)
        lsm = torch.log_softmax(view, dim)
        loss = lsm.gather(dim, target.unsqueeze(dim)).squeeze(dim).neg_()
        if weight is not None:
            loss = loss * weight
        ctx.dim = dim
        ctx.save_for_backward(lsm, target, weight)
        return loss.mean()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        _claim_backward(ctx)
        lsm, target, weight = ctx.saved_tensors
        dim = ctx.dim
        scale = grad / target.numel()
        c = (scale * weight if weight is not None else scale.expand(target.shape)).unsqueeze(dim)
        at = target.unsqueeze(dim)  # one target per pixel: scatter_ (deterministic on GPUs too)
        g = lsm.exp_().mul_(c)
        g.scatter_(dim, at, g.gather(dim, at).sub_(c))
        return _from_channel_view(g, dim), None, None


class _LabelMixMSE(torch.autograd.Function):
    """mean((d_mixed - where(mask, d_real, d_fake))^2): `labelmix_loss` with its one
    difference buffer reused for the gradients (autograd's version holds seven logits-sized
    temporaries). A 0/1 mask selects exactly what `mask * a + (1 - mask) * b` computes."""

    @staticmethod
    def forward(ctx, mask, d_mixed, d_fake, d_real):
        (mixed, dim), fake, real = (_channel_last_view(d_mixed), _channel_last_view(d_fake)[0],
                                    _channel_last_view(d_real)[0])
        sel = (mask != 0).permute(0, 2, 3, 1) if dim == 3 else mask != 0  # broadcasts over C
        diff = torch.where(sel, real, fake).neg_().add_(mixed)
        flat = diff.reshape(-1)
        ctx.dim = dim
        ctx.save_for_backward(sel, diff)
        return torch.dot(flat, flat) / flat.numel()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        _claim_backward(ctx)
        sel, diff = ctx.saved_tensors
        zero = diff.new_zeros(())
        g_mixed = diff.mul_(grad * (2.0 / diff.numel()))
        g_fake = torch.where(sel, zero, g_mixed).neg_() if ctx.needs_input_grad[2] else None
        g_real = torch.where(sel, g_mixed, zero).neg_() if ctx.needs_input_grad[3] else None
        return (None,) + tuple(None if g is None else _from_channel_view(g, ctx.dim)
                               for g in (g_mixed, g_fake, g_real))


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
                  d_real: torch.Tensor, fused: bool = False) -> torch.Tensor:
    """Consistency: D(mix(real, fake)) should equal mix(D(real), D(fake)), MSE on raw logits.

    `fused`: the same loss through `_LabelMixMSE` (one logits-sized buffer)."""
    if fused and _fusable(d_mixed, d_fake, d_real):
        return _LabelMixMSE.apply(mask, d_mixed.float(), d_fake.float(), d_real.float())
    target = mask * d_real + (1 - mask) * d_fake
    return F.mse_loss(d_mixed.float(), target.float())


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
            from .weights import load_state_dict_file

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


def generator_loss(d_fake: torch.Tensor, label: torch.Tensor, balancing: bool = True,
                   dontcare: Optional[int] = 0, fused: bool = False) -> torch.Tensor:
    return n1_loss(d_fake, label, True, balancing, dontcare, fused)


def discriminator_losses(d_fake: torch.Tensor, d_real: torch.Tensor, label: torch.Tensor,
                         balancing: bool = True, dontcare: Optional[int] = 0, fused: bool = False
                         ) -> Tuple[torch.Tensor, torch.Tensor]:
    return (n1_loss(d_fake, label, False, fused=fused),
            n1_loss(d_real, label, True, balancing, dontcare, fused))
