"""SPADE: spatially-adaptive (de)normalisation conditioned on the noise + label map."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from .. import ops
from .layers import Conv2d, LabelConv2d, param_free_norm


class SPADE(nn.Module):
    """out = norm(x) * (1 + gamma(seg)) + beta(seg), with a parameter-free norm.

    `seg` is the (noise, one-hot) map (an `ops.LabelMap`); it is resized to x's size (nearest),
    then a 3x3 conv to `hidden` channels + ReLU, and two 3x3 convs give gamma and beta. Module
    names follow the official code (`first_norm`, `mlp_shared.0`, `mlp_gamma`, `mlp_beta`).
    """

    def __init__(self, norm_nc: int, label_nc: int, kernel_size: int = 3, hidden: int = 128,
                 norm: str = "syncbatch"):
        super().__init__()
        pw = kernel_size // 2
        self.first_norm = param_free_norm(norm, norm_nc)
        self.mlp_shared = nn.Sequential(LabelConv2d(label_nc, hidden, kernel_size, padding=pw), nn.ReLU())
        self.mlp_gamma = Conv2d(hidden, norm_nc, kernel_size, padding=pw)
        self.mlp_beta = Conv2d(hidden, norm_nc, kernel_size, padding=pw)

    def forward(self, x: torch.Tensor, seg: ops.LabelMap, project: Optional[nn.Module] = None) -> torch.Tensor:
        """`project`: a 1x1 conv applied to the output (the residual block's shortcut conv_s,
        which `ops.modulate` can fold into beta's conv)."""
        normalized = self.first_norm(x)
        actv = self.mlp_shared(seg.at(*x.shape[2:]))
        # normalized * (1 + mlp_gamma(actv)) + mlp_beta(actv), then project
        return ops.modulate(normalized, actv, self.mlp_gamma, self.mlp_beta, project)
