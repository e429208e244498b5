"""The OASIS discriminator: a U-Net segmentation network with N+1 output channels."""
from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import (SNConv2d, init_weights, set_fast_spectral_norm, settle_spectral_norms,
                     spectral_norm)


def discriminator_widths(ch: int, num_blocks: int) -> List[int]:
    """Official encoder widths 3,128,128,256,256,512,512 for ch=64 (they are fixed there)."""
    base = [2 * ch, 2 * ch, 4 * ch, 4 * ch, 8 * ch, 8 * ch]
    body = base[:num_blocks] if num_blocks <= len(base) else base + [8 * ch] * (num_blocks - len(base))
    return [3] + body


class ResidualBlockD(nn.Module):
    """`up_or_down` < 0: AvgPool after conv2; > 0: LeakyReLU + nearest x2 before conv1."""

    def __init__(self, fin: int, fout: int, up_or_down: int, first: bool, use_sn: bool):
        super().__init__()
        self.up_or_down, self.first = up_or_down, first
        self.learned_shortcut = fin != fout
        fmiddle = fout
        if first:
            self.conv1 = nn.Sequential(spectral_norm(nn.Conv2d(fin, fmiddle, 3, 1, 1), use_sn))
        elif up_or_down > 0:
            self.conv1 = nn.Sequential(nn.LeakyReLU(0.2), nn.Upsample(scale_factor=2),
                                       spectral_norm(nn.Conv2d(fin, fmiddle, 3, 1, 1), use_sn))
        else:
            self.conv1 = nn.Sequential(nn.LeakyReLU(0.2), spectral_norm(nn.Conv2d(fin, fmiddle, 3, 1, 1), use_sn))
        self.conv2 = nn.Sequential(nn.LeakyReLU(0.2), spectral_norm(nn.Conv2d(fmiddle, fout, 3, 1, 1), use_sn))
        if self.learned_shortcut:
            self.conv_s = spectral_norm(nn.Conv2d(fin, fout, 1, 1, 0), use_sn)
        if up_or_down > 0:
            self.sampling = nn.Upsample(scale_factor=2)
        elif up_or_down < 0:
            self.sampling = nn.AvgPool2d(2)
        else:
            self.sampling = nn.Sequential()

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.first:
            if self.up_or_down < 0:
                x = self.sampling(x)
            if self.learned_shortcut:
                x = self.conv_s(x)
            return x
        if self.up_or_down > 0:
            x = self.sampling(x)
        if self.learned_shortcut:
            x = self.conv_s(x)
        if self.up_or_down < 0:
            x = self.sampling(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample_fused(x):
            return self.forward_fused(x)
        dx = self.conv2(self.conv1(x))
        if self.up_or_down < 0:
            dx = self.sampling(dx)
        return self.shortcut(x) + dx

    # Set by Discriminator.fast: up blocks fold their nearest 2x upsampling into conv1 on maps
    # of at least this many input pixels (batch included; under autocast `..._autocast`). Below,
    # the transposed convolution's kernel preparation costs more than it saves (measured).
    fuse_upsampling = False
    fuse_min_pixels = 1024
    fuse_min_pixels_autocast = 4096

    def upsample_fused(self, x: torch.Tensor) -> bool:
        conv = self.conv1[-1] if self.up_or_down > 0 and not self.first else None
        if not (self.fuse_upsampling and isinstance(conv, SNConv2d) and x.device.type == "cpu"
                and x.dim() == 4 and conv.kernel_size == (3, 3) and conv.padding == (1, 1)
                and conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
                and conv.padding_mode == "zeros" and not torch.jit.is_tracing()
                and not torch.compiler.is_compiling()):
            return False
        low = self.fuse_min_pixels_autocast if torch.is_autocast_enabled("cpu") else self.fuse_min_pixels
        return x.shape[0] * x.shape[2] * x.shape[3] >= low

    def forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        """`forward` of an up block without upsampling any tensor: conv1 over the upsampled
        input is computed on the input (`nearest2x_conv3x3`: a transposed convolution, 16
        instead of 36 taps per input pixel) and the 1x1 shortcut conv runs before the
        upsampling, which it commutes with."""
        act, _, conv = self.conv1
        dx = self.conv2(conv.upsampled(act(x)))
        x_s = self.conv_s(x) if self.learned_shortcut else x
        return F.interpolate(x_s, scale_factor=2, mode="nearest") + dx


class Discriminator(nn.Module):
    """forward(image (B,3,H,W) in [-1,1]) -> logits (B, N+1, H, W); channel 0 is "fake"."""

    def __init__(self, semantic_nc: int, channels: int = 64, num_blocks: int = 6,
                 spectral_norm: bool = True, init: bool = True, fast: bool = True,
                 sn_init_gain: Optional[float] = None):
        super().__init__()
        self.semantic_nc, self.num_blocks = semantic_nc, num_blocks
        self.channels = c = discriminator_widths(channels, num_blocks)
        self.body_down = nn.ModuleList(
            ResidualBlockD(c[i], c[i + 1], -1, i == 0, spectral_norm) for i in range(num_blocks))
        up = [ResidualBlockD(c[-1], c[-2], 1, False, spectral_norm)]
        for i in range(1, num_blocks - 1):
            up.append(ResidualBlockD(2 * c[-1 - i], c[-2 - i], 1, False, spectral_norm))
        up.append(ResidualBlockD(2 * c[1], channels, 1, False, spectral_norm))
        self.body_up = nn.ModuleList(up)
        self.layer_up_last = nn.Conv2d(channels, semantic_nc + 1, 1, 1, 0)
        if init:
            init_weights(self, sn_gain=sn_init_gain)
            settle_spectral_norms(self)
        self.fast = fast

    @property
    def fast(self) -> bool:
        """Exact output-scaled spectral norm on the wide low-resolution convs (nn/layers.py);
        False computes weight / sigma as the official code. Follows `cfg.fast_spade`."""
        return self.__dict__.get("_fast", False)

    @fast.setter
    def fast(self, value: bool) -> None:
        self.__dict__["_fast"] = bool(value)
        set_fast_spectral_norm(self, value)
        for block in self.body_up:
            block.fuse_upsampling = bool(value)

    @classmethod
    def from_config(cls, cfg, init: bool = True) -> "Discriminator":
        return cls(cfg.semantic_nc, cfg.channels_D, cfg.num_res_blocks, cfg.spectral_norm, init=init,
                   fast=getattr(cfg, "fast_spade", True), sn_init_gain=cfg.sn_init_gain)

    # Activation layout with `fast` on, as the generator's: "auto" (channels_last for maps of at
    # least `channels_last_min_pixels` pixels, batch included, where its kernels are faster;
    # NCHW below), "channels_last" or "contiguous". Layout never changes the math.
    memory_format: str = "auto"
    channels_last_min_pixels: int = 4096

    def _layout(self, x: torch.Tensor, scale: int = 1) -> torch.Tensor:
        """x in the layout for convolutions at `scale` times its size."""
        if not self.fast or self.memory_format == "contiguous" or torch.jit.is_tracing() \
                or torch.compiler.is_compiling() or x.device.type != "cpu":
            return x  # (GPUs: the layout of the inputs, as `channels_last` in the config sets it)
        if self.memory_format == "channels_last" or \
                x.shape[0] * x.shape[2] * x.shape[3] * scale * scale >= self.channels_last_min_pixels:
            return x.contiguous(memory_format=torch.channels_last)
        return x.contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.body_down:
            x = block(self._layout(x))
            skips.append(x)
        x = self.body_up[0](self._layout(x, 2))
        for i in range(1, len(self.body_down)):
            skip, x = self._layout(skips[-i - 1], 2), self._layout(x, 2)
            x = self.body_up[i](torch.cat((skip, x), dim=1))
        return self.layer_up_last(x)
