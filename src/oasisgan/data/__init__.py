"""The data layer: benchmark layouts, custom folders, the toy dataset, transforms and checks.

Contract (docs/architecture.md):

- ``config_for_root(preset_name, root=None, **overrides) -> OASISConfig``
- ``build_dataset(cfg, root, split="train", augment=None, seed=None) -> Dataset`` of
  ``{"image": float32 (3,H,W) in [-1,1], "label": int64 (H,W), "name": str}``
- ``read_label_file(path, cfg) -> np.ndarray`` int64 (H, W) model ids (LabelError naming the file)
- ``check_dataset(cfg, root, mode="full", splits=None) -> CheckReport`` (``.ok``, ``.format()``)
- ``oasisgan.data.toy.generate_toy(out, size=64, n_train=2000, n_val=200, seed=0)``
- ``oasisgan.data.loader``: every DataLoader of the project, ``epoch_loader(dataset, cfg, epoch,
  batch_size, rank, world_size, start_batch, ...)`` (training order, exact mid-epoch resume),
  ``batches_per_epoch``, ``eval_loader(dataset, batch_size, max_images)`` (in order) and ``fixed_batch``
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

from ..config import DATA_DEFINED_PRESETS, PRESETS, ConfigError, preset
from ..errors import DataError, LabelError
from ..labels import official_colormap
from . import lvis
from .base import PairedDataset
from .check import check_dataset
from .classes import BENCHMARK_CLASSES, BENCHMARK_PALETTES, ClassesSpec, read_classes_file, write_classes_file
from .labelmaps import read_label_file
from .layouts import LAYOUTS, list_split
from .loader import batches_per_epoch, epoch_loader, eval_loader, fixed_batch
from .toy import generate_toy

__all__ = ["config_for_root", "build_dataset", "read_label_file", "check_dataset", "generate_toy",
           "list_split", "epoch_loader", "batches_per_epoch", "eval_loader", "fixed_batch", "PairedDataset",
           "read_classes_file", "write_classes_file", "ClassesSpec", "DataError", "LabelError", "LAYOUTS"]


def config_for_root(preset_name: str, root: Optional[Union[str, Path]] = None, **overrides: Any):
    """The preset's config; for data-defined presets (custom, toy) classes come from ``root``'s classes file.

    Benchmark presets get their class names and the official palette filled in.
    """
    if preset_name in DATA_DEFINED_PRESETS:
        values: dict = {}
        if root is not None:
            spec = lvis.read_classes(root) if PRESETS[preset_name]["dataset"] == "lvis" else read_classes_file(root)
            values = dict(semantic_nc=spec.num_classes, class_names=list(spec.names),
                          palette=[list(c) for c in spec.colors], dontcare_label=spec.dontcare)
        elif not overrides.get("semantic_nc"):
            raise ConfigError(f"preset {preset_name!r} takes its classes from the dataset's classes file: "
                              "give the data root (--data-root)")
        values.update(overrides)
        return preset(preset_name, **values)
    cfg = preset(preset_name, **overrides)
    names = BENCHMARK_CLASSES.get(cfg.dataset)
    fill = {}
    if cfg.class_names is None and names is not None and len(names) == cfg.semantic_nc:
        fill["class_names"] = list(names)
    if cfg.palette is None:
        own = BENCHMARK_PALETTES.get(cfg.dataset)
        fill["palette"] = own if own is not None else official_colormap(cfg.semantic_nc).tolist()
    return cfg.replace(**fill) if fill else cfg


def _names(paths, limit: int = 5) -> str:
    s = ", ".join(str(p) for p in paths[:limit])
    return s + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def build_dataset(cfg, root: Union[str, Path], split: str = "train", augment: Optional[bool] = None,
                  seed: Optional[int] = None) -> PairedDataset:
    """The dataset of one split. ``augment=None``: random crop + flip for train (flip unless
    ``cfg.no_flip``), none for val (brought to the generated size; ``cfg.preprocess_mode``). ``seed`` defaults to ``cfg.seed``."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"data root {root} does not exist")
    if augment is None:
        augment = split == "train"
    if cfg.dataset == "lvis":
        return lvis.build(cfg, root, split, bool(augment), cfg.seed if seed is None else seed)
    listing = list_split(cfg, root, split)
    if listing.unmatched_images or listing.unmatched_labels:
        parts = []
        if listing.unmatched_images:
            parts.append(f"{len(listing.unmatched_images)} image(s) without a label in {listing.label_dir}: "
                         f"{_names(listing.unmatched_images)}")
        if listing.unmatched_labels:
            parts.append(f"{len(listing.unmatched_labels)} label(s) without an image in {listing.image_dir}: "
                         f"{_names(listing.unmatched_labels)}")
        raise DataError("; ".join(parts) + f" (run `oasis data check --preset {cfg.preset} --root {root}`)")
    if not listing.pairs:
        raise DataError(f"no image/label pairs for split {split!r} in {listing.image_dir} and {listing.label_dir}")
    return PairedDataset(cfg, listing, split, bool(augment), cfg.seed if seed is None else seed, root)
