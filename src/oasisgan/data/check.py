"""`oasis data check`: scan a dataset for everything that would make training fail or go silently wrong.

Errors (``report.ok`` is False, the command exits 1):
  missing folders / no pairs in the training split; fewer training pairs than one batch;
  images without labels and labels without images; unreadable (truncated, corrupt) files;
  image and label of different sizes; label ids outside the preset's classes (each file and id);
  colours that are not in the palette (colour labels); labels stored as JPEG (lossy: ids change);
  ambiguous palettes (two classes with one colour) when colour labels are used.
Warnings: no validation split, images smaller than the load size (upsampled), labels that are all
don't-care, classes that never occur in the training split.

How much is read (``mode``):
  ``full``     decode every image and label (ids, colours, truncation anywhere in a file);
  ``headers``  open every file: existence, format, size, image/label size match, and the end-of-file
               marker of PNG and JPEG files (what a cut-off copy or download loses), then decode an evenly
               spaced sample of 16 pairs for ids and colours. 19x cheaper than ``full`` on 20,000 ADE20K
               pairs (benchmarks/bench_check.py); what training runs before its first iteration;
  ``sample``   decode only the 16-pair sample (file pairing is still checked for every file);
  ``auto``     ``full`` for a split of at most ``AUTO_FULL_PAIRS`` pairs, else ``headers``.
"""
from __future__ import annotations

import json
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from ..config import DATA_DEFINED_PRESETS
from ..errors import DataError
from ..labels import palette_array
from . import lvis
from .classes import find_classes_file, read_classes_file
from .labelmaps import ColorLookup, _describe_colors, label_convention, open_label
from .layouts import list_split

QUICK_SAMPLE = 16
MODES = ("auto", "full", "headers", "sample")
# "auto": "full" up to this many pairs in a split, else "headers". benchmarks/bench_check.py, 20,000
# ADE20K-sized pairs (683x512 JPEG + PNG label), 2 CPU cores, warm page cache: full 112 s (179
# pairs/s, so 2000 pairs take ~11 s), headers 5.8 s, sample 1.3 s (the listing).
AUTO_FULL_PAIRS = 2000
# The trailer every complete file of these formats ends with (PNG: the IEND chunk, JPEG: the EOI
# marker), looked for near the end so that a few padding bytes after it do not count as damage.
_TRAILERS = {"PNG": b"IEND\xaeB`\x82", "JPEG": b"\xff\xd9"}
_TRAILER_WINDOW = 1024
MAX_LISTED = 20  # files named per kind of defect in the text report (all of them in --json)


@dataclass
class SplitReport:
    split: str
    image_dir: str = ""
    label_dir: str = ""
    pairs: int = 0
    checked: int = 0
    decoded: int = 0
    mode: str = ""
    layout_error: Optional[str] = None
    unmatched_images: List[str] = field(default_factory=list)
    unmatched_labels: List[str] = field(default_factory=list)
    unreadable: List[Tuple[str, str]] = field(default_factory=list)
    size_mismatch: List[Tuple[str, str, str]] = field(default_factory=list)
    bad_ids: Dict[str, List[int]] = field(default_factory=dict)
    unknown_colors: Dict[str, str] = field(default_factory=dict)
    jpeg_labels: List[str] = field(default_factory=list)
    color_labels: int = 0
    all_dontcare: List[str] = field(default_factory=list)
    small_images: List[str] = field(default_factory=list)
    image_sizes: Counter = field(default_factory=Counter)
    class_pixels: Optional[np.ndarray] = None
    class_images: Optional[np.ndarray] = None

    def annotated_fraction(self, dontcare: Optional[int]) -> Optional[float]:
        """The fraction of decoded pixels that are not don't care."""
        if self.class_pixels is None or self.class_pixels.sum() == 0 or dontcare is None:
            return None
        return float(1 - self.class_pixels[dontcare] / self.class_pixels.sum())

    def to_dict(self, dontcare: Optional[int] = None) -> dict:
        d = {k: getattr(self, k) for k in ("split", "image_dir", "label_dir", "pairs", "checked", "decoded", "mode",
                                             "layout_error",
                                             "unmatched_images", "unmatched_labels", "bad_ids",
                                             "unknown_colors", "jpeg_labels", "color_labels", "all_dontcare",
                                             "small_images")}
        d["unreadable"] = [{"file": f, "error": e} for f, e in self.unreadable]
        d["size_mismatch"] = [{"image": i, "label": lab, "sizes": s} for i, lab, s in self.size_mismatch]
        d["image_sizes"] = {f"{w}x{h}": n for (w, h), n in self.image_sizes.most_common()}
        d["class_pixels"] = None if self.class_pixels is None else self.class_pixels.tolist()
        d["class_images"] = None if self.class_images is None else self.class_images.tolist()
        d["annotated_fraction"] = self.annotated_fraction(dontcare)
        return d


@dataclass
class CheckReport:
    preset: str
    dataset: str
    root: str
    semantic_nc: int
    dontcare: Optional[int]
    class_names: List[str]
    mode: str
    splits: Dict[str, SplitReport] = field(default_factory=dict)
    errors: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    groups: Optional[List[Optional[str]]] = None  # frequency group per class id (LVIS), or None

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        return {"ok": self.ok, "preset": self.preset, "dataset": self.dataset, "root": self.root,
                "semantic_nc": self.semantic_nc, "dontcare": self.dontcare, "class_names": self.class_names,
                "mode": self.mode, "errors": self.errors, "warnings": self.warnings, "groups": self.groups,
                "splits": {k: v.to_dict(self.dontcare) for k, v in self.splits.items()}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def format(self, histogram: bool = True) -> str:
        lines = [f"dataset check: preset {self.preset} ({self.dataset} layout), {self.semantic_nc} classes "
                 f"(don't care: {self.dontcare}), root {self.root} [{self.mode}]"]
        for s in self.splits.values():
            if s.layout_error:
                lines.append(f"{s.split}: {s.layout_error}")
                continue
            lines.append(f"{s.split}: {s.pairs} image/label pairs ({s.image_dir} + {s.label_dir}); "
                         f"{s.checked} opened, {s.decoded} decoded ({s.mode})")
            if s.image_sizes:
                sizes = ", ".join(f"{w}x{h} ({n})" for (w, h), n in s.image_sizes.most_common(5))
                more = f" and {len(s.image_sizes) - 5} more sizes" if len(s.image_sizes) > 5 else ""
                lines.append(f"  image sizes (WxH): {sizes}{more}")
            if histogram and s.class_pixels is not None and s.class_pixels.sum() > 0:
                total = s.class_pixels.sum()
                order = np.argsort(-s.class_pixels)
                shown = [f"{i}:{self.class_names[i] if i < len(self.class_names) else i} "
                         f"{100 * s.class_pixels[i] / total:.1f}% ({s.class_images[i]} img)"
                         for i in order[:12] if s.class_pixels[i] > 0]
                lines.append(f"  classes present: {int((s.class_pixels > 0).sum())}/{self.semantic_nc}; "
                             f"largest: " + ", ".join(shown))
                frac = s.annotated_fraction(self.dontcare)
                if frac is not None:
                    lines.append(f"  annotated pixels: {100 * frac:.1f}% (the rest is don't care)")
                if self.groups is not None:
                    lines.append(f"  frequency groups, classes present: "
                                 f"{lvis.group_summary(s.class_images, self.groups, self.class_names)}")
        if self.errors:
            lines.append(f"ERRORS ({len(self.errors)}):")
            lines += [f"  - {e}" for e in self.errors]
        if self.warnings:
            lines.append(f"warnings ({len(self.warnings)}):")
            lines += [f"  - {w}" for w in self.warnings]
        lines.append("OK: the dataset can be used for training" if self.ok
                     else "FAILED: fix the errors above before training")
        return "\n".join(lines)


def _listed(items: Sequence, fmt=str) -> str:
    shown = "; ".join(fmt(x) for x in items[:MAX_LISTED])
    return shown + (f"; ... and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def _cut_off(path: Path, fmt: Optional[str]) -> Optional[str]:
    """Why a PNG/JPEG file lacks its end-of-file trailer (a cut-off file), or None."""
    trailer = _TRAILERS.get(fmt or "")
    if trailer is None:
        return None
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        f.seek(max(0, size - _TRAILER_WINDOW))
        tail = f.read()
    if trailer not in tail:
        return f"the {fmt} file is cut off ({size} bytes, no end-of-file marker)"
    return None


def _scan_pair(pair, cfg, lookup: ColorLookup, decode_image: bool, decode_label: bool):
    """Returns a dict of findings for one pair (never raises). Without decoding, a file is only
    opened (format, size) and checked for its end-of-file trailer."""
    out: Dict = {}
    if pair.label.suffix.lower() in (".jpg", ".jpeg"):
        decode_label = False  # refused by the label reader; listed on its own (jpeg_labels)
    try:
        with Image.open(pair.image) as im:
            out["image_size"] = im.size
            if decode_image:
                if im.format == "JPEG":
                    im.draft("RGB", (max(1, im.size[0] // 8), max(1, im.size[1] // 8)))  # full parse, cheap decode
                im.load()
            else:
                why = _cut_off(pair.image, im.format)
                if why:
                    out["image_error"] = why
    except Exception as e:
        out["image_error"] = f"{type(e).__name__}: {e}"
    if not decode_label:
        try:
            with Image.open(pair.label) as lab:
                out["label_size"] = lab.size
                why = _cut_off(pair.label, lab.format)
                if why:
                    out["label_error"] = f"cannot read label file {pair.label}: {why}"
        except Exception as e:
            out["label_error"] = f"cannot read label file {pair.label}: {e}"
        return out
    try:
        lab = open_label(pair.label)
        out["label_size"] = lab.size
        arr = np.asarray(lab)
    except Exception as e:
        out["label_error"] = str(e)
        return out
    if arr.ndim == 3:
        out["color"] = True
        ids, unknown = lookup.map(arr)
        if unknown.any():
            grey = (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()
            if grey:
                arr = arr[..., 0]
            else:
                out["unknown_colors"] = f"{int(unknown.sum())} px: {_describe_colors(arr, unknown)}"
                ids = ids[~unknown]
        if arr.ndim == 3:
            arr = None
    if arr is not None:
        ids = arr.astype(np.int64)
        if label_convention(cfg) == "coco":
            ids = ids + 1
            ids[arr == 255] = 0
    # reduced here, in the worker: a full label map per pair would pile up gigabytes of results
    ids, n = ids.ravel(), cfg.semantic_nc
    bad = (ids < 0) | (ids >= n)
    if bad.any():
        out["bad_ids"] = np.unique(ids[bad]).tolist()
        ids = ids[~bad]
    out["counts"] = np.bincount(ids, minlength=n)[:n]
    return out


def _map_bounded(pool: ThreadPoolExecutor, fn, items: Sequence, window: int):
    """`pool.map` with at most `window` items in flight, so that results never pile up."""
    pending: deque = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def sampled_items(n: int, mode: str, auto_full: int, sample: int) -> Tuple[str, set]:
    """The check's mode ("auto" resolved: full up to `auto_full` items, else headers) and the
    indices of the items it reads whole: all in full mode, else `sample` spread evenly."""
    if mode == "auto":
        mode = "full" if n <= auto_full else "headers"
    chosen = set(range(n))
    if mode != "full" and n > sample:
        chosen = set(np.unique(np.linspace(0, n - 1, sample).round().astype(int)).tolist())
    return mode, chosen


def _check_split(cfg, root: Path, split: str, mode: str, progress: bool, workers: int,
                 lookup: ColorLookup, report: CheckReport) -> SplitReport:
    sr = SplitReport(split)
    try:
        listing = list_split(cfg, root, split)
    except DataError as e:
        sr.layout_error = str(e)
        return sr
    sr.image_dir, sr.label_dir = str(listing.image_dir), str(listing.label_dir)
    sr.pairs = len(listing.pairs)
    sr.unmatched_images = [str(p) for p in listing.unmatched_images]
    sr.unmatched_labels = [str(p) for p in listing.unmatched_labels]
    sr.jpeg_labels = [str(p.label) for p in listing.pairs if p.label.suffix.lower() in (".jpg", ".jpeg")]
    pairs = listing.pairs
    sr.mode, sample = sampled_items(len(pairs), mode, AUTO_FULL_PAIRS, QUICK_SAMPLE)
    mode = sr.mode
    if mode == "sample":
        pairs = [pairs[i] for i in sorted(sample)]
        sample = set(range(len(pairs)))
    n = cfg.semantic_nc
    sr.class_pixels = np.zeros(n, np.int64)
    sr.class_images = np.zeros(n, np.int64)
    load_h, load_w = int(round(cfg.load_size / cfg.aspect_ratio)), cfg.load_size
    from tqdm import tqdm

    def scan(i):
        return pairs[i], _scan_pair(pairs[i], cfg, lookup, mode == "full", i in sample)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = _map_bounded(pool, scan, range(len(pairs)), 8 * max(1, workers))
        for pair, r in tqdm(results, total=len(pairs), desc=f"checking {split}", unit="pair",
                            disable=not progress, leave=False):
            sr.checked += 1
            if "image_error" in r:
                sr.unreadable.append((str(pair.image), r["image_error"]))
            if "label_error" in r:
                sr.unreadable.append((str(pair.label), r["label_error"]))
            if "image_size" in r:
                w, h = r["image_size"]
                sr.image_sizes[(w, h)] += 1
                if w < load_w or h < load_h:
                    sr.small_images.append(str(pair.image))
            if "image_size" in r and "label_size" in r and r["image_size"] != r["label_size"]:
                (iw, ih), (lw, lh) = r["image_size"], r["label_size"]
                sr.size_mismatch.append((str(pair.image), str(pair.label), f"{iw}x{ih} vs {lw}x{lh}"))
            if r.get("color"):
                sr.color_labels += 1
            if "unknown_colors" in r:
                sr.unknown_colors[str(pair.label)] = r["unknown_colors"]
            if "bad_ids" in r:
                sr.bad_ids[str(pair.label)] = r["bad_ids"]
            if "counts" in r:
                sr.decoded += 1
                counts = r["counts"]
                sr.class_pixels += counts
                sr.class_images += counts > 0
                if cfg.dontcare_label is not None and counts.sum() > 0 and counts.sum() == counts[cfg.dontcare_label]:
                    sr.all_dontcare.append(str(pair.label))
    return sr


def _shared_colours(palette, names) -> List[str]:
    """'[r, g, b]: name (id), name (id)' for each colour that several classes share."""
    by_colour: Dict[Tuple[int, ...], List[str]] = {}
    for i, c in enumerate(palette):
        by_colour.setdefault(tuple(int(v) for v in c), []).append(f"{names[i]} ({i})")
    return [f"{list(c)}: {', '.join(ids)}" for c, ids in by_colour.items() if len(ids) > 1]


def _frequency_groups(cfg, root: Path) -> Optional[List[Optional[str]]]:
    """The classes' frequency groups from the classes metadata (LVIS, or a classes file that
    gives them), else None."""
    try:
        if cfg.dataset == "lvis":
            return lvis.read_classes(root).groups
        found = find_classes_file(root)
        return read_classes_file(found).groups if found is not None else None
    except DataError:
        return None


def check_dataset(cfg, root: Union[str, Path], mode: str = "full", splits: Optional[Sequence[str]] = None,
                  progress: bool = False, workers: int = 8) -> CheckReport:
    """Scan the dataset at `root` for the config's layout and classes; never raises for data defects.

    `mode`: auto | full | headers | sample (module docstring). `workers`: threads; the work is file I/O
    and PIL decoding, which release the GIL."""
    if mode not in MODES:
        raise ValueError(f"check mode must be one of {', '.join(MODES)}, not {mode!r}")
    root = Path(root)
    names = list(cfg.class_names) if cfg.class_names else [f"class_{i}" for i in range(cfg.semantic_nc)]
    rep = CheckReport(cfg.preset, cfg.dataset, str(root), cfg.semantic_nc, cfg.dontcare_label, names, mode)
    if not root.exists():
        rep.errors.append(f"data root {root} does not exist")
        return rep
    lookup = ColorLookup(palette_array(cfg.palette, cfg.semantic_nc))
    if cfg.preset in DATA_DEFINED_PRESETS and cfg.palette is not None:
        shared = _shared_colours(cfg.palette, names)
        if shared:  # the classes file's own palette: colour labels, display and the painter need it 1:1
            rep.errors.append("the classes file gives one colour to several classes (their colour labels "
                              "cannot be told apart): " + "; ".join(shared))
    splits = list(splits) if splits else ["train", "val"]
    raw = label_convention(cfg) == "coco"
    rep.groups = _frequency_groups(cfg, root)
    for split in splits:
        if cfg.dataset == "lvis":
            sr = SplitReport(split)
            rep.errors += [f"{split}: {e}" for e in lvis.check_split(
                cfg, root, split, lambda n: sampled_items(n, mode, AUTO_FULL_PAIRS, QUICK_SAMPLE), sr)]
        else:
            sr = _check_split(cfg, root, split, mode, progress, workers, lookup, rep)
        rep.splits[split] = sr
        E, W = rep.errors.append, rep.warnings.append
        if sr.layout_error:
            (E if split == "train" else W)(f"{split}: {sr.layout_error}")
            continue
        if sr.pairs == 0:
            (E if split == "train" else W)(f"{split}: no image/label pairs in {sr.image_dir} and {sr.label_dir}")
        elif split == "train" and sr.pairs < cfg.batch_size:
            E(f"train: only {sr.pairs} pairs, fewer than one batch of {cfg.batch_size} (training drops "
              f"incomplete batches, so an epoch would be empty); lower batch_size")
        if sr.unmatched_images:
            E(f"{split}: {len(sr.unmatched_images)} image(s) without a label in {sr.label_dir}: "
              + _listed(sr.unmatched_images))
        if sr.unmatched_labels:
            E(f"{split}: {len(sr.unmatched_labels)} label(s) without an image in {sr.image_dir}: "
              + _listed(sr.unmatched_labels))
        if sr.unreadable:
            E(f"{split}: {len(sr.unreadable)} unreadable file(s): " + _listed(sr.unreadable, lambda x: f"{x[0]} ({x[1]})"))
        if sr.size_mismatch:
            E(f"{split}: {len(sr.size_mismatch)} image/label pair(s) of different sizes: "
              + _listed(sr.size_mismatch, lambda x: f"{x[0]} / {x[1]} ({x[2]})"))
        if sr.bad_ids:
            items = list(sr.bad_ids.items())

            def fmt(x):
                ids = ", ".join(map(str, x[1][:10])) + (" ..." if len(x[1]) > 10 else "")
                rawtxt = (" (raw " + ", ".join(str(i - 1) for i in x[1][:10]) + ")") if raw else ""
                return f"{x[0]}: ids {ids}{rawtxt}"

            E(f"{split}: {len(items)} label file(s) with ids outside 0..{cfg.semantic_nc - 1} "
              f"(preset {cfg.preset} has {cfg.semantic_nc} classes; on a GPU this is the 'device-side "
              f"assert' / 'invalid index in scatter' crash): " + _listed(items, fmt))
        if sr.unknown_colors:
            E(f"{split}: {len(sr.unknown_colors)} colour label(s) with colours not in the palette: "
              + _listed(list(sr.unknown_colors.items()), lambda x: f"{x[0]}: {x[1]}"))
        if sr.jpeg_labels:
            E(f"{split}: {len(sr.jpeg_labels)} label(s) stored as JPEG, whose compression changes label ids; "
              "save labels as PNG: " + _listed(sr.jpeg_labels))
        if sr.color_labels and lookup.duplicates and cfg.preset not in DATA_DEFINED_PRESETS:
            E(f"{split}: colour labels are used but the palette gives one colour to several classes")
        if sr.small_images:
            W(f"{split}: {len(sr.small_images)} image(s) smaller than the load size "
              f"{cfg.load_size}x{int(round(cfg.load_size / cfg.aspect_ratio))} are upsampled: "
              + _listed(sr.small_images))
        if sr.all_dontcare:
            W(f"{split}: {len(sr.all_dontcare)} label(s) are entirely don't-care (id {cfg.dontcare_label}): "
              + _listed(sr.all_dontcare))
        if split == "train" and sr.mode == "full" and sr.checked and sr.class_pixels is not None:
            missing = [i for i in range(cfg.semantic_nc) if sr.class_pixels[i] == 0 and i != cfg.dontcare_label]
            if missing:
                W(f"train: {len(missing)} class(es) never occur: "
                  + ", ".join(f"{i}:{names[i]}" for i in missing[:30]) + (" ..." if len(missing) > 30 else ""))
    return rep
