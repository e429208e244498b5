"""Building blocks shared by the generator and the discriminator, as the official code has them."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
from torch.nn.utils.spectral_norm import SpectralNorm


def spectral_norm(module: nn.Module, enabled: bool = True) -> nn.Module:
    """The official code's old-style spectral norm (`weight_orig`, `weight_u`, `weight_v` keys)."""
    return nn.utils.spectral_norm(module) if enabled else module


def param_free_norm(kind: str, channels: int) -> nn.Module:
    """SPADE's parameter-free normalisation. `syncbatch` is a BatchNorm2d that becomes a
    SyncBatchNorm under DistributedDataParallel (identical in a single process)."""
    if kind in ("batch", "syncbatch"):
        return nn.BatchNorm2d(channels, affine=False)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    raise ValueError(f"unknown param-free norm {kind!r}: use batch, syncbatch or instance")


def init_weights(net: nn.Module, gain: float = 0.02, sn_gain: Optional[float] = None) -> None:
    """The official initialisation: xavier_normal_(gain) on conv/linear weights, zero biases.

    Under old-style spectral norm `module.weight` shares storage with `weight_orig`, so the
    official in-place init reaches the parameter; we write `weight_orig` directly instead.
    `sn_gain` (default: `gain`, as the official code) is the gain of the spectral-normed
    weights. Spectral norm divides their scale out of the function, so it only sets Adam's
    relative step size: at 0.02 the weights are ~1e-3 and the first steps of lr 4e-4 turn them
    round (docs/quality.md).
    """
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            sn = hasattr(m, "weight_orig")
            w = m.weight_orig if sn else m.weight
            nn.init.xavier_normal_(w.data, gain=sn_gain if sn and sn_gain is not None else gain)
            if m.bias is not None:
                nn.init.constant_(m.bias.data, 0.0)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            nn.init.normal_(m.weight.data, 1.0, gain)
            nn.init.constant_(m.bias.data, 0.0)


@torch.no_grad()
def settle_spectral_norms(net: nn.Module, iterations: int = 10) -> None:
    """Run power iterations on every spectral-normed weight of a fresh network.

    The official networks start with random `u`/`v` vectors, so in eval mode (no power
    iteration) their sigma estimate is arbitrary and a fresh generator can return inf/NaN.
    Converging `u`/`v` first makes a fresh network finite in eval mode; training then
    continues the same power iteration as the official code.
    """
    for m in net.modules():
        for hook in list(m._forward_pre_hooks.values()):
            if isinstance(hook, SpectralNorm):
                w = getattr(m, hook.name + "_orig")
                u = getattr(m, hook.name + "_u")
                v = getattr(m, hook.name + "_v")
                mat = hook.reshape_weight_to_matrix(w)
                for _ in range(iterations):
                    v.copy_(nn.functional.normalize(torch.mv(mat.t(), u), dim=0, eps=hook.eps))
                    u.copy_(nn.functional.normalize(torch.mv(mat, v), dim=0, eps=hook.eps))
                sigma = torch.dot(u, torch.mv(mat, v))
                setattr(m, hook.name, w / sigma)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
