"""`conv2d`: the networks' stride-1 convolution, optionally of the input upsampled 2x (nearest).

Reference: `F.conv2d(F.interpolate(x, scale_factor=2) if up else x, weight, bias, padding=...)`.
Fast (same function up to float re-association):
- the activation layout of `tuning.memory_format` (channels_last on large maps);
- `up` with a 3x3 kernel: `nearest2x_conv3x3`, a transposed convolution with summed taps on x
  itself (16 instead of 36 multiply-adds per input pixel, no upsampled tensor); with a 1x1
  kernel: the conv first, then the upsampling (they commute: 4x fewer FLOPs);
- 3x3 convolutions in float32 CPU inference: Winograd F(4x4, 3x3) (`winograd.py`).

`layout(x)`: x in that layout (the reference: x itself), for the normalisations and elementwise
ops between the convolutions: on operands of mixed layouts (a contiguous block input, the
channels_last SPADE maps) they run strided, 2-4x slower (256x256 inference: ~15% of the time).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from . import tuning, winograd
from .dispatch import choose


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


def _fold_upsampling(x: torch.Tensor) -> bool:
    """Where the folded 3x3 kernel pays (preparing it costs more on small maps)."""
    autocast = torch.is_autocast_enabled("cpu")
    low = tuning.FUSE_UPSAMPLING_MIN_PIXELS_AUTOCAST if autocast else tuning.FUSE_UPSAMPLING_MIN_PIXELS
    return x.shape[0] * x.shape[2] * x.shape[3] >= low


def upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


def layout(x: torch.Tensor, impl: Optional[str] = None) -> torch.Tensor:
    """x (B, C, H, W) in the fast ops' activation layout at its size (`tuning.memory_format`):
    the same values; the reference returns x."""
    if x.dim() != 4 or choose(impl, x) == "ref":
        return x
    return x.contiguous(memory_format=tuning.memory_format(x.shape[0] * x.shape[2] * x.shape[3]))


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
           padding: int = 0, up: bool = False, impl: Optional[str] = None) -> torch.Tensor:
    """F.conv2d(x, weight, bias, padding=padding), of x upsampled 2x (nearest) when `up`."""
    if choose(impl, x) == "ref":
        return F.conv2d(upsample(x) if up else x, weight, bias, padding=padding)
    k = weight.shape[-1]
    scale = 4 if up else 1
    x = x.contiguous(memory_format=tuning.memory_format(x.shape[0] * x.shape[2] * x.shape[3] * scale))
    if up:
        if k == 1 and padding == 0:
            return upsample(F.conv2d(x, weight, bias))
        if k == 3 and padding == 1 and _fold_upsampling(x):
            return nearest2x_conv3x3(x, weight, bias)
        x = upsample(x)
    if k == 3 and padding == 1:
        tile = winograd.applicable(x.permute(0, 2, 3, 1), weight)
        if tile:
            out = winograd.conv3x3(x, weight, bias, tile)
            return out if x.is_contiguous(memory_format=torch.channels_last) else out.contiguous()
    return F.conv2d(x, weight, bias, padding=padding)
