"""Convolutions of the reference modules, computed faster: spectral norm scaled on the output,
Winograd, nearest-2x upsampling folded into the kernel, per-batch-part spectral norms.

Reference: a spectral-normed conv (torch's old-style hook) runs one power iteration in training
mode, then `conv2d(x, weight_orig / sigma) + bias`. Here `sn_conv` runs the same power iteration
on the same `u`/`v` buffers (`sn_sigma` is the hook's `compute_weight`), and where the output is
smaller than the weight computes `conv2d(x, weight_orig) / sigma + bias`: the same function up to
float rounding, without a weight-sized division forward and several weight-sized passes backward.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.spectral_norm import SpectralNorm

from . import winograd


def _sn_hook(conv: nn.Module) -> Optional[SpectralNorm]:
    for hook in conv._forward_pre_hooks.values():
        if isinstance(hook, SpectralNorm) and hook.name == "weight":
            return hook
    return None


def sn_sigma(conv: nn.Module, hook: SpectralNorm) -> torch.Tensor:
    """sigma as torch's hook computes it, with its power iteration (training mode) on u and v."""
    weight, u, v = conv.weight_orig, conv.weight_u, conv.weight_v
    weight_mat = hook.reshape_weight_to_matrix(weight)
    if conv.training:
        with torch.no_grad():
            for _ in range(hook.n_power_iterations):
                v = F.normalize(torch.mv(weight_mat.t(), u), dim=0, eps=hook.eps, out=v)
                u = F.normalize(torch.mv(weight_mat, v), dim=0, eps=hook.eps, out=u)
            if hook.n_power_iterations > 0:
                u = u.clone(memory_format=torch.contiguous_format)
                v = v.clone(memory_format=torch.contiguous_format)
    return torch.dot(u, torch.mv(weight_mat, v))


def nearest2x_conv3x3(x: torch.Tensor, weight: torch.Tensor,
                      bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """conv2d(nearest 2x upsampling of x, weight, bias, padding=1), computed on x itself.

    Output row 2i+a sees input rows i-1, i (a = 0) or i, i+1 (a = 1), through kernel rows summed
    where two of them land on the same input row: w0 | w1+w2 and w0+w1 | w2 (columns likewise).
    That is a transposed convolution with stride 2, padding 1 and the 4x4 kernel whose taps are
    w2, w1+w2, w0+w1, w0 along each axis: 16 instead of 36 multiply-adds per input pixel and
    output channel, the same sums re-associated, and no upsampled tensor in either pass."""
    w = weight
    rows = torch.stack((w[:, :, 2], w[:, :, 1] + w[:, :, 2], w[:, :, 0] + w[:, :, 1], w[:, :, 0]), 2)
    kernel = torch.stack((rows[..., 2], rows[..., 1] + rows[..., 2], rows[..., 0] + rows[..., 1],
                          rows[..., 0]), 3)                              # (O, C, 4, 4)
    return F.conv_transpose2d(x, kernel.transpose(0, 1), bias, stride=2, padding=1)


def conv(module: nn.Conv2d, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
         upsample: bool = False) -> torch.Tensor:
    """`module`'s convolution with this weight and bias; `upsample`: of x upsampled 2x (nearest).
    3x3 stride-1 convs take Winograd inside `winograd.allowed()` where it applies."""
    if upsample:
        return nearest2x_conv3x3(x, weight, bias)
    if (module.kernel_size == (3, 3) and module.stride == (1, 1) and module.padding == (1, 1)
            and module.dilation == (1, 1) and module.groups == 1 and module.padding_mode == "zeros"):
        tile = winograd.applicable(x.permute(0, 2, 3, 1), weight)
        if tile:
            out = winograd.conv3x3(x, weight, bias, tile)
            return out if x.is_contiguous(memory_format=torch.channels_last) else out.contiguous()
    return F.conv2d(x, weight, bias, module.stride, module.padding, module.dilation, module.groups)


def _output_smaller(module: nn.Conv2d, x: torch.Tensor, upsample: bool) -> bool:
    out = x.shape[0] * module.out_channels * x.shape[2] * x.shape[3] * (4 if upsample else 1)
    return module.stride == (1, 1) and module.groups == 1 and out < module.weight_orig.numel()


def sn_conv(module: nn.Conv2d, x: torch.Tensor, upsample: bool = False,
            groups: Optional[Sequence[int]] = None) -> torch.Tensor:
    """`module(x)` (of x upsampled 2x with `upsample`), spectral norm included.

    `groups`: x is the concatenation of batches of these sizes, and each gets what a call of its
    own would give: one power iteration per part, in order, each part scaled by its own sigma."""
    hook = _sn_hook(module)
    if hook is None:
        return conv(module, x, module.weight, module.bias, upsample)
    sigmas = [sn_sigma(module, hook) for _ in (groups or [None])]  # one power iteration per part
    if _output_smaller(module, x, upsample):
        scale = sigmas[0] if groups is None else \
            torch.cat([s.reshape(1).expand(n) for s, n in zip(sigmas, groups)]).view(-1, 1, 1, 1)
        out = conv(module, x, module.weight_orig, None, upsample) / scale
        return out if module.bias is None else out + module.bias.view(1, -1, 1, 1)
    if groups is None:
        return conv(module, x, module.weight_orig / sigmas[0], module.bias, upsample)
    return torch.cat([conv(module, part, module.weight_orig / s, module.bias, upsample)
                      for part, s in zip(x.split(list(groups)), sigmas)])


def sn_weight(module: nn.Conv2d) -> torch.Tensor:
    """The weight `module(x)` would use, its power iteration run as that call would run it."""
    hook = _sn_hook(module)
    return module.weight if hook is None else module.weight_orig / sn_sigma(module, hook)
