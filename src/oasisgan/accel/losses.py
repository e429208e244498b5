"""Fused CPU/GPU kernels of the OASIS losses (`oasisgan.losses` is the reference): the same
values as autograd's composition of the reference, with fewer logits-sized buffers. The
reference functions take them with ``fused=True`` (``cfg.fused_losses``); tests/test_losses.py
checks them against the reference. As for the networks, an edit of the reference losses turns
the kernels off (one warning) until they are re-checked and `VERIFIED_LOSSES` is updated
(`python -m oasisgan.accel` prints the new value)."""
from __future__ import annotations

import warnings
from typing import Tuple

import torch
from torch.autograd.function import once_differentiable

from . import source_fingerprint

__all__ = ["WeightedCrossEntropy", "LabelMixMSE", "fusable", "losses_fingerprint"]

# sha256 of the reference losses' source when tests/test_losses.py last passed against it.
VERIFIED_LOSSES = "8b1d4c3a2b13f6744efb9a2c80e3f5dc17cad5ed64ffb4d908729819dbde3c8a"
_fingerprint = None
_warned = False


def losses_fingerprint() -> str:
    """The fingerprint of the reference losses these kernels re-implement."""
    global _fingerprint
    if _fingerprint is None:
        from .. import losses

        _fingerprint = source_fingerprint((losses.n1_loss, losses.labelmix_loss))
    return _fingerprint


def _reference_unchanged() -> bool:
    global _warned
    fp = losses_fingerprint()
    if fp in (VERIFIED_LOSSES, "unknown"):
        return True
    if not _warned:
        warnings.warn("oasisgan.accel.losses: the reference losses in oasisgan/losses.py changed since "
                      "the fused kernels were checked against them; using the reference. Run "
                      "tests/test_losses.py, then set oasisgan.accel.losses.VERIFIED_LOSSES to "
                      f"{fp!r}", stacklevel=3)
        _warned = True
    return False


def channel_last_view(x: torch.Tensor) -> Tuple[torch.Tensor, int]:
    """x (B, C, H, W) with its channel dimension: a (B, H, W, C) view of channels_last tensors,
    so that softmax and gathers over C run over contiguous memory."""
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return x.permute(0, 2, 3, 1), 3
    return x, 1


def from_channel_view(x: torch.Tensor, dim: int) -> torch.Tensor:
    return x.permute(0, 3, 1, 2) if dim == 3 else x


def fusable(*tensors: torch.Tensor) -> bool:
    """Fused loss functions: 4-d maps of one layout, outside compiled and traced graphs, and only
    while the reference is the one they were checked against."""
    return (all(t.dim() == 4 for t in tensors) and not torch.jit.is_tracing()
            and not torch.compiler.is_compiling()
            and len({channel_last_view(t)[1] for t in tensors}) == 1 and _reference_unchanged())


def claim_backward(ctx) -> None:
    """Fused losses reuse their saved buffers for the gradient: a second backward through the
    same graph (retain_graph=True) would read overwritten values, so it raises instead."""
    if getattr(ctx, "consumed", False):
        raise RuntimeError("the fused OASIS losses support one backward pass per forward; "
                           "use fused_losses: false to backpropagate through them twice")
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
