"""FID: the pytorch-fid InceptionV3 (TF-ported weights), feature statistics and the Fréchet distance.

The network is pytorch-fid's ``fid_inception_v3()`` rebuilt without torchvision: the same module
names (``Conv2d_1a_3x3`` ... ``Mixed_7c``, ``fc``), so ``pt_inception-2015-12-05-6726825d.pth``
loads with its own keys, and the same four TF-specific patches (average pools that do not count
padding in the A/C/E blocks, a max pool in the last E block, BatchNorm eps 1e-3, 1008 logits).
Its input is an image batch in [0, 1] of any size, resized to 299x299 (bilinear,
``align_corners=False``) and mapped to [-1, 1], exactly as pytorch-fid's ``InceptionV3`` does;
the features are the 2048-d output of the final average pool.

The Fréchet distance is computed in float64. The default method is eigenvalue based
(``tr sqrt(S1 S2) = sum sqrt(eig(sqrt(S1) S2 sqrt(S1)))``), which is exact, symmetric and stays
finite on singular covariances; ``method="sqrtm"`` reproduces pytorch-fid's scipy ``sqrtm`` path
with its eps-offset fallback.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..loading.checkpoint import atomic_write
from ..loading.weights import WeightsError, load_state_dict_file, resolve_weights, sha256_of
from .segmenters.common import load_original_state_dict

FID_WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                   + FID_WEIGHTS_FILENAME)
FID_WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
FID_DIMS = 2048


# ---------------------------------------------------------------------------------------------
# Fréchet distance
# ---------------------------------------------------------------------------------------------
def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a (numerically) positive semi-definite matrix."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2, method: str = "eig", eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    ``||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2)``.
    ``method="eig"`` (default) never produces inf/NaN for finite PSD inputs; ``method="sqrtm"``
    is pytorch-fid's computation (scipy.linalg.sqrtm, an ``eps`` offset on the diagonals when
    the product is singular, the real part kept).
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    s1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    s2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"Fréchet distance: mismatched statistics, means {mu1.shape} vs {mu2.shape}, "
                         f"covariances {s1.shape} vs {s2.shape}")
    for name, x in (("mu1", mu1), ("mu2", mu2), ("sigma1", s1), ("sigma2", s2)):
        if not np.isfinite(x).all():
            raise ValueError(f"Fréchet distance: {name} contains inf/NaN (did the network diverge?)")
    diff = mu1 - mu2
    if method == "eig":
        r1 = _sqrt_psd(s1)
        m = r1 @ s2 @ r1
        ev = np.linalg.eigvalsh((m + m.T) / 2)
        tr_covmean = float(np.sqrt(np.clip(ev, 0, None)).sum())
    elif method == "sqrtm":
        import warnings

        from scipy import linalg

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # singular products are handled below
            covmean = np.asarray(linalg.sqrtm(s1.dot(s2)))
            if not np.isfinite(covmean).all():
                offset = np.eye(s1.shape[0]) * eps
                covmean = np.asarray(linalg.sqrtm((s1 + offset).dot(s2 + offset)))
        if np.iscomplexobj(covmean):
            covmean = covmean.real
        tr_covmean = float(np.trace(covmean))
    else:
        raise ValueError(f"unknown Fréchet method {method!r}: use 'eig' or 'sqrtm'")
    d = float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)
    return max(d, 0.0)  # a true distance is >= 0; tiny negatives are rounding


@dataclass
class FeatureStats:
    """Mean and covariance (float64) of a feature set, with its size."""
    mu: np.ndarray
    sigma: np.ndarray
    n: int

    @classmethod
    def from_features(cls, feats) -> "FeatureStats":
        if torch.is_tensor(feats):
            feats = feats.detach().cpu().numpy()
        x = np.asarray(feats, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 2:
            raise ValueError(f"need at least 2 feature vectors (N, D), got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("features contain inf/NaN (the generator or the network diverged)")
        return cls(x.mean(0), np.cov(x, rowvar=False), int(x.shape[0]))

    def save(self, path: Union[str, Path], meta: Optional[dict] = None) -> None:
        atomic_write(path, lambda f: np.savez(f, mu=self.mu, sigma=self.sigma, n=self.n,
                                              meta=json.dumps(meta or {})))

    @classmethod
    def load(cls, path: Union[str, Path]) -> "FeatureStats":
        with np.load(path) as f:
            return cls(f["mu"], f["sigma"], int(f["n"]))

    def distance(self, other: "FeatureStats", method: str = "eig") -> float:
        return frechet_distance(self.mu, self.sigma, other.mu, other.sigma, method=method)


def stats_cache_path(cache_dir: Union[str, Path], kind: str, dataset: str, data_root, split: str,
                     resolution: Tuple[int, int], extractor_id: str, n: Optional[int]) -> Path:
    """The cache file of real-image statistics for one dataset/split/resolution/feature network."""
    root = str(Path(data_root).resolve()) if data_root is not None else "-"
    key = hashlib.sha256(f"{root}|{extractor_id}|{n}".encode()).hexdigest()[:12]
    h, w = resolution
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in dataset)
    return Path(cache_dir) / "stats" / f"{kind}-{safe}-{split}-{h}x{w}-{'all' if n is None else n}-{key}.npz"


# ---------------------------------------------------------------------------------------------
# pytorch-fid's InceptionV3
# ---------------------------------------------------------------------------------------------
class BasicConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _tf_avg_pool(x):
    # TF's average pool ignores the zero padding in the mean.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(cin, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, kernel_size=1)

    def forward(self, x):
        a = self.branch1x1(x)
        b = self.branch5x5_2(self.branch5x5_1(x))
        c = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        d = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([a, b, c, d], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x):
        a = self.branch3x3(x)
        b = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        c = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([a, b, c], 1)


class InceptionC(nn.Module):
    def __init__(self, cin: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x):
        a = self.branch1x1(x)
        b = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        c = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            c = layer(c)
        d = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([a, b, c, d], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x):
        a = self.branch3x3_2(self.branch3x3_1(x))
        b = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        c = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([a, b, c], 1)


class InceptionE(nn.Module):
    """``max_pool=False``: pytorch-fid's FIDInceptionE_1 (TF average pool); True: FIDInceptionE_2."""

    def __init__(self, cin: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(cin, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x):
        a = self.branch1x1(x)
        b = self.branch3x3_1(x)
        b = torch.cat([self.branch3x3_2a(b), self.branch3x3_2b(b)], 1)
        c = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        c = torch.cat([self.branch3x3dbl_3a(c), self.branch3x3dbl_3b(c)], 1)
        p = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _tf_avg_pool(x)
        return torch.cat([a, b, c, self.branch_pool(p)], 1)


# pytorch-fid's wrapper `InceptionV3` stores the same modules as `blocks.<i>.<j>`.
_WRAPPER_BLOCKS = {
    "blocks.0.0.": "Conv2d_1a_3x3.", "blocks.0.1.": "Conv2d_2a_3x3.", "blocks.0.2.": "Conv2d_2b_3x3.",
    "blocks.1.0.": "Conv2d_3b_1x1.", "blocks.1.1.": "Conv2d_4a_3x3.",
    "blocks.2.0.": "Mixed_5b.", "blocks.2.1.": "Mixed_5c.", "blocks.2.2.": "Mixed_5d.",
    "blocks.2.3.": "Mixed_6a.", "blocks.2.4.": "Mixed_6b.", "blocks.2.5.": "Mixed_6c.",
    "blocks.2.6.": "Mixed_6d.", "blocks.2.7.": "Mixed_6e.",
    "blocks.3.0.": "Mixed_7a.", "blocks.3.1.": "Mixed_7b.", "blocks.3.2.": "Mixed_7c.",
}


class FIDInceptionV3(nn.Module):
    """pytorch-fid's FID InceptionV3 (TF 2015-12-05 graph), returning the 2048-d pool features.

    forward(x): x (B, 3, H, W) in [0, 1] -> (B, 2048). ``resize_input``/``normalize_input`` as in
    pytorch-fid (both on by default).
    """
    def __init__(self, resize_input: bool = True, normalize_input: bool = True):
        super().__init__()
        self.resize_input, self.normalize_input = resize_input, normalize_input
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(2048, 1008)  # logits of the TF graph; unused for FID, kept so the file loads

    @torch.no_grad()
    def init_random(self, seed: int = 0) -> "FIDInceptionV3":
        """Scale-preserving random weights (He-normal convs, identity BatchNorm): for tests and
        demos only; FID needs the pytorch-fid weights (`load_inception`)."""
        g = torch.Generator().manual_seed(seed)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.01)
                m.bias.zero_()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.resize_input:
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        if self.normalize_input:
            x = 2 * x - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                     "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(self, name)(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    @staticmethod
    def convert_state_dict(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Accept pytorch-fid's wrapper layout (``blocks.i.j.*``) as well as the file's own keys."""
        out = {}
        for k, v in state.items():
            for old, new in _WRAPPER_BLOCKS.items():
                if k.startswith(old):
                    k = new + k[len(old):]
                    break
            out[k] = v
        return out


def load_inception(path: Optional[Union[str, Path]] = None, device="cpu",
                   verify: bool = True) -> Tuple[FIDInceptionV3, str]:
    """The FID InceptionV3 with pytorch-fid's weights: from `path`, the cache, or the official URL.

    Returns (network in eval mode, sha256 of the weight file). Offline without the file a
    `WeightsError` says where to put it.
    """
    p = resolve_weights(path, filename=FID_WEIGHTS_FILENAME, url=FID_WEIGHTS_URL,
                        sha256_prefix=FID_WEIGHTS_SHA256, what="FID Inception weights "
                        f"({FID_WEIGHTS_FILENAME})", option="--inception-weights")
    digest = sha256_of(p)
    if verify and digest != FID_WEIGHTS_SHA256:
        raise WeightsError(f"FID Inception weights {p}: sha256 {digest[:16]}... is not the one of "
                           f"{FID_WEIGHTS_FILENAME} ({FID_WEIGHTS_SHA256[:16]}...); FID with other "
                           "weights is not comparable to published numbers. Download it from "
                           f"{FID_WEIGHTS_URL}")
    net = FIDInceptionV3()
    state = FIDInceptionV3.convert_state_dict(load_state_dict_file(p, "FID Inception weights"))
    load_original_state_dict(net, state, "FID Inception weights", p)
    return net.eval().requires_grad_(False).to(device), digest


@torch.no_grad()
def inception_features(net: nn.Module, images: torch.Tensor, batch_size: int = 50) -> torch.Tensor:
    """Features of images in [-1, 1] (generator convention): (B, 2048) float32 on the CPU."""
    out = []
    dev = next(net.parameters()).device
    for i in range(0, images.shape[0], batch_size):
        x = images[i:i + batch_size].to(dev, torch.float32)
        out.append(net((x.clamp(-1, 1) + 1) / 2).float().cpu())
    return torch.cat(out)


def features_to_stats(chunks: Iterable[torch.Tensor]) -> FeatureStats:
    return FeatureStats.from_features(torch.cat(list(chunks)).double())
