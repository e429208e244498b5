"""The losses' reductions over the (B, N+1, H, W) logits: `cross_entropy` (the N+1 loss) and
`labelmix_mse` (LabelMix's consistency term); `oasisgan.losses` builds the paper's losses on them.

Reference: autograd's composition (`F.cross_entropy` then weights and mean; `mask * a + (1 - mask)
* b` then `F.mse_loss`), about ten logits-sized temporaries per D step plus layout copies of
channels_last logits. Fast: autograd Functions that keep one buffer per loss and turn it into the
gradient in place; channels_last logits are read as (B, H, W, C). The same values up to float
rounding, on any device; one backward per forward (a second raises: use impl="ref").
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from .dispatch import choose

__all__ = ["cross_entropy", "labelmix_mse", "WeightedCrossEntropy", "LabelMixMSE"]


def channel_last_view(x: torch.Tensor) -> Tuple[torch.Tensor, int]:
    """x (B, C, H, W) with its channel dimension: a (B, H, W, C) view of channels_last tensors,
    so that softmax and gathers over C run over contiguous memory."""
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return x.permute(0, 2, 3, 1), 3
    return x, 1


def from_channel_view(x: torch.Tensor, dim: int) -> torch.Tensor:
    return x.permute(0, 3, 1, 2) if dim == 3 else x


def _fusable(*tensors: torch.Tensor) -> bool:
    """4-d maps of one layout."""
    return all(t.dim() == 4 for t in tensors) and len({channel_last_view(t)[1] for t in tensors}) == 1


def claim_backward(ctx) -> None:
    """Fused losses reuse their saved buffers for the gradient: a second backward through the
    same graph (retain_graph=True) would read overwritten values, so it raises instead."""
    if getattr(ctx, "consumed", False):
        raise RuntimeError("the fused OASIS losses support one backward pass per forward; "
                           "use impl='ref' (fused_losses: false) to backpropagate through them twice")
    ctx.consumed = True


class WeightedCrossEntropy(torch.autograd.Function):
    """mean_p w_p * CE(logits_p, target_p), w = 1 when weight is None.

    Autograd's composition (log_softmax, nll, mul, mean) holds four logits-sized tensors: the
    log-softmax, nll's zero-filled gradient, log_softmax's gradient, and on channels_last logits
    contiguous copies of the input and the gradient. Here the log-softmax buffer becomes the
    gradient in place: exp(lsm) * c - c at the target, c = g * w / numel, the same values."""

    @staticmethod
    def forward(ctx, logits, target, weight):
        view, dim = channel_last_view(logits)
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
        claim_backward(ctx)
        lsm, target, weight = ctx.saved_tensors
        dim = ctx.dim
        scale = grad / target.numel()
        c = (scale * weight if weight is not None else scale.expand(target.shape)).unsqueeze(dim)
        at = target.unsqueeze(dim)  # one target per pixel: scatter_ (deterministic on GPUs too)
        g = lsm.exp_().mul_(c)
        g.scatter_(dim, at, g.gather(dim, at).sub_(c))
        return from_channel_view(g, dim), None, None


class LabelMixMSE(torch.autograd.Function):
    """mean((d_mixed - where(mask, d_real, d_fake))^2): `labelmix_loss` with its one
    difference buffer reused for the gradients (autograd's version holds seven logits-sized
    temporaries). A 0/1 mask selects exactly what `mask * a + (1 - mask) * b` computes."""

    @staticmethod
    def forward(ctx, mask, d_mixed, d_fake, d_real):
        (mixed, dim), fake, real = (channel_last_view(d_mixed), channel_last_view(d_fake)[0],
                                    channel_last_view(d_real)[0])
        sel = (mask != 0).permute(0, 2, 3, 1) if dim == 3 else mask != 0  # broadcasts over C
        diff = torch.where(sel, real, fake).neg_().add_(mixed)
        flat = diff.reshape(-1)
        ctx.dim = dim
        ctx.save_for_backward(sel, diff)
        return torch.dot(flat, flat) / flat.numel()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        claim_backward(ctx)
        sel, diff = ctx.saved_tensors
        zero = diff.new_zeros(())
        g_mixed = diff.mul_(grad * (2.0 / diff.numel()))
        g_fake = torch.where(sel, zero, g_mixed).neg_() if ctx.needs_input_grad[2] else None
        g_real = torch.where(sel, g_mixed, zero).neg_() if ctx.needs_input_grad[3] else None
        return (None,) + tuple(None if g is None else from_channel_view(g, ctx.dim)
                               for g in (g_mixed, g_fake, g_real))


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None,
                  impl: Optional[str] = None) -> torch.Tensor:
    """mean over pixels of `weight * CE(logits, target)` (weight None: 1); logits (B, C, H, W)."""
    if choose(impl, logits, cpu_only=False) == "fast" and _fusable(logits):
        return WeightedCrossEntropy.apply(logits, target, weight)
    loss = F.cross_entropy(logits, target, reduction="none")
    if weight is not None:
        loss = loss * weight
    return loss.mean()


def labelmix_mse(mask: torch.Tensor, d_mixed: torch.Tensor, d_fake: torch.Tensor, d_real: torch.Tensor,
                 impl: Optional[str] = None) -> torch.Tensor:
    """MSE(d_mixed, mask * d_real + (1 - mask) * d_fake) for a 0/1 mask (B, 1, H, W)."""
    if choose(impl, d_mixed, cpu_only=False) == "fast" and _fusable(d_mixed, d_fake, d_real):
        return LabelMixMSE.apply(mask, d_mixed, d_fake, d_real)
    return F.mse_loss(d_mixed, mask * d_real + (1 - mask) * d_fake)
