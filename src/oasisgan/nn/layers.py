"""Building blocks shared by the generator and the discriminator, as the official code has them:
the convolutions (their forwards are the `oasisgan.ops` ops), SPADE's normalisation, the init."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import ops


class Conv2d(nn.Conv2d):
    """nn.Conv2d (stride 1) whose forward is the `ops.conv2d` op; `up`: of its input upsampled 2x
    (nearest), as `nn.Upsample(scale_factor=2)` before the conv would."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0,
                 bias: bool = True, up: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, padding=padding, bias=bias)
        self.up = up

    def effective_weight(self) -> torch.Tensor:
        """The weight a call uses."""
        return self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.conv2d(x, self.weight, self.bias, self.padding[0], self.up)


class SNConv2d(Conv2d):
    """`Conv2d` with the official spectral norm, torch's old-style `nn.utils.spectral_norm`: the
    weight is `weight_orig / sigma`, sigma estimated from `weight_u`/`weight_v`, which one power
    iteration per call updates in training mode (`ops.sn_conv2d`). Same state-dict keys, same
    parameter order and the same random draws at construction as torch's."""

    eps = 1e-12

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        weight = self.weight
        with torch.no_grad():
            mat = weight.flatten(1)
            u = F.normalize(weight.new_empty(mat.shape[0]).normal_(0, 1), dim=0, eps=self.eps)
            v = F.normalize(weight.new_empty(mat.shape[1]).normal_(0, 1), dim=0, eps=self.eps)
        del self.weight
        self.register_parameter("weight_orig", weight)
        self.register_buffer("weight_u", u)
        self.register_buffer("weight_v", v)

    def effective_weight(self) -> torch.Tensor:
        """weight_orig / sigma, with the power iteration a call would run."""
        return self.weight_orig / ops.spectral_norm.sigma(self.weight_orig, self.weight_u, self.weight_v,
                                                         self.training, self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.sn_conv2d(x, self.weight_orig, self.bias, self.weight_u, self.weight_v, self.training,
                             self.padding[0], self.up, self.eps)


class LabelConv2d(nn.Conv2d):
    """nn.Conv2d over the generator's (noise, one-hot label) input, given as an `ops.LabelMap`:
    the `ops.label_conv` op (a gather by label id instead of a dense one-hot convolution)."""

    def forward(self, labels: ops.LabelMap) -> torch.Tensor:
        return ops.label_conv(labels, self.weight, self.bias)


def conv(in_channels: int, out_channels: int, kernel_size: int, padding: int = 0, bias: bool = True,
         up: bool = False, spectral_norm: bool = False) -> Conv2d:
    """A `Conv2d`, spectral-normed (`SNConv2d`) when `spectral_norm`."""
    cls = SNConv2d if spectral_norm else Conv2d
    return cls(in_channels, out_channels, kernel_size, padding=padding, bias=bias, up=up)


def param_free_norm(kind: str, channels: int) -> nn.Module:
    """SPADE's parameter-free normalisation. `syncbatch` is a BatchNorm2d that becomes a
    SyncBatchNorm under DistributedDataParallel (identical in a single process)."""
    if kind in ("batch", "syncbatch"):
        return nn.BatchNorm2d(channels, affine=False)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    raise ValueError(f"unknown param-free norm {kind!r}: use batch, syncbatch or instance")


def init_weights(net: nn.Module, gain: float = 0.02, sn_gain: Optional[float] = None) -> None:
    """The official initialisation: xavier_normal_(gain) on conv/linear weights, zero biases.

    Under old-style spectral norm `module.weight` shares storage with `weight_orig`, so the
    official in-place init reaches the parameter; we write `weight_orig` directly instead.
    `sn_gain` (default: `gain`, as the official code) is the gain of the spectral-normed
    weights. Spectral norm divides their scale out of the function, so it only sets Adam's
    relative step size: at 0.02 the weights are ~1e-3 and the first steps of lr 4e-4 turn them
    round (docs/quality.md).
    """
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            sn = hasattr(m, "weight_orig")
            w = m.weight_orig if sn else m.weight
            nn.init.xavier_normal_(w.data, gain=sn_gain if sn and sn_gain is not None else gain)
            if m.bias is not None:
                nn.init.constant_(m.bias.data, 0.0)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            nn.init.normal_(m.weight.data, 1.0, gain)
            nn.init.constant_(m.bias.data, 0.0)


@torch.no_grad()
def settle_spectral_norms(net: nn.Module, iterations: int = 10) -> None:
    """Run power iterations on every spectral-normed weight of a fresh network.

    The official networks start with random `u`/`v` vectors, so in eval mode (no power
    iteration) their sigma estimate is arbitrary and a fresh generator can return inf/NaN.
    Converging `u`/`v` first makes a fresh network finite in eval mode; training then
    continues the same power iteration as the official code.
    """
    for m in net.modules():
        if isinstance(m, SNConv2d):
            for _ in range(iterations):
                ops.spectral_norm.sigma(m.weight_orig, m.weight_u, m.weight_v, True, m.eps)


@torch.no_grad()
def remove_spectral_norm(net: nn.Module) -> nn.Module:
    """Replace every `SNConv2d` of `net` by a `Conv2d` with its eval-mode weight
    `weight_orig / sigma` (stored u, v), in place: for export."""
    for parent in list(net.modules()):
        for name, m in list(parent.named_children()):
            if isinstance(m, SNConv2d):
                plain = Conv2d(m.in_channels, m.out_channels, m.kernel_size[0], m.padding[0],
                               m.bias is not None, m.up).to(m.weight_orig)
                plain.weight.copy_(m.weight_orig / ops.spectral_norm.sigma(
                    m.weight_orig, m.weight_u, m.weight_v, False, m.eps))
                if m.bias is not None:
                    plain.bias.copy_(m.bias)
                setattr(parent, name, plain.train(m.training))
    return net


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
