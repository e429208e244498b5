"""The OASIS discriminator: a U-Net segmentation network with N+1 output channels."""
from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn as nn

from .layers import conv, init_weights, settle_spectral_norms


def discriminator_widths(ch: int, num_blocks: int) -> List[int]:
    """Official encoder widths 3,128,128,256,256,512,512 for ch=64 (they are fixed there)."""
    base = [2 * ch, 2 * ch, 4 * ch, 4 * ch, 8 * ch, 8 * ch]
    body = base[:num_blocks] if num_blocks <= len(base) else base + [8 * ch] * (num_blocks - len(base))
    return [3] + body


class ResidualBlockD(nn.Module):
    """`up_or_down` < 0: AvgPool after conv2; > 0: LeakyReLU + nearest x2 before conv1. The first
    block has no pre-activation and pools its shortcut before the 1x1 conv, the others after.
    Up blocks upsample inside their convs (`up=True`: the op may fold the upsampling into the
    kernel); `conv1.1` is where the official code has its `nn.Upsample` (keys stay `conv1.2.*`)."""

    def __init__(self, fin: int, fout: int, up_or_down: int, first: bool, use_sn: bool):
        super().__init__()
        self.up_or_down, self.first = up_or_down, first
        self.learned_shortcut = fin != fout
        fmiddle = fout
        up = up_or_down > 0 and not first
        if first:
            self.conv1 = nn.Sequential(conv(fin, fmiddle, 3, padding=1, spectral_norm=use_sn))
        elif up:
            self.conv1 = nn.Sequential(nn.LeakyReLU(0.2), nn.Identity(),
                                       conv(fin, fmiddle, 3, padding=1, up=True, spectral_norm=use_sn))
        else:
            self.conv1 = nn.Sequential(nn.LeakyReLU(0.2), conv(fin, fmiddle, 3, padding=1, spectral_norm=use_sn))
        self.conv2 = nn.Sequential(nn.LeakyReLU(0.2), conv(fmiddle, fout, 3, padding=1, spectral_norm=use_sn))
        if self.learned_shortcut:
            self.conv_s = conv(fin, fout, 1, up=up, spectral_norm=use_sn)
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
            return self.conv_s(x) if self.learned_shortcut else self.sampling(x)  # conv_s upsamples
        if self.learned_shortcut:
            x = self.conv_s(x)
        if self.up_or_down < 0:
            x = self.sampling(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dx = self.conv2(self.conv1(x))
        if self.up_or_down < 0:
            dx = self.sampling(dx)
        return self.shortcut(x) + dx


class Discriminator(nn.Module):
    """forward(image (B,3,H,W) in [-1,1]) -> logits (B, N+1, H, W); channel 0 is "fake".

    Encoder of down blocks, decoder of up blocks that take the encoder's output at their
    resolution concatenated (skip connections), then a 1x1 conv to N+1 channels.
    """

    def __init__(self, semantic_nc: int, channels: int = 64, num_blocks: int = 6,
                 spectral_norm: bool = True, init: bool = True, sn_init_gain: Optional[float] = None):
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
        self.layer_up_last = conv(channels, semantic_nc + 1, 1)
        if init:
            init_weights(self, sn_gain=sn_init_gain)
            settle_spectral_norms(self)

    @classmethod
    def from_config(cls, cfg, init: bool = True) -> "Discriminator":
        return cls(cfg.semantic_nc, cfg.channels_D, cfg.num_res_blocks, cfg.spectral_norm, init=init,
                   sn_init_gain=cfg.sn_init_gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.body_down:
            x = block(x)
            skips.append(x)
        x = self.body_up[0](x)
        for i in range(1, len(self.body_down)):
            x = self.body_up[i](torch.cat((skips[-i - 1], x), dim=1))
        return self.layer_up_last(x)
