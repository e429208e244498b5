"""The OASIS generator: a SPADE residual decoder fed with 3D noise + one-hot labels."""
from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import ops
from .layers import LabelConv2d, conv, init_weights, settle_spectral_norms
from .spade import SPADE


def generator_widths(ch: int, num_blocks: int) -> List[int]:
    """Official widths [16,16,16,8,4,2,1]*ch for 6 blocks; other depths keep the tail."""
    base = [16 * ch, 16 * ch, 16 * ch, 8 * ch, 4 * ch, 2 * ch, ch]
    if num_blocks + 1 <= len(base):
        return base[len(base) - num_blocks - 1:]
    return [16 * ch] * (num_blocks + 1 - len(base)) + base


class ResnetBlockSPADE(nn.Module):
    """SPADE -> LeakyReLU -> 3x3 conv, twice; a learned shortcut (SPADE -> 1x1 conv) when the
    width changes. Spectral norm on the three convs. The LeakyReLU works in place (on SPADE's
    output, which nothing else reads): the same values without a map-sized temporary."""

    def __init__(self, fin: int, fout: int, seg_nc: int, spade_ks: int, spade_hidden: int,
                 norm: str, use_sn: bool):
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        self.conv_0 = conv(fin, fmiddle, 3, padding=1, spectral_norm=use_sn)
        self.conv_1 = conv(fmiddle, fout, 3, padding=1, spectral_norm=use_sn)
        if self.learned_shortcut:
            self.conv_s = conv(fin, fout, 1, bias=False, spectral_norm=use_sn)
        self.norm_0 = SPADE(fin, seg_nc, spade_ks, spade_hidden, norm)
        self.norm_1 = SPADE(fmiddle, seg_nc, spade_ks, spade_hidden, norm)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, seg_nc, spade_ks, spade_hidden, norm)
        self.activ = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor, seg: ops.LabelMap) -> torch.Tensor:
        x = ops.layout(x)  # one memory layout for the block's norms and elementwise ops
        x_s = self.norm_s(x, seg, project=self.conv_s) if self.learned_shortcut else x  # conv_s(norm_s(x))
        dx = self.conv_0(self.activ(self.norm_0(x, seg)))
        dx = self.conv_1(self.activ(self.norm_1(dx, seg)))
        return x_s + dx


class Generator(nn.Module):
    """OASIS generator.

    forward(label, z=None): `label` is the class ids (B, H, W) (integer), or a float map
    (B, N, H, W) (one-hot, or soft), H and W multiples of 2**(num_blocks-1); `z` is (B, z_dim),
    broadcast over the image, or (B, z_dim, H, W) for spatially varying noise. Without `z`, noise
    is drawn from `generator` (a torch.Generator, drawn on its own device and moved to the
    label's) or from the global RNG. The noise is concatenated before the one-hot label channels
    (`ops.LabelMap`) and feeds the first conv and every SPADE layer.
    """

    def __init__(self, semantic_nc: int, channels: int = 64, num_blocks: int = 6, z_dim: int = 64,
                 noise_3d: bool = True, spade_ks: int = 3, spade_hidden: int = 128,
                 norm: str = "syncbatch", spectral_norm: bool = True, init: bool = True,
                 sn_init_gain: Optional[float] = None, upsample: str = "nearest"):
        super().__init__()
        self.semantic_nc, self.z_dim, self.noise_3d = semantic_nc, z_dim, noise_3d
        self.spade_ks = spade_ks
        self.num_blocks = num_blocks
        self.channels = generator_widths(channels, num_blocks)
        seg_nc = semantic_nc + (z_dim if noise_3d else 0)
        self.fc = LabelConv2d(seg_nc, self.channels[0], 3, padding=1)
        self.body = nn.ModuleList(
            ResnetBlockSPADE(self.channels[i], self.channels[i + 1], seg_nc, spade_ks, spade_hidden,
                             norm, spectral_norm)
            for i in range(num_blocks))
        self.up = nn.Upsample(scale_factor=2) if upsample == "nearest" else \
            nn.Upsample(scale_factor=2, mode=upsample, align_corners=False)
        self.conv_img = conv(self.channels[-1], 3, 3, padding=1)
        if init:
            init_weights(self, sn_gain=sn_init_gain)
            settle_spectral_norms(self)

    @classmethod
    def from_config(cls, cfg, init: bool = True) -> "Generator":
        return cls(cfg.semantic_nc, cfg.channels_G, cfg.num_res_blocks, cfg.z_dim, cfg.noise_3d,
                   cfg.spade_ks, cfg.spade_hidden, cfg.param_free_norm, cfg.spectral_norm, init=init,
                   sn_init_gain=cfg.sn_init_gain, upsample=cfg.upsample_G)

    @property
    def size_multiple(self) -> int:
        return 2 ** (self.num_blocks - 1)

    def sample_z(self, batch: int, generator: Optional[torch.Generator] = None,
                 device=None) -> torch.Tensor:
        dev = generator.device if generator is not None else device
        z = torch.randn(batch, self.z_dim, generator=generator, device=dev)
        return z if device is None else z.to(device)

    def noise(self, label: torch.Tensor, z: Optional[torch.Tensor],
              generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """The checked noise: (B, z_dim) or (B, z_dim, H, W), drawn when `z` is None, in the
        label's dtype (a float label) or the network's (class ids)."""
        b, h, w = label.shape[0], label.shape[-2], label.shape[-1]
        if z is None:
            z = self.sample_z(b, generator, label.device)
        dtype = label.dtype if label.is_floating_point() else self.fc.weight.dtype
        z = z.to(device=label.device, dtype=dtype)
        if z.dim() == 2:
            if z.shape != (b, self.z_dim):
                raise ValueError(f"z has shape {tuple(z.shape)}, expected ({b}, {self.z_dim})")
            return z
        if z.dim() == 4 and z.shape == (b, self.z_dim, h, w):
            return z
        raise ValueError(f"z has shape {tuple(z.shape)}: expected ({b}, {self.z_dim}) or "
                         f"({b}, {self.z_dim}, {h}, {w})")

    def check_label(self, label: torch.Tensor) -> None:
        ids = label.dim() == 3 and not label.is_floating_point()
        if not ids and (label.dim() != 4 or label.shape[1] != self.semantic_nc or not label.is_floating_point()):
            raise ValueError(f"label must be class ids (B, H, W) or a one-hot float map "
                             f"(B, {self.semantic_nc}, H, W), got {label.dtype} {tuple(label.shape)}")
        m = self.size_multiple
        if label.shape[-2] % m or label.shape[-1] % m:
            raise ValueError(f"label size {label.shape[-2]}x{label.shape[-1]} is not a multiple of {m}")

    def forward(self, label: torch.Tensor, z: Optional[torch.Tensor] = None,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
        self.check_label(label)
        seg = ops.LabelMap(label, self.semantic_nc, self.noise(label, z, generator) if self.noise_3d else None)
        m = self.size_multiple
        x = self.fc(seg.at(label.shape[-2] // m, label.shape[-1] // m))
        for i, block in enumerate(self.body):
            x = block(x, seg)
            if i < self.num_blocks - 1:
                x = self.up(x)
        x = self.conv_img(F.leaky_relu(x, 2e-1))
        return torch.tanh(x)
