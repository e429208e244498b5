"""Small building blocks shared by the generator and the discriminator."""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.spectral_norm import SpectralNorm

from . import winograd


class _SpectralNorm(SpectralNorm):
    """torch's old-style SpectralNorm hook, with an exact fast variant.

    When the module's `sn_fast` is set and the conv's output is smaller than its weight (the
    wide low-resolution layers), the hook only runs the power iteration and computes sigma
    exactly as `SpectralNorm.compute_weight` does, and the conv computes
    `conv(x, weight_orig) / sigma + bias` instead of `conv(x, weight_orig / sigma) + bias`:
    the same function up to float rounding, without a weight-sized division forward and
    several weight-sized passes backward. Otherwise it is torch's hook, unchanged.
    """

    def sigma(self, module: nn.Module, do_power_iteration: bool) -> torch.Tensor:
        weight = getattr(module, self.name + "_orig")
        u = getattr(module, self.name + "_u")
        v = getattr(module, self.name + "_v")
        weight_mat = self.reshape_weight_to_matrix(weight)
        if do_power_iteration:
            with torch.no_grad():
                for _ in range(self.n_power_iterations):
                    v = nn.functional.normalize(torch.mv(weight_mat.t(), u), dim=0, eps=self.eps, out=v)
                    u = nn.functional.normalize(torch.mv(weight_mat, v), dim=0, eps=self.eps, out=u)
                if self.n_power_iterations > 0:
                    u = u.clone(memory_format=torch.contiguous_format)
                    v = v.clone(memory_format=torch.contiguous_format)
        return torch.dot(u, torch.mv(weight_mat, v))

    def __call__(self, module: nn.Module, inputs) -> None:
        # Not under torch.compile: sigma handed from the hook to forward through a module
        # attribute gave wrong gradients in compiled graphs (torch 2.13); compiled modules
        # use torch's own computation.
        groups = module.__dict__.get("_sn_groups")
        if groups is not None and not torch.compiler.is_compiling():
            # One power iteration (and sigma) per group, in order, as consecutive calls would.
            module._sn_sigma = None
            module._sn_group_sigmas = [self.sigma(module, do_power_iteration=module.training)
                                       for _ in groups]
        elif getattr(module, "sn_fast", False) and not torch.compiler.is_compiling() \
                and inputs[0].device.type == "cpu" and module.sn_output_smaller(inputs[0]):
            module._sn_sigma = self.sigma(module, do_power_iteration=module.training)
        else:
            module._sn_sigma = None
            super().__call__(module, inputs)


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


class SNConv2d(nn.Conv2d):
    """An nn.Conv2d under `spectral_norm` (the class is swapped in; keys and hooks as torch's)."""

    sn_fast = False

    def sn_output_smaller(self, x: torch.Tensor) -> bool:
        if x.dim() != 4 or self.stride != (1, 1) or self.groups != 1:
            return False
        out = x.shape[0] * self.out_channels * x.shape[2] * x.shape[3]
        if self.__dict__.get("_upsample_input"):
            out *= 4
        return out < self.weight_orig.numel()

    def upsampled(self, x: torch.Tensor) -> torch.Tensor:
        """self(nearest 2x upsampling of x) via `nearest2x_conv3x3` (3x3, stride 1, padding 1),
        with the spectral-norm hook run as for an ordinary call."""
        self._upsample_input = True
        try:
            return self(x)
        finally:
            self.__dict__.pop("_upsample_input", None)

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]):
        if self.__dict__.get("_upsample_input"):
            return nearest2x_conv3x3(x, weight, bias)
        if (x.dim() == 4 and self.stride == (1, 1) and self.padding == (1, 1)
                and self.dilation == (1, 1) and self.groups == 1 and self.padding_mode == "zeros"):
            tile = winograd.applicable(x.permute(0, 2, 3, 1), weight)  # inside winograd.allowed()
            if tile:
                out = winograd.conv3x3(x, weight, bias, tile)
                return out if x.is_contiguous(memory_format=torch.channels_last) else out.contiguous()
        return super()._conv_forward(x, weight, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sigmas = self.__dict__.pop("_sn_group_sigmas", None)
        if sigmas is not None:
            return self._forward_groups(x, sigmas)
        sigma = self.__dict__.get("_sn_sigma")
        if sigma is None:
            return super().forward(x)
        self._sn_sigma = None
        return self._conv_scaled(x, sigma)

    def _conv_scaled(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """conv(x, weight_orig) / sigma + bias: sigma a scalar, or one per sample (B, 1, 1, 1)."""
        out = self._conv_forward(x, self.weight_orig, None) / sigma
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)

    def _forward_groups(self, x: torch.Tensor, sigmas) -> torch.Tensor:
        """`spectral_norm_groups`: part k of the batch with its own sigma_k. Small outputs: one
        conv, each part's output divided by its sigma; large ones: one conv per part with
        weight / sigma_k, as torch's spectral norm (dividing a large output costs more)."""
        sizes = self._sn_groups
        if self.sn_output_smaller(x):
            scale = torch.cat([s.reshape(1).expand(n) for s, n in zip(sigmas, sizes)])
            return self._conv_scaled(x, scale.view(-1, 1, 1, 1))
        return torch.cat([self._conv_forward(part, self.weight_orig / s, self.bias)
                          for part, s in zip(x.split(list(sizes)), sigmas)])


def spectral_norm(module: nn.Module, enabled: bool = True) -> nn.Module:
    """The official code's (old-style) spectral norm: same math, same `weight_orig/_u/_v` keys.

    Convolutions get the exact fast variant of `_SpectralNorm`, off until `set_fast_spectral_norm`.
    """
    if not enabled:
        return module
    nn.utils.spectral_norm(module)
    if type(module) is nn.Conv2d:
        for key, hook in list(module._forward_pre_hooks.items()):
            if type(hook) is SpectralNorm:
                fast = _SpectralNorm.__new__(_SpectralNorm)
                fast.__dict__.update(hook.__dict__)
                module._forward_pre_hooks[key] = fast
        module.__class__ = SNConv2d
    return module


@contextlib.contextmanager
def spectral_norm_groups(net: nn.Module, sizes: Sequence[int]) -> Iterator[None]:
    """Make one forward over `torch.cat` of batches of these sizes compute what one call per
    batch would: each spectral-normed conv runs one power iteration per batch, in order, and
    scales each batch's output by its own sigma (`conv(x, W) / sigma_k + b`, exact up to float
    rounding). Valid for networks without batch statistics (the OASIS discriminator)."""
    convs = [m for m in net.modules() if isinstance(m, SNConv2d)]
    for m in convs:
        m._sn_groups = tuple(int(n) for n in sizes)
    try:
        yield
    finally:
        for m in convs:
            m.__dict__.pop("_sn_groups", None)


def set_fast_spectral_norm(net: nn.Module, enabled: bool) -> None:
    """Turn the exact output-scaled spectral norm on or off for every SNConv2d in `net`."""
    for m in net.modules():
        if isinstance(m, SNConv2d):
            m.sn_fast = bool(enabled)


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

    With old-style spectral norm `module.weight` shares storage with `weight_orig`, so the
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
        for hook in list(m._forward_pre_hooks.values()):
            if isinstance(hook, SpectralNorm):
                w = getattr(m, hook.name + "_orig")
                u = getattr(m, hook.name + "_u")
                v = getattr(m, hook.name + "_v")
                mat = hook.reshape_weight_to_matrix(w)
                for _ in range(iterations):
                    v.copy_(nn.functional.normalize(torch.mv(mat.t(), u), dim=0, eps=hook.eps))
                    u.copy_(nn.functional.normalize(torch.mv(mat, v), dim=0, eps=hook.eps))
                sigma = torch.dot(u, torch.mv(mat, v))
                setattr(m, hook.name, w / sigma)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
