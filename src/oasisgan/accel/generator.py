"""`FastGenerator`: the reference `Generator` with CPU kernels, computing the same function.

What differs from `nn/generator.py` (each equal up to float re-association):
- the label convolutions (`fc`, SPADE's `mlp_shared`) gather kernel columns by label id instead of
  convolving a dense one-hot (`label_conv.py`), from one `LabelIndex` per resolution;
- SPADE's gamma and beta convs run as one conv with `1 +` folded into gamma's bias, on Winograd
  tiles in float32 inference (`winograd.py`);
- the learned shortcut's 1x1 conv is folded into `norm_s`'s beta conv where that saves FLOPs
  (a 1x1 conv is linear: conv_s(n * g + b) = conv_s(n * g) + conv(actv, W_s @ W_beta));
- spectral norm is applied to the conv output where that is smaller than the weight (`convs.py`);
- activations are channels_last on large maps.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from ..nn.generator import Generator, ResnetBlockSPADE
from ..nn.spade import SPADE
from . import tuning, winograd
from .convs import sn_conv, sn_weight
from .label_conv import LabelIndex, label_conv, label_conv_nhwc, onehot_ids, resize_ids


def traced() -> bool:
    """Tracing, scripting, exporting or compiling: those take the reference path (torch 2.13, CPU:
    the compiled embedding_bag backward gave wrong weight gradients in our check)."""
    exporting = getattr(torch.compiler, "is_exporting", lambda: False)()
    return (torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export()
            or exporting or torch.compiler.is_compiling())


def spade_modulation(spade: SPADE, index: LabelIndex, beta_proj: Optional[torch.Tensor] = None
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
    """(1 + gamma, beta) from a LabelIndex at x's resolution, one fused conv.

    `beta_proj` (C_out, C): return `beta_proj @ beta` (C_out channels) instead of beta, by
    convolving with `beta_proj @ W_beta` (a following 1x1 conv folded in)."""
    conv, g, bt = spade.mlp_shared[0], spade.mlp_gamma, spade.mlp_beta
    nc = g.out_channels
    raw = label_conv_nhwc(conv.weight, conv.bias, index)                     # (B, h, w, hidden)
    out_nc = nc + (bt.out_channels if beta_proj is None else beta_proj.shape[0])
    tile = winograd.applicable(raw, g.weight, out_nc) if g.kernel_size == (3, 3) else 0
    if tile:
        actv = winograd.padded(raw, relu=True)                      # zero border for the conv
    else:
        actv = raw.permute(0, 3, 1, 2)
        # In place without autograd only: relu_ on this permuted view makes autograd clone it.
        actv = actv.relu_() if not torch.is_grad_enabled() else torch.relu(actv)
        if index.memory_format is not torch.channels_last:
            actv = actv.contiguous(memory_format=index.memory_format)
    if beta_proj is not None:
        beta_w = torch.einsum("of,fchw->ochw", beta_proj, bt.weight)
        beta_b = beta_proj @ bt.bias
    else:
        beta_w, beta_b = bt.weight, bt.bias
        b, h, w = index.shape
        if not tile and b * h * w * 2 * nc < 2 * g.weight.numel():
            # small map, large weights: concatenating them would cost more than it saves
            return (F.conv2d(actv, g.weight, g.bias + 1, padding=g.padding),
                    F.conv2d(actv, beta_w, beta_b, padding=bt.padding))
    weight = torch.cat((g.weight, beta_w), dim=0)
    bias = torch.cat((g.bias + 1, beta_b), dim=0)
    if tile:
        gb = winograd.conv3x3_padded(actv, weight, bias, tile)
        if index.memory_format is not torch.channels_last:
            gb = gb.contiguous(memory_format=index.memory_format)
    else:
        gb = F.conv2d(actv, weight, bias, padding=g.padding)
    return gb[:, :nc], gb[:, nc:]


def spade_forward(spade: SPADE, x: torch.Tensor, index: LabelIndex) -> torch.Tensor:
    gamma1, beta = spade_modulation(spade, index)
    return torch.addcmul(beta, spade.first_norm(x), gamma1)


def fold_shortcut(block: ResnetBlockSPADE, index: LabelIndex) -> bool:
    """Where folding conv_s into norm_s pays: the FLOPs saved per pixel, 9 * hidden * (fin - fout),
    exceed composing the weights, 9 * hidden * fin * fout, with a margin (tuning.py)."""
    conv = block.conv_s
    fin, fout = conv.in_channels, conv.out_channels
    b, h, w = index.shape
    return (fout < fin and conv.kernel_size == (1, 1) and conv.bias is None
            and b * h * w * (fin - fout) > tuning.FOLD_SHORTCUT_FACTOR * fin * fout)


def block_forward(block: ResnetBlockSPADE, x: torch.Tensor, index: LabelIndex) -> torch.Tensor:
    if not block.learned_shortcut:
        x_s = x
    elif fold_shortcut(block, index):
        w_s = sn_weight(block.conv_s)                                       # (fout, fin, 1, 1)
        gamma1, beta_s = spade_modulation(block.norm_s, index, beta_proj=w_s[:, :, 0, 0])
        x_s = F.conv2d(block.norm_s.first_norm(x) * gamma1, w_s).add_(beta_s)
    else:
        x_s = sn_conv(block.conv_s, spade_forward(block.norm_s, x, index))
    dx = sn_conv(block.conv_0, F.leaky_relu(spade_forward(block.norm_0, x, index), 0.2, inplace=True))
    dx = sn_conv(block.conv_1, F.leaky_relu(spade_forward(block.norm_1, dx, index), 0.2, inplace=True))
    return dx.add_(x_s)


class FastGenerator(Generator):
    """A `Generator` (same parameters, same state dict) whose forward takes the CPU kernels.

    forward(label, z=None, generator=None, ids=None): `ids` (B, H, W), the label's class ids, when
    the caller has them (the training step does), else they are read off an exactly one-hot label.
    Soft labels, accelerators, tracing, export and torch.compile take the reference forward."""

    winograd_tile: int = tuning.WINOGRAD_TILE  # F(m x m, 3x3) in float32 inference: 4, 2, 0 (off)
    memory_format: str = "auto"  # auto | channels_last | contiguous (never changes the math)

    def forward(self, label: torch.Tensor, z: Optional[torch.Tensor] = None,
                generator: Optional[torch.Generator] = None, ids: Optional[torch.Tensor] = None
                ) -> torch.Tensor:
        on_cpu = label.device.type == "cpu" or tuning.ON_ACCELERATORS
        if on_cpu and self.spade_ks % 2 and not traced():
            self.check_label(label)
            ids = onehot_ids(label) if ids is None else ids
            if ids is not None:
                with winograd.allowed(self.winograd_tile):
                    return self._forward(label, ids, z, generator)
        return super().forward(label, z, generator)

    def memory_format_at(self, batch: int, h: int, w: int) -> torch.memory_format:
        if self.memory_format != "auto":
            return torch.channels_last if self.memory_format == "channels_last" else torch.contiguous_format
        big = batch * h * w >= tuning.CHANNELS_LAST_MIN_PIXELS
        return torch.channels_last if big else torch.contiguous_format

    def _forward(self, label, ids, z, generator) -> torch.Tensor:
        zb = zmap = None
        if self.noise_3d:
            z = self.noise(label, z, generator)
            zb, zmap = (z, None) if z.dim() == 2 else (None, z)
        cache: Dict[Tuple[int, int, int], LabelIndex] = {}

        def index_at(h: int, w: int, k: int) -> LabelIndex:
            if (h, w, k) not in cache:
                zm = None if zmap is None else F.interpolate(zmap, size=(h, w), mode="nearest")
                index = LabelIndex(resize_ids(ids, h, w), self.semantic_nc, k, zb, zm)
                index.memory_format = self.memory_format_at(label.shape[0], h, w)
                cache[(h, w, k)] = index
            return cache[(h, w, k)]

        m = self.size_multiple
        h, w = label.shape[2] // m, label.shape[3] // m
        x = label_conv(self.fc.weight, self.fc.bias, index_at(h, w, self.fc.kernel_size[0]))
        for i, block in enumerate(self.body):
            index = index_at(h, w, self.spade_ks)
            x = block_forward(block, x.contiguous(memory_format=index.memory_format), index)
            if i < self.num_blocks - 1:
                x = self.up(x)
                h, w = 2 * h, 2 * w
        x = self.conv_img(F.leaky_relu(x, 2e-1))
        return torch.tanh(x)
