"""3x3 convolutions by Winograd's minimal filtering F(m x m, 3 x 3), for CPU inference.

A direct 3x3 convolution spends 9 multiply-adds per output pixel and input channel. Winograd's
algorithm (Lavin & Gray 2016) transforms an m x m output tile's (m + 2)^2 input values, the
filters and the output so that the convolution becomes (m + 2)^2 independent matrix products:
36 / 16 = 2.25 multiply-adds per pixel for m = 4, 16 / 4 = 4 for m = 2. The transforms are
small fixed linear maps; in exact arithmetic the result is the convolution's.

Rounding in float32, against float64, on the generator's layers: F(4x4) ~1.3e-6 relative per
layer (points 0, 1, -1, 2, -1/2, which round less than the textbook 0, +-1, +-2), oneDNN's
direct convolution ~4e-7, F(2x2) ~3e-7; over the whole 256x256 generator F(4x4) gives ~2e-6,
as the direct fast path does (~3e-6): far inside the 1e-5 bound the fast path is held to.
F(4x4) is the default (1.3-2x faster per layer on the development CPU); F(2x2) rarely pays.

The transforms are built in float64 from the interpolation points (Toom-Cook); the input is
processed in chunks of tile rows so that the transformed tiles stay in cache, with one batched
matrix product per chunk.
"""
from __future__ import annotations

import functools
from fractions import Fraction
from typing import Optional, Tuple

import torch

from . import tuning

POINTS = {2: (0, 1, -1), 4: (0, 1, -1, 2, Fraction(-1, 2))}
TILE_CHOICES = (0, 2, 4)  # 0: off


@functools.lru_cache(maxsize=None)
def matrices(m: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B^T, G, A^T) in float64 for F(m, 3): y = A^T [(G g) * (B^T d)] for a tile d of m + 2."""
    points = POINTS[m]
    n = m + 2

    def evaluation(k: int) -> torch.Tensor:  # (n, k): a degree < k polynomial at each point
        rows = [[float(Fraction(p) ** i) for i in range(k)] for p in points]
        rows.append([0.0] * (k - 1) + [1.0])  # the point at infinity: the leading coefficient
        return torch.tensor(rows, dtype=torch.float64)

    at = evaluation(m).T.contiguous()
    assert points[1] == 1 and bool((at[:, 1] == 1).all())  # conv3x3_padded adds the bias there
    g = evaluation(3)
    bt = torch.linalg.inv(evaluation(n)).T.contiguous()
    scale = bt.abs().amax(dim=1, keepdim=True)  # keep B^T's entries small, G takes the scale
    return bt / scale, g * scale, at


@functools.lru_cache(maxsize=None)
def _kron(m: int, dtype: torch.dtype, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    bt, _, at = matrices(m)
    return torch.kron(bt, bt).to(dtype=dtype, device=device), torch.kron(at, at).to(dtype=dtype, device=device)


@functools.lru_cache(maxsize=None)
def _filter_transform(m: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    _, g, _ = matrices(m)
    return torch.kron(g, g).to(dtype=dtype, device=device)                 # (a*a, 9)


def transform_weight(weight: torch.Tensor, m: int) -> torch.Tensor:
    """(C_out, C_in, 3, 3) -> ((m + 2)^2, C_out, C_in): G w G^T per filter, as one matrix
    product in the weight's dtype (no transposing copy: `conv3x3_padded` reads it transposed)."""
    co, ci = weight.shape[:2]
    kg = _filter_transform(m, weight.dtype, weight.device)
    return torch.mm(kg, weight.detach().reshape(co * ci, 9).t()).view(-1, co, ci)


# Where it pays, measured on the generator's layers (2 CPU threads, float32; docs/performance.md):
# F(4x4) 1.3-2x faster than oneDNN's direct convolution from 32x32 maps up, not on 16x16 and
# below, nor below 128 input or output channels (128 -> 64 channels at 256x256: 0.9x).
# thresholds: oasisgan.ops.tuning (WINOGRAD_*)

def applicable(x: torch.Tensor, weight: torch.Tensor, out_channels: int = 0) -> int:
    """The tile m (`tuning.WINOGRAD_TILE`) for which `conv3x3_padded` computes
    F.conv2d(x, weight, padding=1), `x` given as (B, H, W, C), and pays, or 0: float32 on the CPU,
    no autograd or autocast, H and W divisible by m, at least WINOGRAD_MIN_PIXELS per image and
    WINOGRAD_MIN_CHANNELS in and out (`out_channels`, when given, overrides the weight's: weights
    concatenated into one convolution)."""
    limit = tuning.WINOGRAD_TILE
    if limit not in TILE_CHOICES:
        raise ValueError(f"Winograd tile {limit!r}: use one of {TILE_CHOICES} (0: off)")
    if not limit or x.dim() != 4 or weight.shape[2:] != (3, 3):
        return 0
    if x.device.type != "cpu" or x.dtype != torch.float32 or weight.dtype != torch.float32:
        return 0
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return 0
    if torch.is_autocast_enabled("cpu"):
        return 0
    if min(out_channels or weight.shape[0], weight.shape[1]) < tuning.WINOGRAD_MIN_CHANNELS:
        return 0
    h, w = x.shape[1:3]
    return limit if h % limit == 0 and w % limit == 0 and h * w >= tuning.WINOGRAD_MIN_PIXELS else 0


def padded(x: torch.Tensor, relu: bool = False) -> torch.Tensor:
    """(B, H, W, C) -> (B, H + 2, W + 2, C) with a zero border; `relu` is fused into the copy."""
    b, h, w, c = x.shape
    xp = x.new_empty(b, h + 2, w + 2, c)
    xp[:, 0].zero_()
    xp[:, -1].zero_()
    xp[:, 1:-1, 0].zero_()
    xp[:, 1:-1, -1].zero_()
    inner = xp[:, 1:-1, 1:-1]
    if relu:
        torch.clamp_min(x, 0, out=inner)
    else:
        inner.copy_(x)
    return xp


def conv3x3_padded(xp: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                   m: int) -> torch.Tensor:
    """F.conv2d(x, weight, bias, padding=1) for `xp` = x zero-padded by one pixel, laid out as
    (B, H + 2, W + 2, C) (any strides). Returns (B, C_out, H, W) in channels_last memory."""
    b, hp, wp, c = xp.shape
    h, w = hp - 2, wp - 2
    co = weight.shape[0]
    if h % m or w % m:
        raise ValueError(f"Winograd F({m}x{m}, 3x3) needs a map size divisible by {m}, got {h}x{w}")
    if xp.stride(3) != 1:
        xp = xp.contiguous()
    a = m + 2
    u = transform_weight(weight, m).transpose(1, 2)                  # (a*a, C, C_out)
    kin, kout = _kron(m, xp.dtype, xp.device)
    out = xp.new_empty(b, h, w, co)
    th, tw = h // m, w // m
    rows = max(1, min(th, tuning.WINOGRAD_CHUNK_TILES * torch.get_num_threads() // tw))
    sb, sh, sw, sc = xp.stride()
    for i in range(b):
        for r0 in range(0, th, rows):
            n = min(rows, th - r0)
            tiles = xp.as_strided((a, a, n, tw, c), (sh, sw, m * sh, m * sw, sc),
                                  xp.storage_offset() + i * sb + m * r0 * sh)
            v = torch.mm(kin, tiles.reshape(a * a, -1)).view(a * a, n * tw, c)
            prod = torch.bmm(v, u)                                   # (a*a, tiles, C_out)
            if bias is not None:  # A^T's column for the point 1 is all ones: bias reaches
                prod[a + 1].add_(bias)  # every output of the tile through that product
            y = torch.mm(kout, prod.view(a * a, -1)).view(m, m, n, tw, co)
            out[i, m * r0: m * (r0 + n)].view(n, m, tw, m, co).permute(1, 3, 0, 2, 4).copy_(y)
    return out.permute(0, 3, 1, 2)


def conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], m: int) -> torch.Tensor:
    """F.conv2d(x, weight, bias, padding=1) for a (B, C, H, W) tensor; channels_last output."""
    return conv3x3_padded(padded(x.permute(0, 2, 3, 1)), weight, bias, m)
