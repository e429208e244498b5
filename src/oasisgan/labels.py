"""Label maps: integer ids <-> one-hot, and colours for display."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch


def one_hot(label: torch.Tensor, num_classes: int, dtype=torch.float32) -> torch.Tensor:
    """(B, H, W) integer ids -> (B, N, H, W) one-hot, as the official `scatter_` does."""
    if label.dim() == 4 and label.shape[1] == 1:
        label = label[:, 0]
    label = label.long()
    out = torch.zeros(label.shape[0], num_classes, *label.shape[1:], dtype=dtype, device=label.device)
    return out.scatter_(1, label.unsqueeze(1), 1.0)


def official_colormap(n: int) -> np.ndarray:
    """The official OASIS/SPADE label colours (Cityscapes' own colours for 35 classes)."""
    if n == 35:
        return np.array([(0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0), (111, 74, 0), (81, 0, 81),
                         (128, 64, 128), (244, 35, 232), (250, 170, 160), (230, 150, 140), (70, 70, 70),
                         (102, 102, 156), (190, 153, 153), (180, 165, 180), (150, 100, 100), (150, 120, 90),
                         (153, 153, 153), (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35),
                         (152, 251, 152), (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70),
                         (0, 60, 100), (0, 0, 90), (0, 0, 110), (0, 80, 100), (0, 0, 230), (119, 11, 32),
                         (0, 0, 142)], dtype=np.uint8)
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        r = g = b = 0
        cid = i + 1  # give class 0 a colour
        for j in range(7):
            r ^= ((cid >> 0) & 1) << (7 - j)
            g ^= ((cid >> 1) & 1) << (7 - j)
            b ^= ((cid >> 2) & 1) << (7 - j)
            cid >>= 3
        cmap[i] = (r, g, b)
    return cmap


def palette_array(palette: Optional[Sequence[Sequence[int]]], n: int) -> np.ndarray:
    return np.asarray(palette, dtype=np.uint8).reshape(-1, 3) if palette is not None else official_colormap(n)


def colorize(label, palette: Optional[Sequence[Sequence[int]]] = None, num_classes: Optional[int] = None) -> np.ndarray:
    """(H, W) or (B, H, W) ids (numpy or tensor) -> uint8 RGB (..., 3)."""
    if torch.is_tensor(label):
        label = label.detach().cpu().numpy()
    label = np.asarray(label).astype(np.int64)
    n = num_classes if num_classes is not None else (len(palette) if palette is not None else int(label.max()) + 1)
    cmap = palette_array(palette, n)
    return cmap[np.clip(label, 0, len(cmap) - 1)]


def to_uint8_image(x: torch.Tensor) -> np.ndarray:
    """Generator output in [-1, 1], (3, H, W) or (B, 3, H, W) -> uint8 (..., H, W, 3)."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.movedim(-3, -1).numpy()
