"""Diversity: LPIPS (richzhang/PerceptualSimilarity) and MS-SSIM between images of one label map.

LPIPS is defined here without torchvision: the AlexNet / VGG16 / SqueezeNet1.1 feature stacks use
torchvision's module layout (``features.<i>.*``) so torchvision's ImageNet files
(``alexnet-owt-7be5be79.pth``, ``vgg16-397923af.pth``, ``squeezenet1_1-b8a52dc0.pth``) load as they
are, cut into LPIPS's slices; the linear heads ``lin<k>.model.1.weight`` load from the official
``weights/v0.1/<net>.pth``. v0.1 applies LPIPS's scaling layer to inputs in [-1, 1]; v0.0 does not.

MS-SSIM follows Wang et al. (2003): 11x11 Gaussian window (sigma 1.5), 5 scales with weights
(0.0448, 0.2856, 0.3001, 0.2363, 0.1333), 2x average pooling between scales, contrast-structure
terms at the first four scales and the full SSIM at the last, images in [0, 1]. For images
smaller than 176 px the window is shrunk to the image at the coarse scales (so 64 px toy images
still get all five scales); such numbers are comparable only among themselves.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..loading.weights import WeightsError, load_state_dict_file, resolve_weights, sha256_of
from .segmenters.common import load_original_state_dict

LPIPS_NETS = ("alex", "vgg", "squeeze")
LPIPS_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512),
                  "squeeze": (64, 128, 256, 384, 384, 512, 512)}
# Slices of torchvision's `features` after which LPIPS taps the activations (end indices, exclusive).
LPIPS_SLICES = {"alex": (2, 5, 8, 10, 12), "vgg": (4, 9, 16, 23, 30), "squeeze": (2, 5, 8, 10, 11, 12, 13)}
BACKBONE_FILES = {
    "alex": ("alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", "7be5be79"),
    "vgg": ("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth", "397923af"),
    "squeeze": ("squeezenet1_1-b8a52dc0.pth", "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
                "b8a52dc0"),
}
LPIPS_LINEAR_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v{version}/{net}.pth"
LPIPS_LINEAR_SHA256 = {
    ("0.0", "alex"): "18720f55913d0af89042f13faa7e536a6ce1444a0914e6db9461355ece1e8cd5",
    ("0.0", "squeeze"): "c27abd3a0145541baa50990817df58d3759c3f8154949f42af3b59b4e042d0bf",
    ("0.0", "vgg"): "b9e4236260c3dd988fc79d2a48d645d885afcbb21f9fd595e6744cf7419b582c",
    ("0.1", "alex"): "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
    ("0.1", "squeeze"): "4a5350f23600cb79923ce65bb07cbf57dca461329894153e05a1346bd531cf76",
    ("0.1", "vgg"): "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
}


class Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, e1: int, e3: int):
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, e1, 1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, e3, 3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                          self.expand3x3_activation(self.expand3x3(x))], 1)


def backbone_features(net: str) -> nn.Sequential:
    """torchvision's `features` stack of alexnet / vgg16 / squeezenet1_1 (same indices and keys)."""
    R = lambda: nn.ReLU(inplace=True)  # noqa: E731
    if net == "alex":
        return nn.Sequential(nn.Conv2d(3, 64, 11, stride=4, padding=2), R(), nn.MaxPool2d(3, 2),
                             nn.Conv2d(64, 192, 5, padding=2), R(), nn.MaxPool2d(3, 2),
                             nn.Conv2d(192, 384, 3, padding=1), R(), nn.Conv2d(384, 256, 3, padding=1), R(),
                             nn.Conv2d(256, 256, 3, padding=1), R(), nn.MaxPool2d(3, 2))
    if net == "vgg":
        layers: List[nn.Module] = []
        cin = 3
        for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), R()]
                cin = v
        return nn.Sequential(*layers)
    if net == "squeeze":
        return nn.Sequential(nn.Conv2d(3, 64, 3, stride=2), R(), nn.MaxPool2d(3, 2, ceil_mode=True),
                             Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), nn.MaxPool2d(3, 2, ceil_mode=True),
                             Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), nn.MaxPool2d(3, 2, ceil_mode=True),
                             Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256),
                             Fire(512, 64, 256, 256))
    raise ValueError(f"unknown LPIPS network {net!r}: use one of {', '.join(LPIPS_NETS)}")


class NetLinLayer(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(cin, 1, 1, bias=False))

    def forward(self, x):
        return self.model(x)


class LPIPS(nn.Module):
    """LPIPS distance; forward(a, b) with images in [-1, 1] -> (B,) distances."""

    def __init__(self, net: str = "alex", version: str = "0.1"):
        super().__init__()
        if version not in ("0.0", "0.1"):
            raise ValueError("LPIPS version must be '0.0' or '0.1'")
        self.net_name, self.version = net, version
        self.features = backbone_features(net)
        self.slices = LPIPS_SLICES[net]
        for i, c in enumerate(LPIPS_CHANNELS[net]):
            self.add_module(f"lin{i}", NetLinLayer(c))
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None], persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450])[None, :, None, None], persistent=False)
        self.eval().requires_grad_(False)

    def taps(self, x: torch.Tensor) -> List[torch.Tensor]:
        out, start = [], 0
        for end in self.slices:
            for i in range(start, end):
                x = self.features[i](x)
            out.append(x)
            start = end
        return out

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.version == "0.1":
            a, b = (a - self.shift) / self.scale, (b - self.shift) / self.scale
        fa, fb = self.taps(a), self.taps(b)
        total = 0
        for k, (x, y) in enumerate(zip(fa, fb)):
            x = x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            y = y / (y.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + getattr(self, f"lin{k}")((x - y) ** 2).mean((2, 3))
        return total[:, 0]


def load_lpips(net: str = "alex", version: str = "0.1", backbone: Optional[Union[str, Path]] = None,
               linear: Optional[Union[str, Path]] = None, device="cpu") -> LPIPS:
    """LPIPS with the official linear weights and torchvision's ImageNet backbone.

    `backbone`: a torchvision-layout file (``features.*`` keys; ``classifier.*`` is ignored);
    `linear`: the official ``v<version>/<net>.pth``. Both default to the cache / official address.
    """
    if net not in LPIPS_NETS:
        raise ValueError(f"unknown LPIPS network {net!r}: use one of {', '.join(LPIPS_NETS)}")
    model = LPIPS(net, version)
    fname, url, prefix = BACKBONE_FILES[net]
    pb = resolve_weights(backbone, filename=fname, url=url, sha256_prefix=prefix,
                         what=f"LPIPS {net} backbone weights (torchvision {fname})", option="--lpips-backbone")
    state = load_state_dict_file(pb, "LPIPS backbone weights")
    state = {k: v for k, v in state.items() if k.startswith("features.")}
    load_original_state_dict(model.features, state, f"LPIPS {net} backbone weights", pb, prefix="features.")
    sha = LPIPS_LINEAR_SHA256[(version, net)]
    pl = resolve_weights(linear, filename=f"lpips/v{version}/{net}.pth", url=LPIPS_LINEAR_URL.format(version=version, net=net),
                         sha256_prefix=sha, what=f"LPIPS v{version} {net} linear weights", option="--lpips-weights")
    if linear is not None and sha256_of(pl) != sha:
        raise WeightsError(f"{pl} is not the official LPIPS v{version} {net}.pth (sha256 differs)")
    lin_state = load_state_dict_file(pl, "LPIPS linear weights")
    lin_module = nn.Module()
    for i in range(len(LPIPS_CHANNELS[net])):
        lin_module.add_module(f"lin{i}", getattr(model, f"lin{i}"))
    load_original_state_dict(lin_module, lin_state, f"LPIPS v{version} {net} linear weights", pl)
    return model.eval().to(device)


# ---------------------------------------------------------------------------------------------
# MS-SSIM
# ---------------------------------------------------------------------------------------------
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _gaussian(size: int, sigma: float, device, dtype) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def _ssim_terms(x: torch.Tensor, y: torch.Tensor, win: int, sigma: float = 1.5,
                data_range: float = 1.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-image, per-channel mean SSIM and contrast-structure (B, C), valid (unpadded) filtering."""
    c = x.shape[1]
    g = _gaussian(win, sigma, x.device, x.dtype)
    gh = g.view(1, 1, 1, win).expand(c, 1, 1, win)
    gv = g.view(1, 1, win, 1).expand(c, 1, win, 1)

    def blur(t):
        return F.conv2d(F.conv2d(t, gh, groups=c), gv, groups=c)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x ** 2
    syy = blur(y * y) - mu_y ** 2
    sxy = blur(x * y) - mu_x * mu_y
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mu_x * mu_y + c1) / (mu_x ** 2 + mu_y ** 2 + c1)
    return (lum * cs).mean((2, 3)), cs.mean((2, 3))


def ms_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, win: int = 11,
            weights=MS_SSIM_WEIGHTS) -> torch.Tensor:
    """MS-SSIM (B,) of images in [0, data_range] (B, C, H, W), computed in float64."""
    x, y = x.double(), y.double()
    w = torch.tensor(weights, dtype=torch.float64, device=x.device)
    levels = len(weights)
    terms = []
    for i in range(levels):
        k = min(win, x.shape[-1], x.shape[-2])
        k = k if k % 2 == 1 else k - 1
        ssim, cs = _ssim_terms(x, y, max(k, 1), data_range=data_range)
        terms.append(ssim if i == levels - 1 else cs)
        if i < levels - 1:
            pad = (x.shape[-2] % 2, x.shape[-1] % 2)  # odd sizes: as pytorch_msssim (zero pad, counted)
            x = F.avg_pool2d(x, 2, padding=pad)
            y = F.avg_pool2d(y, 2, padding=pad)
    stack = torch.stack(terms).clamp_min(0)  # (levels, B, C)
    return (stack ** w[:, None, None]).prod(0).mean(1)


def pairwise_mean(fn, images: torch.Tensor, batch: int = 64) -> float:
    """Mean of fn(a, b) over all unordered pairs of `images` (K, 3, H, W)."""
    pairs = list(itertools.combinations(range(images.shape[0]), 2))
    if not pairs:
        raise ValueError("diversity needs at least 2 samples per label map")
    total = 0.0
    for i in range(0, len(pairs), batch):
        chunk = pairs[i:i + batch]
        a = images[[p[0] for p in chunk]]
        b = images[[p[1] for p in chunk]]
        total += float(fn(a, b).double().sum())
    return total / len(pairs)
