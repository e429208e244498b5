"""The OASIS generator: a SPADE residual decoder fed with 3D noise + one-hot labels."""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import winograd
from .layers import init_weights, set_fast_spectral_norm, settle_spectral_norms, spectral_norm
from .spade import SPADE, LabelIndex, label_conv


def generator_widths(ch: int, num_blocks: int) -> List[int]:
    """Official widths [16,16,16,8,4,2,1]*ch for 6 blocks; other depths keep the tail."""
    base = [16 * ch, 16 * ch, 16 * ch, 8 * ch, 4 * ch, 2 * ch, ch]
    if num_blocks + 1 <= len(base):
        return base[len(base) - num_blocks - 1:]
    return [16 * ch] * (num_blocks + 1 - len(base)) + base


class ResnetBlockSPADE(nn.Module):
    def __init__(self, fin: int, fout: int, seg_nc: int, spade_ks: int, spade_hidden: int,
                 norm: str, use_sn: bool):
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        self.conv_0 = spectral_norm(nn.Conv2d(fin, fmiddle, 3, padding=1), use_sn)
        self.conv_1 = spectral_norm(nn.Conv2d(fmiddle, fout, 3, padding=1), use_sn)
        if self.learned_shortcut:
            self.conv_s = spectral_norm(nn.Conv2d(fin, fout, 1, bias=False), use_sn)
        self.norm_0 = SPADE(fin, seg_nc, spade_ks, spade_hidden, norm)
        self.norm_1 = SPADE(fmiddle, seg_nc, spade_ks, spade_hidden, norm)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, seg_nc, spade_ks, spade_hidden, norm)
        self.activ = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        x_s = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(self.activ(self.norm_0(x, seg)))
        dx = self.conv_1(self.activ(self.norm_1(dx, seg)))
        return x_s + dx

    def forward_fast(self, x: torch.Tensor, index: LabelIndex) -> torch.Tensor:
        """Same math as `forward`, from a LabelIndex shared by the block's SPADE layers."""
        if not self.learned_shortcut:
            x_s = x
        elif self.fold_shortcut(index):
            x_s = self.shortcut_folded(x, index)
        else:
            x_s = self.conv_s(self.norm_s.forward_fast(x, index))
        dx = self.conv_0(F.leaky_relu(self.norm_0.forward_fast(x, index), 0.2, inplace=True))
        dx = self.conv_1(F.leaky_relu(self.norm_1.forward_fast(dx, index), 0.2, inplace=True))
        return dx.add_(x_s)

    # A plain switch (class or instance): fold conv_s into norm_s where it pays (below).
    shortcut_folding: bool = True

    def fold_shortcut(self, index: LabelIndex) -> bool:
        """Fold conv_s into norm_s's beta conv where the FLOPs it saves (per pixel, 9 * hidden
        * (fin - fout), forward and backward) exceed the cost of composing the weights
        (9 * hidden * fin * fout, likewise) with a margin: maps of more than 2 * fin * fout /
        (fin - fout) pixels, batch included."""
        fin, fout = self.conv_s.in_channels, self.conv_s.out_channels
        b, h, w = index.shape
        return (self.shortcut_folding and fout < fin and self.conv_s.kernel_size == (1, 1)
                and self.conv_s.bias is None
                and b * h * w * (fin - fout) > 2 * fin * fout)

    def shortcut_folded(self, x: torch.Tensor, index: LabelIndex) -> torch.Tensor:
        """conv_s(norm_s(x)) as conv_s(norm(x) * (1 + gamma)) + conv(actv, W_s @ W_beta) + W_s b:
        the 1x1 shortcut conv is linear, so its share over beta runs as part of norm_s's
        gamma/beta conv, with fout instead of fin output channels for beta."""
        w_s = hooked_weight(self.conv_s, x)                                   # (fout, fin, 1, 1)
        normalized = self.norm_s.first_norm(x)
        gamma1, beta_s = self.norm_s.modulation(index, beta_proj=w_s[:, :, 0, 0])
        return F.conv2d(normalized * gamma1, w_s).add_(beta_s)


def hooked_weight(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """The weight `conv(x)` would use, with its forward pre-hooks (spectral norm: one power
    iteration in training mode) run exactly as that call would run them."""
    for hook in conv._forward_pre_hooks.values():
        hook(conv, (x,))
    sigma = conv.__dict__.pop("_sn_sigma", None)  # the output-scaled spectral norm's sigma
    if sigma is not None:
        return conv.weight_orig / sigma
    return conv.weight


def resize_ids(ids: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Nearest resize of an integer id map (B, H, W), picking the pixels F.interpolate picks."""
    H, W = ids.shape[1:]
    if (h, w) == (H, W):
        return ids
    if H % h == 0 and W % w == 0:
        return ids[:, ::H // h, ::W // w]
    return F.interpolate(ids[:, None].double(), size=(h, w), mode="nearest")[:, 0].long()


class Generator(nn.Module):
    """OASIS generator.

    forward(label, z=None): `label` is a one-hot float map (B, N, H, W) with H and W multiples
    of 2**(num_blocks-1); `z` is (B, z_dim), broadcast over the image, or (B, z_dim, H, W) for
    spatially varying noise. Without `z`, noise is drawn from `generator` (a torch.Generator,
    drawn on its own device and moved to the label's) or from the global RNG.

    `fast_spade` (attribute, default True) computes the label convolutions from integer label
    ids (see nn/spade.py): same outputs and gradients up to float re-association. It is used
    only when the label is exactly one-hot (soft labels take the plain path) and never while
    tracing, exporting (ONNX, torch.export) or compiling (torch.compile), which take the plain,
    official SPADE path; set
    `generator.fast_spade = False` to force the plain path.
    """

    def __init__(self, semantic_nc: int, channels: int = 64, num_blocks: int = 6, z_dim: int = 64,
                 noise_3d: bool = True, spade_ks: int = 3, spade_hidden: int = 128,
                 norm: str = "syncbatch", spectral_norm: bool = True, init: bool = True,
                 fast_spade: bool = True, sn_init_gain: Optional[float] = None):
        super().__init__()
        self.semantic_nc, self.z_dim, self.noise_3d = semantic_nc, z_dim, noise_3d
        self.spade_ks = spade_ks
        self.num_blocks = num_blocks
        self.channels = generator_widths(channels, num_blocks)
        seg_nc = semantic_nc + (z_dim if noise_3d else 0)
        self.fc = nn.Conv2d(seg_nc, self.channels[0], 3, padding=1)
        self.body = nn.ModuleList(
            ResnetBlockSPADE(self.channels[i], self.channels[i + 1], seg_nc, spade_ks, spade_hidden,
                             norm, spectral_norm)
            for i in range(num_blocks))
        self.up = nn.Upsample(scale_factor=2)
        self.conv_img = nn.Conv2d(self.channels[-1], 3, 3, padding=1)
        if init:
            init_weights(self, sn_gain=sn_init_gain)
            settle_spectral_norms(self)
        self.fast_spade = fast_spade

    @property
    def fast_spade(self) -> bool:
        """The exact fast path: SPADE label convs from ids, output-scaled spectral norm."""
        return self.__dict__.get("_fast_spade", False)

    @fast_spade.setter
    def fast_spade(self, value: bool) -> None:
        self.__dict__["_fast_spade"] = bool(value)
        set_fast_spectral_norm(self, value)

    @classmethod
    def from_config(cls, cfg, init: bool = True) -> "Generator":
        return cls(cfg.semantic_nc, cfg.channels_G, cfg.num_res_blocks, cfg.z_dim, cfg.noise_3d,
                   cfg.spade_ks, cfg.spade_hidden, cfg.param_free_norm, cfg.spectral_norm, init=init,
                   fast_spade=getattr(cfg, "fast_spade", True), sn_init_gain=cfg.sn_init_gain)

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
        """The checked noise: (B, z_dim) or (B, z_dim, H, W), drawn when `z` is None."""
        b, _, h, w = label.shape
        if z is None:
            z = self.sample_z(b, generator, label.device)
        z = z.to(device=label.device, dtype=label.dtype)
        if z.dim() == 2:
            if z.shape != (b, self.z_dim):
                raise ValueError(f"z has shape {tuple(z.shape)}, expected ({b}, {self.z_dim})")
            return z
        if z.dim() == 4 and z.shape == (b, self.z_dim, h, w):
            return z
        raise ValueError(f"z has shape {tuple(z.shape)}: expected ({b}, {self.z_dim}) or "
                         f"({b}, {self.z_dim}, {h}, {w})")

    def noise_map(self, label: torch.Tensor, z: Optional[torch.Tensor],
                  generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """The (B, z_dim, H, W) noise tensor concatenated to the label map."""
        z = self.noise(label, z, generator)
        if z.dim() == 2:
            b, _, h, w = label.shape
            return z[:, :, None, None].expand(b, self.z_dim, h, w)
        return z

    def check_label(self, label: torch.Tensor) -> None:
        if label.dim() != 4 or label.shape[1] != self.semantic_nc:
            raise ValueError(f"label must be a one-hot map (B, {self.semantic_nc}, H, W), "
                             f"got shape {tuple(label.shape)}")
        m = self.size_multiple
        if label.shape[2] % m or label.shape[3] % m:
            raise ValueError(f"label size {label.shape[2]}x{label.shape[3]} is not a multiple of {m}")

    # The fast path saves FLOPs, which is what limits a CPU; on a GPU its many small gathers
    # and host synchronisations cost more than cuDNN's dense convolutions (measured on an H100:
    # inference 0.42x, training 0.90x of the plain path), so GPUs take the plain path unless
    # this is set.
    fast_spade_on_accelerators: bool = False

    def label_ids(self, label: torch.Tensor) -> Optional[torch.Tensor]:
        """Integer ids (B, H, W) when the fast path applies to this label, else None."""
        if not self.fast_spade or self.spade_ks % 2 == 0:
            return None
        if label.device.type != "cpu" and not self.fast_spade_on_accelerators:
            return None
        if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export():
            return None
        if hasattr(torch.compiler, "is_exporting") and torch.compiler.is_exporting():
            return None
        if torch.compiler.is_compiling():
            # torch 2.13 (CPU): the compiled embedding_bag backward gave wrong weight gradients
            # in our check, so compiled generators take the plain path.
            return None
        if not label.is_floating_point() or label.requires_grad:
            return None
        # One pass (a (2, N) @ (N, H*W) product, 3x faster than argmax over channels): per pixel
        # the sum of the channels and the sum weighted by the channel index. Exactly one-hot
        # iff every sum is 1 and the map has one non-zero per pixel; the weighted sum is then
        # the id, exactly (0 * c and 1 * c round to themselves).
        b, n, h, w = label.shape
        probe = torch.stack((torch.ones(n), torch.arange(n, dtype=torch.float32))).to(label.device)
        sums = torch.matmul(probe, label.reshape(b, n, h * w).float())            # (B, 2, H*W)
        ok = (sums[:, 0] == 1).all() & (torch.count_nonzero(label) == b * h * w)
        return sums[:, 1].reshape(b, h, w).long() if bool(ok) else None

    def forward(self, label: torch.Tensor, z: Optional[torch.Tensor] = None,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
        self.check_label(label)
        ids = self.label_ids(label)
        if ids is not None:
            return self.forward_fast(label, ids, z, generator)
        return self.forward_plain(label, z, generator)

    def forward_fast(self, label: torch.Tensor, ids: torch.Tensor, z: Optional[torch.Tensor] = None,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """The fast path: label convolutions from the ids, one LabelIndex per resolution."""
        with winograd.allowed(self.winograd_tile):
            return self._forward_fast(label, ids, z, generator)

    # Winograd F(m x m, 3x3) for the large 3x3 convolutions of CPU float32 inference on the fast
    # path (SPADE's gamma/beta, the blocks' spectral-norm convs; nn/winograd.py): 4, 2 or 0 (off).
    # A plain switch, per instance or class.
    winograd_tile: int = 4

    def _forward_fast(self, label: torch.Tensor, ids: torch.Tensor, z: Optional[torch.Tensor],
                      generator: Optional[torch.Generator]) -> torch.Tensor:
        zb = zmap = None
        if self.noise_3d:
            z = self.noise(label, z, generator)
            zb, zmap = (z, None) if z.dim() == 2 else (None, z)
        cache: Dict[Tuple[int, int, int], LabelIndex] = {}
        batch = label.shape[0]

        def index_at(h: int, w: int, k: int) -> LabelIndex:
            key = (h, w, k)
            if key not in cache:
                zm = None if zmap is None else F.interpolate(zmap, size=(h, w), mode="nearest")
                cache[key] = index = LabelIndex(resize_ids(ids, h, w), self.semantic_nc, k, zb, zm)
                index.memory_format = self.memory_format_at(batch, h, w)
            return cache[key]

        m = self.size_multiple
        h, w = label.shape[2] // m, label.shape[3] // m
        k = self.fc.kernel_size[0]
        x = label_conv(self.fc.weight, self.fc.bias, index_at(h, w, k))
        for i, block in enumerate(self.body):
            index = index_at(h, w, self.spade_ks)
            x = x.contiguous(memory_format=index.memory_format)
            x = block.forward_fast(x, index)
            if i < self.num_blocks - 1:
                x = self.up(x)
                h, w = 2 * h, 2 * w
        x = self.conv_img(F.leaky_relu(x, 2e-1))
        return torch.tanh(x)

    # Activation layout of the fast path: "auto" (channels_last where the map has at least
    # `channels_last_min_pixels` pixels, batch included: there the faster channels_last
    # kernels win; below, converting the large low-resolution weights each call costs more),
    # "channels_last" or "contiguous". Layout never changes the math.
    memory_format: str = "auto"
    channels_last_min_pixels: int = 4096

    def memory_format_at(self, batch: int, h: int, w: int) -> torch.memory_format:
        if self.memory_format == "channels_last":
            return torch.channels_last
        if self.memory_format == "contiguous":
            return torch.contiguous_format
        return torch.channels_last if batch * h * w >= self.channels_last_min_pixels \
            else torch.contiguous_format

    def forward_plain(self, label: torch.Tensor, z: Optional[torch.Tensor] = None,
                      generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """The official computation (dense convolutions over the concatenated noise + one-hot)."""
        seg = label
        if self.noise_3d:
            seg = torch.cat((self.noise_map(label, z, generator), label), dim=1)
        m = self.size_multiple
        x = F.interpolate(seg, size=(label.shape[2] // m, label.shape[3] // m))
        x = self.fc(x)
        for i, block in enumerate(self.body):
            x = block(x, seg)
            if i < self.num_blocks - 1:
                x = self.up(x)
        x = self.conv_img(F.leaky_relu(x, 2e-1))
        return torch.tanh(x)
