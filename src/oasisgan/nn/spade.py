"""SPADE: spatially-adaptive (de)normalisation conditioned on the noise + label map.

Two code paths compute the same function:

* the plain path, `SPADE.forward(x, seg)`, is the official computation: resize the
  concatenated (noise, one-hot) map to x's size, 3x3 conv to 128 + ReLU, two 3x3 convs;
* the fast path, `SPADE.forward_fast(x, index)`, used by the generator when `fast_spade` is on,
  takes a `LabelIndex` (integer label ids at x's resolution, built once per resolution and
  shared by every SPADE layer there) and computes the same numbers with far less work:

  - the shared conv over the one-hot channels is a gather of kernel columns: for each pixel and
    kernel tap the weight column of the label found under that tap, summed over the taps
    (`F.embedding_bag(mode="sum")`; its backward is a scatter-add into the weight);
  - the broadcast noise z (B, z_dim) is constant over the image, so its contribution is
    one vector per image and kernel tap; the pixels whose kernel leaves the image (zero padding)
    see only some taps, so each pixel gets the sum over its valid taps, one of 16 "border
    classes" (for a 3x3 kernel) -- folded, with the bias, into the same embedding_bag;
  - a spatial z (B, z_dim, H, W) keeps a dense conv over the z channels only;
  - the gamma and beta convs are one conv (weights concatenated on the fly, so the parameters
    and state-dict keys stay the official ones), and `1 +` is folded into gamma's bias.

  Outputs and gradients equal the plain path's up to float re-association
  (tests/test_perf_equivalence.py checks 1e-5 relative).
"""
from __future__ import annotations

import contextlib
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import winograd
from .layers import param_free_norm


class LabelIndex:
    """Integer label indices for label convolutions at one resolution (see `label_conv`).

    Built once per resolution and kernel size per generator forward; shared by all the SPADE
    layers (and the generator's `fc`) at that resolution.

    idx: (P, T) int64, P = B*h*w pixels, T = k*k taps: `tap * N + id` of the label under each tap,
        or `T * N` (a zero row) where the tap falls into the zero padding.
    cls: (P, 1) int64 border class of each pixel offset by its image (`b * C + class`), or None
        when z is spatial. taps: (C, T) float, 1 where a tap lies inside the image for that class.
    z: (B, z_dim) broadcast noise, or None. z_map: (B, z_dim, h, w) spatial noise, or None.
    """

    __slots__ = ("idx", "cls", "taps", "z", "z_map", "shape", "num_classes", "kernel_size", "ids",
                 "_sparse", "memory_format")

    def __init__(self, ids: torch.Tensor, num_classes: int, kernel_size: int,
                 z: Optional[torch.Tensor] = None, z_map: Optional[torch.Tensor] = None):
        b, h, w = ids.shape
        k, p = kernel_size, kernel_size // 2
        n, t = num_classes, kernel_size * kernel_size
        self.shape, self.num_classes, self.kernel_size = (b, h, w), n, k
        self.z, self.z_map, self.ids, self._sparse = z, z_map, ids, None
        self.memory_format = torch.channels_last  # layout of the activations made from it
        padded = F.pad(ids, (p, p, p, p), value=-1)
        cols = []
        for tap in range(t):
            di, dj = divmod(tap, k)
            sl = padded[:, di:di + h, dj:dj + w]
            cols.append(torch.where(sl < 0, t * n, sl + tap * n))
        self.idx = torch.stack(cols, dim=-1).reshape(b * h * w, t)
        if z_map is not None:
            self.cls, self.taps = None, None
            return
        # Border classes: along one axis, row i sees taps d in [-min(i,p), min(h-1-i,p)].
        dev = ids.device
        r = torch.arange(h, device=dev)
        c = torch.arange(w, device=dev)
        p1 = p + 1
        rcls = torch.clamp(r, max=p) * p1 + torch.clamp(h - 1 - r, max=p)   # (h,)
        ccls = torch.clamp(c, max=p) * p1 + torch.clamp(w - 1 - c, max=p)   # (w,)
        ncls_axis = p1 * p1
        pix = (rcls[:, None] * ncls_axis + ccls[None, :]).reshape(1, h * w)
        nc = ncls_axis * ncls_axis
        self.cls = (pix + torch.arange(b, device=dev)[:, None] * nc).reshape(b * h * w, 1)
        # valid[a, bb, d]: offset d - p inside [-a, bb]
        a = torch.arange(p1, device=dev)
        d = torch.arange(k, device=dev) - p
        valid = (d[None, None, :] >= -a[:, None, None]) & (d[None, None, :] <= a[None, :, None])
        valid = valid.reshape(ncls_axis, k)                                   # axis class -> taps
        self.taps = (valid[:, None, :, None] & valid[None, :, None, :]).reshape(nc, t).float()

    @property
    def num_border_classes(self) -> int:
        return 0 if self.taps is None else self.taps.shape[0]

    def sparse(self, max_fraction: float) -> Optional["SparseIndex"]:
        """The boundary/interior split for `SPADE`'s sparse modulation, or None when it does not
        apply (spatial noise) or more than `max_fraction` of the pixels are boundary pixels."""
        if self.z_map is not None or max_fraction <= 0:
            return None
        if self._sparse is None:
            self._sparse = SparseIndex(self)
        sp = self._sparse
        return sp if sp.fraction <= max_fraction else None


class SparseIndex:
    """Where a SPADE layer's gamma/beta are constant.

    With broadcast (or no) noise, the SPADE hidden activation at a pixel depends only on the
    labels under its k x k window (and which taps are inside the image); gamma/beta at a pixel
    depend on the labels of its (2k-1) x (2k-1) window. Where that window lies inside the image
    and holds a single class c, gamma/beta equal a per-(image, class) constant. Only the other,
    "boundary" pixels need the convolution, computed there as gathered patches @ weights.

    sel: (P,) row of each pixel in cat(constant rows (B*N), boundary rows (nb)).
    patches: (nb, T) rows of the zero-padded activation map (B*(h+2p)*(w+2p) rows) under each tap.
    """

    __slots__ = ("sel", "patches", "num_boundary", "fraction")

    def __init__(self, index: LabelIndex):
        ids = index.ids
        b, h, w = index.shape
        n, k = index.num_classes, index.kernel_size
        p = k // 2
        r = 2 * p
        padded = F.pad(ids.to(torch.float32), (r, r, r, r), value=-1.0)[:, None]
        hi = F.max_pool2d(padded, 2 * r + 1, stride=1)[:, 0]
        lo = -F.max_pool2d(-padded, 2 * r + 1, stride=1)[:, 0]
        boundary = (hi != lo).reshape(-1)                                       # (P,)
        const_row = (ids + torch.arange(b, device=ids.device)[:, None, None] * n).reshape(-1)
        rank = torch.cumsum(boundary, 0) - 1
        self.sel = torch.where(boundary, b * n + rank, const_row)
        where = torch.nonzero(boundary).squeeze(1)                               # (nb,)
        self.num_boundary = int(where.numel())
        self.fraction = self.num_boundary / max(1, boundary.numel())
        hp, wp = h + 2 * p, w + 2 * p
        bi, rem = where // (h * w), where % (h * w)
        base = bi * (hp * wp) + (rem // w) * wp + rem % w                       # top-left tap
        dev = ids.device
        offs = (torch.arange(k, device=dev)[:, None] * wp + torch.arange(k, device=dev)[None, :])
        self.patches = base[:, None] + offs.reshape(1, k * k)


def _autocast_dtype(device_type: str) -> Optional[torch.dtype]:
    if device_type in ("cpu", "cuda") and torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


def label_conv_nhwc(weight: torch.Tensor, bias: Optional[torch.Tensor], index: LabelIndex,
                    interior: bool = False) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """conv2d(cat(z, onehot(ids)), weight, bias, padding=k//2) without the dense one-hot.

    `weight` is (O, z_dim + N, k, k) (noise channels first, as the official code) or (O, N, k, k)
    without noise. Returns the result as (B, h, w, O) and, when `interior` is set (broadcast or
    no noise only), the (B, N, O) value at a pixel whose whole window lies inside the image on
    one class.
    """
    b, h, w = index.shape
    n, k = index.num_classes, index.kernel_size
    t = k * k
    o, cin = weight.shape[0], weight.shape[1]
    zd = cin - n
    dev_type = weight.device.type
    amp = _autocast_dtype(dev_type)
    ctx = torch.autocast(dev_type, enabled=False) if amp is not None else contextlib.nullcontext()
    inner = None
    with ctx:
        # (T*N, O) kernel columns of the label channels, plus one zero row for the padding.
        lab = weight[:, zd:].permute(2, 3, 1, 0).reshape(t * n, o)
        rows = [lab, lab.new_zeros(1, o)]
        idx = index.idx
        zint = None
        if index.z_map is None:
            if zd > 0:
                if index.z is None:
                    raise ValueError("this convolution has noise channels: the index needs z")
                wz = weight[:, :zd].reshape(o, zd, t)
                v = torch.einsum("bz,ozt->bto", index.z.to(weight.dtype), wz)    # (B, T, O)
                extra = torch.einsum("ct,bto->bco", index.taps.to(weight.dtype), v)
                if bias is not None:
                    extra = extra + bias
                rows.append(extra.reshape(-1, o))
                idx = torch.cat((idx, index.cls + (t * n + 1)), dim=1)
                if interior:
                    zint = v.sum(1) if bias is None else v.sum(1) + bias          # (B, O)
            elif bias is not None:
                rows.append(bias.reshape(1, o))
                idx = torch.cat((idx, idx.new_full((idx.shape[0], 1), t * n + 1)), dim=1)
                if interior:
                    zint = bias.reshape(1, o)
        if interior:
            inner = lab.reshape(t, n, o).sum(0)[None]                              # (1, N, O)
            if zint is not None:
                inner = inner + zint[:, None]
            inner = inner.expand(b, n, o)
        table = torch.cat(rows, dim=0)
        if amp is not None:
            table = table.to(amp)
        out = F.embedding_bag(idx, table, mode="sum")                           # (P, O)
    out = out.reshape(b, h, w, o)
    if index.z_map is not None:
        wz = weight[:, :zd]
        out = out + F.conv2d(index.z_map, wz, bias, padding=k // 2).permute(0, 2, 3, 1)
    return out, inner


def label_conv(weight: torch.Tensor, bias: Optional[torch.Tensor], index: LabelIndex) -> torch.Tensor:
    """conv2d(cat(z, onehot(ids)), weight, bias, padding=k//2): (B, O, h, w), channels_last."""
    return label_conv_nhwc(weight, bias, index)[0].permute(0, 3, 1, 2)


class SPADE(nn.Module):
    """out = norm(x) * (1 + gamma(seg)) + beta(seg), with a parameter-free norm.

    Module and parameter names follow the official code (`first_norm`, `mlp_shared.0`,
    `mlp_gamma`, `mlp_beta`) so official state dicts load without renaming.
    """

    # Sparse modulation (fast path, broadcast noise) when at most this fraction of the pixels are
    # near a label boundary; 0 turns it off. A plain attribute: set it per instance or class.
    sparse_max_fraction: float = 0.0

    def __init__(self, norm_nc: int, label_nc: int, kernel_size: int = 3, hidden: int = 128,
                 norm: str = "syncbatch"):
        super().__init__()
        pw = kernel_size // 2
        self.first_norm = param_free_norm(norm, norm_nc)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, hidden, kernel_size, padding=pw), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, norm_nc, kernel_size, padding=pw)
        self.mlp_beta = nn.Conv2d(hidden, norm_nc, kernel_size, padding=pw)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        """The official computation; `seg` is the full-resolution (noise, one-hot) map."""
        normalized = self.first_norm(x)
        seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
        actv = self.mlp_shared(seg)
        gamma = self.mlp_gamma(actv)
        beta = self.mlp_beta(actv)
        return normalized * (1 + gamma) + beta

    def modulation(self, index: LabelIndex, beta_proj: Optional[torch.Tensor] = None
                   ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(1 + gamma, beta) from a LabelIndex at x's resolution, one fused conv.

        `beta_proj` (C_out, C): return `beta_proj @ beta` (C_out channels) instead of beta, by
        convolving with `beta_proj @ W_beta` (a following 1x1 conv folded in; fewer FLOPs when
        C_out < C)."""
        conv = self.mlp_shared[0]
        g, bt = self.mlp_gamma, self.mlp_beta
        nc = g.out_channels
        sp = None
        if beta_proj is None and index.kernel_size == g.kernel_size[0]:
            sp = index.sparse(self.sparse_max_fraction)
        if sp is None:
            raw = label_conv_nhwc(conv.weight, conv.bias, index)[0]             # (B, h, w, hid)
            out_nc = nc + (bt.out_channels if beta_proj is None else beta_proj.shape[0])
            tile = winograd.applicable(raw, g.weight, out_nc) if g.kernel_size == (3, 3) else 0
            if tile:
                actv = winograd.padded(raw, relu=True)                  # zero border for the conv
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
        weight = torch.cat((g.weight, bt.weight), dim=0)
        bias = torch.cat((g.bias + 1, bt.bias), dim=0)
        # Sparse: constant rows per (image, class) + patches @ weights at boundary pixels.
        b, h, w = index.shape
        k = index.kernel_size
        p = k // 2
        raw, inner = label_conv_nhwc(conv.weight, conv.bias, index, interior=True)
        actv = torch.relu(raw)                                                   # (B, h, w, hid)
        hid = actv.shape[-1]
        wmat = weight.permute(2, 3, 1, 0).reshape(k * k, hid, 2 * nc)            # (T, hid, 2nc)
        const = torch.addmm(bias, torch.relu(inner).reshape(-1, hid), wmat.sum(0))   # (B*N, 2nc)
        if sp.num_boundary:
            padded = F.pad(actv, (0, 0, p, p, p, p)).reshape(-1, hid)
            patches = F.embedding(sp.patches, padded).reshape(sp.num_boundary, k * k * hid)
            edge = torch.addmm(bias, patches, wmat.reshape(k * k * hid, 2 * nc))   # (nb, 2nc)
            rows = torch.cat((const, edge.to(const.dtype)), dim=0)
        else:
            rows = const
        gb = F.embedding(sp.sel, rows).reshape(b, h, w, 2 * nc).permute(0, 3, 1, 2)
        if index.memory_format is not torch.channels_last:
            gb = gb.contiguous(memory_format=index.memory_format)
        return gb.split(nc, dim=1)

    def forward_fast(self, x: torch.Tensor, index: LabelIndex) -> torch.Tensor:
        """Same result as `forward(x, seg)`, from a shared LabelIndex at x's resolution."""
        normalized = self.first_norm(x)
        gamma1, beta = self.modulation(index)
        return torch.addcmul(beta, normalized, gamma1)
