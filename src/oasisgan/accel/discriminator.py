"""`FastDiscriminator`: the reference `Discriminator` with CPU kernels, computing the same function.

What differs from `nn/discriminator.py` (each equal up to float re-association):
- spectral norm is applied to the conv output where that is smaller than the weight (`convs.py`);
- up blocks compute conv1 over the nearest-2x upsampled input on the input itself (a transposed
  convolution, 16 instead of 36 taps per input pixel) and run the 1x1 shortcut conv before the
  upsampling, which it commutes with;
- `groups`: one call over the concatenation of several batches gives what one call per batch
  would (per-part spectral norms; D has no batch statistics): the D step's three calls as one;
- activations are channels_last on large maps.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..nn.discriminator import Discriminator, ResidualBlockD
from . import tuning
from .convs import sn_conv
from .generator import traced


def _layers(seq: nn.Sequential, x: torch.Tensor, groups, upsample: bool = False) -> torch.Tensor:
    """seq(x) with its conv through `sn_conv`; `upsample`: skip seq's Upsample and let the conv fold it."""
    for layer in seq:
        if isinstance(layer, nn.Conv2d):
            x = sn_conv(layer, x, upsample=upsample, groups=groups)
        elif not (upsample and isinstance(layer, nn.Upsample)):
            x = layer(x)
    return x


def _fuse_upsampling(block: ResidualBlockD, x: torch.Tensor) -> bool:
    conv = block.conv1[-1]
    if block.up_or_down <= 0 or block.first or conv.kernel_size != (3, 3) or conv.padding != (1, 1):
        return False
    autocast = torch.is_autocast_enabled("cpu")
    low = tuning.FUSE_UPSAMPLING_MIN_PIXELS_AUTOCAST if autocast else tuning.FUSE_UPSAMPLING_MIN_PIXELS
    return x.shape[0] * x.shape[2] * x.shape[3] >= low


def block_forward(block: ResidualBlockD, x: torch.Tensor, groups) -> torch.Tensor:
    if _fuse_upsampling(block, x):
        dx = _layers(block.conv2, _layers(block.conv1, x, groups, upsample=True), groups)
        x_s = sn_conv(block.conv_s, x, groups=groups) if block.learned_shortcut else x
        return F.interpolate(x_s, scale_factor=2, mode="nearest") + dx
    dx = _layers(block.conv2, _layers(block.conv1, x, groups), groups)
    if block.up_or_down < 0:
        dx = block.sampling(dx)
    # the reference shortcut, its conv through sn_conv (pool / upsample order as in nn/)
    x_s = x
    if block.first:
        if block.up_or_down < 0:
            x_s = block.sampling(x_s)
        if block.learned_shortcut:
            x_s = sn_conv(block.conv_s, x_s, groups=groups)
        return x_s + dx
    if block.up_or_down > 0:
        x_s = block.sampling(x_s)
    if block.learned_shortcut:
        x_s = sn_conv(block.conv_s, x_s, groups=groups)
    if block.up_or_down < 0:
        x_s = block.sampling(x_s)
    return x_s + dx


class FastDiscriminator(Discriminator):
    """A `Discriminator` (same parameters, same state dict) whose forward takes the CPU kernels.

    forward(x, groups=None): `groups`, batch sizes whose concatenation x is, makes one call give
    what one call per batch would. Accelerators, tracing and torch.compile take the reference
    forward (without `groups`: the caller then makes one call per batch)."""

    memory_format: str = "auto"  # auto | channels_last | contiguous (never changes the math)

    def forward(self, x: torch.Tensor, groups: Optional[Sequence[int]] = None) -> torch.Tensor:
        if (x.device.type != "cpu" and not tuning.ON_ACCELERATORS) or traced():
            if groups is not None:
                return torch.cat([super(FastDiscriminator, self).forward(p) for p in x.split(list(groups))])
            return super().forward(x)
        groups = None if groups is None else tuple(int(n) for n in groups)
        skips = []
        for block in self.body_down:
            x = block_forward(block, self._layout(x), groups)
            skips.append(x)
        x = block_forward(self.body_up[0], self._layout(x, 2), groups)
        for i in range(1, len(self.body_down)):
            skip, x = self._layout(skips[-i - 1], 2), self._layout(x, 2)
            x = block_forward(self.body_up[i], torch.cat((skip, x), dim=1), groups)
        return self.layer_up_last(x)

    def _layout(self, x: torch.Tensor, scale: int = 1) -> torch.Tensor:
        """x in the layout for convolutions at `scale` times its size."""
        if self.memory_format == "contiguous":
            return x
        big = x.shape[0] * x.shape[2] * x.shape[3] * scale * scale >= tuning.CHANNELS_LAST_MIN_PIXELS
        if self.memory_format == "channels_last" or big:
            return x.contiguous(memory_format=torch.channels_last)
        return x.contiguous()
