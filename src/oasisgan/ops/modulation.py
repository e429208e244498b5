"""`modulate`: SPADE's `normalized * (1 + gamma(actv)) + beta(actv)`, optionally followed by the
residual block's 1x1 shortcut conv.

Reference: the two convs and the arithmetic as written (`project(out)` when given). Fast (same
function up to float re-association):
- gamma's and beta's convs run as one conv with concatenated weights, `1 +` folded into gamma's
  bias, `addcmul`; on Winograd tiles in float32 CPU inference (`winograd.py`);
- `project`, a bias-free 1x1 conv with fewer outputs than inputs (the shortcut's conv_s), is
  linear, so its share over beta runs inside beta's conv with the composed weight:
  `project(n * g + b) = conv(n * g, W_s) + conv(actv, W_s @ W_beta) + W_s @ b_beta`, fout instead
  of fin outputs, where the map is large enough for that to beat composing the weights
  (`tuning.FOLD_SHORTCUT_FACTOR`). Its spectral norm's power iteration runs once, as in a call.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import tuning, winograd
from .dispatch import choose


def _fold_pays(project: nn.Conv2d, pixels: int) -> bool:
    """The FLOPs folding saves per pixel, 9 * hidden * (fin - fout), exceed composing the weights,
    9 * hidden * fin * fout, with a margin."""
    fin, fout = project.in_channels, project.out_channels
    return (fout < fin and project.kernel_size == (1, 1) and project.bias is None
            and pixels * (fin - fout) > tuning.FOLD_SHORTCUT_FACTOR * fin * fout)


def _gamma_beta(actv: torch.Tensor, gamma: nn.Conv2d, beta_w: torch.Tensor, beta_b: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor]:
    """(1 + gamma(actv), conv(actv, beta_w, beta_b)) as one convolution where that pays."""
    nc = gamma.out_channels
    b, _, h, w = actv.shape
    fmt = tuning.memory_format(b * h * w)
    square3 = gamma.kernel_size == (3, 3) and gamma.padding == (1, 1)
    tile = winograd.applicable(actv.permute(0, 2, 3, 1), gamma.weight, nc + beta_w.shape[0]) if square3 else 0
    if not tile:
        actv = actv.contiguous(memory_format=fmt)
        if b * h * w * 2 * nc < 2 * gamma.weight.numel():
            # small map, large weights: concatenating them would cost more than it saves
            return (F.conv2d(actv, gamma.weight, gamma.bias + 1, padding=gamma.padding),
                    F.conv2d(actv, beta_w, beta_b, padding=gamma.padding))
    weight = torch.cat((gamma.weight, beta_w), dim=0)
    bias = torch.cat((gamma.bias + 1, beta_b), dim=0)
    if tile:
        gb = winograd.conv3x3_padded(winograd.padded(actv.permute(0, 2, 3, 1)), weight, bias, tile)
        gb = gb.contiguous(memory_format=fmt)
    else:
        gb = F.conv2d(actv, weight, bias, padding=gamma.padding)
    return gb[:, :nc], gb[:, nc:]


def modulate(normalized: torch.Tensor, actv: torch.Tensor, gamma: nn.Conv2d, beta: nn.Conv2d,
             project: Optional[nn.Conv2d] = None, impl: Optional[str] = None) -> torch.Tensor:
    """`normalized * (1 + gamma(actv)) + beta(actv)`, then `project(...)` when given.

    `gamma`, `beta`: convs of the same shape (bias, padding k//2); `project`: a conv module (with
    `effective_weight()`, see `nn.layers.Conv2d`)."""
    if choose(impl, actv) == "ref":
        out = normalized * (1 + gamma(actv)) + beta(actv)
        return out if project is None else project(out)
    b, _, h, w = actv.shape
    if project is not None and _fold_pays(project, b * h * w):
        w_s = project.effective_weight()                                   # (fout, fin, 1, 1)
        beta_w = torch.einsum("of,fchw->ochw", w_s[:, :, 0, 0], beta.weight)
        gamma1, beta_s = _gamma_beta(actv, gamma, beta_w, w_s[:, :, 0, 0] @ beta.bias)
        return F.conv2d(normalized * gamma1, w_s).add_(beta_s)
    gamma1, beta_out = _gamma_beta(actv, gamma, beta.weight, beta.bias)
    out = torch.addcmul(beta_out, normalized, gamma1)
    return out if project is None else project(out)
