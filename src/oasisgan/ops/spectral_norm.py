"""`sn_conv2d`: a convolution with the official (torch's old-style) spectral norm.

Reference, as `torch.nn.utils.spectral_norm`'s hook: in training mode one power iteration updates
the `u`/`v` buffers in place, then `conv2d(x, weight_orig / sigma) + bias` with
`sigma = u . (W v)`. Fast: the same power iteration and sigma, and where the conv's output is
smaller than its weight, `conv2d(x, weight_orig) / sigma + bias`: the same function up to float
rounding, without a weight-sized division forward and several weight-sized passes backward.
Both honour `batched.parts` (one power iteration and one sigma per part).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .batched import current_parts
from .conv import conv2d
from .dispatch import choose


def sigma(weight: torch.Tensor, u: torch.Tensor, v: torch.Tensor, power_iteration: bool,
          eps: float = 1e-12) -> torch.Tensor:
    """The largest singular value of weight (as a (out, -1) matrix) estimated from u and v, after
    one power iteration on them (in place) when `power_iteration`: torch's `compute_weight`."""
    mat = weight.flatten(1)
    if power_iteration:
        with torch.no_grad():
            v = F.normalize(torch.mv(mat.t(), u), dim=0, eps=eps, out=v)
            u = F.normalize(torch.mv(mat, v), dim=0, eps=eps, out=u)
            # autograd keeps these; the next call's in-place update must not change them
            u = u.clone(memory_format=torch.contiguous_format)
            v = v.clone(memory_format=torch.contiguous_format)
    return torch.dot(u, torch.mv(mat, v))


def sn_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], u: torch.Tensor,
              v: torch.Tensor, training: bool, padding: int = 0, up: bool = False, eps: float = 1e-12,
              impl: Optional[str] = None) -> torch.Tensor:
    """conv2d(x, weight / sigma, bias, padding, up) with a power iteration when `training`."""
    parts = current_parts()
    if parts is not None and sum(parts) != x.shape[0]:
        raise ValueError(f"batched parts {parts} do not add up to the batch of {x.shape[0]}")
    sigmas = [sigma(weight, u, v, training, eps) for _ in (parts or (None,))]
    impl = choose(impl, x)
    out_numel = x.shape[0] * weight.shape[0] * x.shape[2] * x.shape[3] * (4 if up else 1)
    if impl == "fast" and out_numel < weight.numel():
        scale = sigmas[0] if parts is None else \
            torch.cat([s.reshape(1).expand(n) for s, n in zip(sigmas, parts)]).view(-1, 1, 1, 1)
        out = conv2d(x, weight, None, padding, up, impl) / scale
        return out if bias is None else out + bias.view(1, -1, 1, 1)
    if parts is None:
        return conv2d(x, weight / sigmas[0], bias, padding, up, impl)
    return torch.cat([conv2d(p, weight / s, bias, padding, up, impl)
                      for p, s in zip(x.split(list(parts)), sigmas)])
