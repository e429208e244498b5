"""Real diversity where a dataset has one photo per label map: layout twins.

`spread_ratio` compares the spread between a generator's images of one label map with the spread
between *real* photos of that layout. The toy dataset renders every validation layout several
times (`oasis data toy --appearances K`); real datasets have one photo per layout. For them the
reference is a layout twin: for each validation photo, the photo of another recording (another
CamVid sequence: another day, street and light) whose label map agrees with its own on the most
pixels. ``spread_real`` is the per-pixel standard deviation between the photo and its twin, taken
only over the pixels where both label maps show the same class (don't care excluded), so that
what it measures is how differently the same classes look in two real scenes, not where their
edges fall. Layouts that define ``sequence_of`` (``oasisgan.data.camvid``) have twins.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Tuple

import torch

from .. import data as data_layer


def sequence_function(cfg) -> Optional[Callable[[str], str]]:
    """The layout's recording of a file name, or None when its photos have no twins."""
    return getattr(data_layer.LAYOUTS.get(cfg.dataset), "sequence_of", None)


def agreement(a: torch.Tensor, b: torch.Tensor, dontcare: Optional[int]) -> torch.Tensor:
    """Fraction of pixels where label maps (…, H, W) agree, among those labelled in both."""
    care = torch.ones_like(a, dtype=torch.bool) if dontcare is None else (a != dontcare) & (b != dontcare)
    same = (a == b) & care
    return same.flatten(-2).sum(-1) / care.flatten(-2).sum(-1).clamp(min=1)


def find_twins(cfg, data_root, dataset, n_maps: int, splits: Tuple[str, ...] = ("train", "val"),
               ) -> List[Optional[Tuple[torch.Tensor, torch.Tensor, float]]]:
    """For each of the first `n_maps` items of `dataset`: (twin image (3,H,W), mask of the pixels
    whose classes agree (H,W), agreement), or None when no photo of another recording exists."""
    seq = sequence_function(cfg)
    if seq is None or data_root is None:
        return [None] * n_maps
    # the photos' own annotation, whatever density the model was trained at: twins and the pixels
    # where classes agree are properties of the data, the same for every model compared
    dense = cfg.replace(annotation_density=1.0) if getattr(cfg, "annotation_density", 1.0) < 1.0 else cfg
    pool = [data_layer.build_dataset(dense, data_root, split=s, augment=False) for s in splits]
    pool_items = [(ds, i, seq(ds.pairs[i].name)) for ds in pool for i in range(len(ds))]
    labels = torch.stack([torch.as_tensor(ds[i]["label"]) for ds, i, _ in pool_items])
    out: List[Optional[Tuple[torch.Tensor, torch.Tensor, float]]] = []
    for k in range(n_maps):
        item = dataset[k]
        own = seq(str(item["name"]))
        label = torch.as_tensor(item["label"])
        scores = agreement(label[None], labels, cfg.dontcare_label)
        other = torch.tensor([s != own for _, _, s in pool_items])
        if not other.any():
            out.append(None)
            continue
        best = int(torch.where(other, scores, torch.full_like(scores, -1.0)).argmax())
        ds, i, _ = pool_items[best]
        twin = ds[i]
        care = label == torch.as_tensor(twin["label"])
        if cfg.dontcare_label is not None:
            care &= label != cfg.dontcare_label
        out.append((torch.as_tensor(twin["image"]), care, float(scores[best])))
    return out


def masked_spread(images: torch.Tensor, mask: torch.Tensor) -> float:
    """`pixel_spread` of (K, 3, H, W) images in [-1, 1], averaged over the pixels of `mask` only."""
    std = images.float().std(dim=0, correction=1).mean(0)
    return float(std[mask].mean()) * 127.5 if mask.any() else float("nan")
