"""The reference U-Net segmenter: trainable on the real images of any dataset (`oasis segmenter train`).

For data without a published segmenter (the toy dataset, users' own data) it gives mIoU, and its
bottleneck features give the Fréchet Segmenter Distance (FSD). It sees images in [-1, 1] (the
generator's convention) and predicts the model's own label ids.

File format (torch.save of a dict, loadable with ``weights_only=True``)::

    {"format": "oasisgan-segmenter", "version": 1, "arch": "unet", "num_classes": N,
     "width": w, "depth": d, "dontcare_label": k | None, "state_dict": {...},
     "config": <dataset OASISConfig dict>, "val_miou": float, "val_accuracy": float, "iters": int}
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...errors import first_line
from .common import identity_label_map, load_original_state_dict, Segmenter
from ...loading.weights import WeightsError

SEGMENTER_FORMAT = "oasisgan-segmenter"
SEGMENTER_VERSION = 1


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ReferenceUNet(nn.Module):
    """A plain U-Net: `depth` 2x downsamplings, widths width * 2**i; logits at the input size."""

    def __init__(self, num_classes: int, width: int = 32, depth: int = 4):
        super().__init__()
        self.num_classes, self.width, self.depth = num_classes, width, depth
        ch = [width * 2 ** i for i in range(depth + 1)]
        self.enc = nn.ModuleList([_double_conv(3, ch[0])] + [_double_conv(ch[i], ch[i + 1]) for i in range(depth)])
        self.dec = nn.ModuleList(_double_conv(ch[i + 1] + ch[i], ch[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(ch[0], num_classes, 1)

    @property
    def feature_dim(self) -> int:
        return self.width * 2 ** self.depth

    def _encode(self, x: torch.Tensor) -> List[torch.Tensor]:
        skips = [self.enc[0](x)]
        for block in self.enc[1:]:
            skips.append(block(F.max_pool2d(skips[-1], 2, ceil_mode=True)))
        return skips

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = self._encode(x)
        y = skips[-1]
        for block, skip in zip(self.dec, reversed(skips[:-1])):
            y = F.interpolate(y, size=skip.shape[2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([y, skip], 1))
        return self.head(y)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled bottleneck features (B, width * 2**depth), for the FSD."""
        return self._encode(x)[-1].mean((2, 3))


class ReferenceSegmenter(Segmenter):
    """A `Segmenter` around a ReferenceUNet, with `features()` for the FSD."""

    def features(self, images: torch.Tensor) -> torch.Tensor:
        x = images
        if self.input_size is not None and tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        return self.net.features(x)


def segmenter_checkpoint(net: ReferenceUNet, cfg, **extra: Any) -> Dict[str, Any]:
    return dict({"format": SEGMENTER_FORMAT, "version": SEGMENTER_VERSION, "arch": "unet",
                 "num_classes": net.num_classes, "width": net.width, "depth": net.depth,
                 "dontcare_label": cfg.dontcare_label,
                 "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
                 "config": cfg.to_dict()}, **extra)


def is_segmenter_checkpoint(obj) -> bool:
    return isinstance(obj, dict) and obj.get("format") == SEGMENTER_FORMAT


def read_segmenter_checkpoint(path: Union[str, Path]) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"segmenter file not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsError(f"cannot read segmenter {path}: {e.__class__.__name__}: {first_line(e)}") from None
    if not is_segmenter_checkpoint(ckpt):
        raise WeightsError(f"{path} is not an oasisgan reference segmenter (made by `oasis segmenter train`)")
    if ckpt.get("version", 0) > SEGMENTER_VERSION:
        raise WeightsError(f"{path} was written by a newer oasisgan; upgrade oasisgan")
    return ckpt


def build_reference_segmenter(ckpt: Dict[str, Any], num_labels: Optional[int] = None,
                              dontcare: Optional[int] = -1, path: Optional[Union[str, Path]] = None) -> ReferenceSegmenter:
    """A ReferenceSegmenter from a checkpoint dict; checks it fits a model with `num_labels` ids."""
    n = int(ckpt["num_classes"])
    if num_labels is not None and num_labels != n:
        raise WeightsError(f"reference segmenter {path or ''} predicts {n} classes, but the model has "
                           f"{num_labels} label ids: it was trained on another dataset")
    net = ReferenceUNet(n, int(ckpt["width"]), int(ckpt["depth"]))
    load_original_state_dict(net, ckpt["state_dict"], "reference segmenter", path)
    dc = ckpt.get("dontcare_label") if dontcare == -1 else dontcare
    digest = None
    if path is not None:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    names = (ckpt.get("config") or {}).get("class_names")
    seg = ReferenceSegmenter(net.eval(), n, identity_label_map(n, dc), "reference-unet", None,
                             class_names=names, weights_sha256=digest)
    seg.real_miou = ckpt.get("val_miou")
    return seg
