"""`label_conv`: the generator's convolutions over its (noise, one-hot label) input, and `LabelMap`.

Reference: `conv2d(cat(z, onehot(ids)), weight, bias, padding=k//2)` (the generator's `fc` and
every SPADE `mlp_shared` conv). Fast, without the dense one-hot, a gather of kernel columns: for
each pixel and kernel tap, the weight column of the label under that tap is summed over the taps (`F.embedding_bag(mode="sum")`; its backward is a
scatter-add into the weight). A broadcast noise z (B, z_dim) is constant over the image, so its
contribution is one vector per image and tap; pixels whose kernel leaves the image (zero padding)
see only some taps, so each pixel gets the sum over its valid taps, one of 16 "border classes" (3x3
kernel), folded with the bias into the same embedding_bag. A spatial z (B, z_dim, H, W) keeps a
dense conv over the z channels only. Equal up to float re-association (tests/test_ops.py).
"""
from __future__ import annotations

import contextlib
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from ..labels import one_hot
from .dispatch import choose


class LabelIndex:
    """Integer label indices for the fast label convolutions at one resolution, shared by `fc` and
    all SPADE layers there (built once per resolution and forward, see `LabelMap.index`).

    idx: (P, T) int64, P = B*h*w pixels, T = k*k taps: `tap * N + id` of the label under each tap,
        or `T * N` (a zero row) where the tap falls into the zero padding.
    cls: (P, 1) int64 border class of each pixel offset by its image (`b * C + class`), or None
        when z is spatial. taps: (C, T) float, 1 where a tap lies inside the image for that class.
    z: (B, z_dim) broadcast noise, or None. z_map: (B, z_dim, h, w) spatial noise, or None.
    """

    __slots__ = ("idx", "cls", "taps", "z", "z_map", "shape", "num_classes", "kernel_size")

    def __init__(self, ids: torch.Tensor, num_classes: int, kernel_size: int,
                 z: Optional[torch.Tensor] = None, z_map: Optional[torch.Tensor] = None):
        b, h, w = ids.shape
        k, p = kernel_size, kernel_size // 2
        n, t = num_classes, kernel_size * kernel_size
        self.shape, self.num_classes, self.kernel_size = (b, h, w), n, k
        self.z, self.z_map = z, z_map
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
        r, c, p1 = torch.arange(h, device=dev), torch.arange(w, device=dev), p + 1
        rcls = torch.clamp(r, max=p) * p1 + torch.clamp(h - 1 - r, max=p)   # (h,)
        ccls = torch.clamp(c, max=p) * p1 + torch.clamp(w - 1 - c, max=p)   # (w,)
        ncls_axis = p1 * p1
        pix = (rcls[:, None] * ncls_axis + ccls[None, :]).reshape(1, h * w)
        nc = ncls_axis * ncls_axis
        self.cls = (pix + torch.arange(b, device=dev)[:, None] * nc).reshape(b * h * w, 1)
        a = torch.arange(p1, device=dev)
        d = torch.arange(k, device=dev) - p
        valid = (d[None, None, :] >= -a[:, None, None]) & (d[None, None, :] <= a[None, :, None])
        valid = valid.reshape(ncls_axis, k)                                   # axis class -> taps
        self.taps = (valid[:, None, :, None] & valid[None, :, None, :]).reshape(nc, t).float()


def _autocast_dtype(device_type: str) -> Optional[torch.dtype]:
    if device_type in ("cpu", "cuda") and torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


def label_conv_nhwc(weight: torch.Tensor, bias: Optional[torch.Tensor], index: LabelIndex) -> torch.Tensor:
    """conv2d(cat(z, onehot(ids)), weight, bias, padding=k//2) as (B, h, w, O).

    `weight` is (O, z_dim + N, k, k) (noise channels first, as the official code) or (O, N, k, k)
    without noise."""
    b, h, w = index.shape
    n, k = index.num_classes, index.kernel_size
    t = k * k
    o, zd = weight.shape[0], weight.shape[1] - n
    dev_type = weight.device.type
    amp = _autocast_dtype(dev_type)
    ctx = torch.autocast(dev_type, enabled=False) if amp is not None else contextlib.nullcontext()
    with ctx:
        # (T*N, O) kernel columns of the label channels, plus one zero row for the padding.
        lab = weight[:, zd:].permute(2, 3, 1, 0).reshape(t * n, o)
        rows, idx = [lab, lab.new_zeros(1, o)], index.idx
        if index.z_map is None:
            if zd > 0:
                if index.z is None:
                    raise ValueError("this convolution has noise channels: the index needs z")
                v = torch.einsum("bz,ozt->bto", index.z.to(weight.dtype), weight[:, :zd].reshape(o, zd, t))
                extra = torch.einsum("ct,bto->bco", index.taps.to(weight.dtype), v)   # (B, C, O)
                if bias is not None:
                    extra = extra + bias
                rows.append(extra.reshape(-1, o))
                idx = torch.cat((idx, index.cls + (t * n + 1)), dim=1)
            elif bias is not None:
                rows.append(bias.reshape(1, o))
                idx = torch.cat((idx, idx.new_full((idx.shape[0], 1), t * n + 1)), dim=1)
        table = torch.cat(rows, dim=0)
        if amp is not None:
            table = table.to(amp)
        out = F.embedding_bag(idx, table, mode="sum").reshape(b, h, w, o)
    if index.z_map is not None:
        out = out + F.conv2d(index.z_map, weight[:, :zd], bias, padding=k // 2).permute(0, 2, 3, 1)
    return out


def resize_ids(ids: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Nearest resize of an integer id map (B, H, W), picking the pixels F.interpolate picks."""
    H, W = ids.shape[1:]
    if (h, w) == (H, W):
        return ids
    if H % h == 0 and W % w == 0:
        return ids[:, ::H // h, ::W // w]
    return F.interpolate(ids[:, None].double(), size=(h, w), mode="nearest")[:, 0].long()


class LabelMap:
    """The generator's condition: the label and the noise that the official code concatenates
    into one tensor, `cat(z_map, one_hot)` (`dense()`), kept apart so that label convolutions can
    gather by id instead of convolving the one-hot.

    `label`: class ids (B, H, W) (integer), or a dense float map (B, N, H, W) (one-hot or soft:
    label convolutions then take the reference). `z`: (B, z_dim) broadcast over the map,
    (B, z_dim, H, W), or None (no noise channels). `at(h, w)` is the nearest resize the official
    code applies to the concatenation, cached per size for the layers at that resolution.
    """

    def __init__(self, label: torch.Tensor, num_classes: int, z: Optional[torch.Tensor] = None):
        self.ids = None if label.is_floating_point() else label.long()
        self.map = label if label.is_floating_point() else None
        self.num_classes, self.z = num_classes, z
        self.size: Tuple[int, int] = tuple(label.shape[-2:])
        self._resized: Dict[Tuple[int, int], "LabelMap"] = {}
        self._index: Dict[int, LabelIndex] = {}

    def at(self, h: int, w: int) -> "LabelMap":
        if (h, w) == self.size:
            return self
        if (h, w) not in self._resized:
            z = self.z
            if z is not None and z.dim() == 4:
                z = F.interpolate(z, size=(h, w), mode="nearest")
            label = (resize_ids(self.ids, h, w) if self.ids is not None
                     else F.interpolate(self.map, size=(h, w), mode="nearest"))
            self._resized[(h, w)] = LabelMap(label, self.num_classes, z)
        return self._resized[(h, w)]

    def dense(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The official input: cat(z broadcast to the map, one-hot label), (B, z_dim + N, H, W)."""
        onehot = self.map if self.ids is None else one_hot(self.ids, self.num_classes, dtype)
        if self.z is None:
            return onehot
        z = self.z.to(onehot.dtype)
        if z.dim() == 2:
            z = z[:, :, None, None].expand(-1, -1, *self.size)
        return torch.cat((z, onehot), dim=1)

    def index(self, kernel_size: int) -> LabelIndex:
        if kernel_size not in self._index:
            zb, zmap = (self.z, None) if self.z is None or self.z.dim() == 2 else (None, self.z)
            self._index[kernel_size] = LabelIndex(self.ids, self.num_classes, kernel_size, zb, zmap)
        return self._index[kernel_size]


def label_conv(labels: LabelMap, weight: torch.Tensor, bias: Optional[torch.Tensor],
               impl: Optional[str] = None) -> torch.Tensor:
    """conv2d(labels.dense(), weight, bias, padding=k//2) (B, O, h, w): fast from label ids
    (an odd square kernel; the output in channels_last memory), else the reference."""
    k = weight.shape[-1]
    if labels.ids is not None and k % 2 and weight.shape[-2] == k and choose(impl, weight) == "fast":
        return label_conv_nhwc(weight, bias, labels.index(k)).permute(0, 3, 1, 2)
    return F.conv2d(labels.dense(weight.dtype), weight, bias, padding=k // 2)
