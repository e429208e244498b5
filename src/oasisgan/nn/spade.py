"""SPADE: spatially-adaptive (de)normalisation conditioned on the noise + label map."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import param_free_norm


class SPADE(nn.Module):
    """out = norm(x) * (1 + gamma(seg)) + beta(seg), with a parameter-free norm.

    `seg` is the full-resolution (noise, one-hot) map; it is resized to x's size (nearest), then
    a 3x3 conv to `hidden` channels + ReLU, and two 3x3 convs give gamma and beta. Module names
    follow the official code (`first_norm`, `mlp_shared.0`, `mlp_gamma`, `mlp_beta`).
    """

    def __init__(self, norm_nc: int, label_nc: int, kernel_size: int = 3, hidden: int = 128,
                 norm: str = "syncbatch"):
        super().__init__()
        pw = kernel_size // 2
        self.first_norm = param_free_norm(norm, norm_nc)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, hidden, kernel_size, padding=pw), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, norm_nc, kernel_size, padding=pw)
        self.mlp_beta = nn.Conv2d(hidden, norm_nc, kernel_size, padding=pw)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        normalized = self.first_norm(x)
        seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
        actv = self.mlp_shared(seg)
        gamma = self.mlp_gamma(actv)
        beta = self.mlp_beta(actv)
        return normalized * (1 + gamma) + beta
