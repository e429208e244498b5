"""LVIS v1 (the IJCV extension's long-tail data), in the layout detectron2 and mmdetection use::

    ROOT/lvis_v1_train.json   ROOT/lvis_v1_val.json
    ROOT/train2017/*.jpg      ROOT/val2017/*.jpg        (the COCO 2017 images)

An image's file comes from its ``coco_url`` (``.../val2017/000000397133.jpg`` ->
``ROOT/val2017/000000397133.jpg``): LVIS val draws images from both COCO folders. Entries without a
``coco_url`` fall back to ``file_name`` in the split's own folder.

Label maps are built from the instance masks (polygons, uncompressed or compressed RLE) with
pycocotools (``pip install 'oasisgan[lvis]'``), on the fly when an item is loaded: decoding the
masks of an image costs about a millisecond (docs/sparse.md), less than reading its JPEG, so
there is no conversion step. Rules:

- model id 0 is don't care: every pixel no instance covers (LVIS annotates objects, never stuff,
  and not every object), so the N+1 loss and evaluation ignore it;
- categories map to contiguous model ids 1..N in increasing LVIS category id (1203 in v1:
  ``semantic_nc`` 1204); names, a palette and each class's frequency group (LVIS's ``r``/``c``/``f``:
  rare, common, frequent by the number of training images) come from the annotation file and form
  the classes metadata (``ClassesSpec.groups``);
- overlaps: instances are pasted largest first (by ``area``, ties by annotation id), so a smaller
  instance lying on a larger one stays visible (a cup on a table keeps its pixels). The official
  unfinished loader pasted in annotation order, which lets a table hide every cup listed before it;
- an image without annotations is kept, as the official loader did: its map is all don't care.

The categories (and so the model's classes) come from the training file, else the val file; the
whole JSON is parsed once per process (``load_index`` caches it): LVIS v1 train is a 1.1 GB file.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np
from PIL import Image

from ..errors import DataError
from ..labels import official_colormap
from .base import Listing, Pair, PairedDataset
from .classes import ClassesSpec
from .photos import read_photo

ANNOTATION_FILES = {"train": "lvis_v1_train.json", "val": "lvis_v1_val.json"}
IMAGE_FOLDERS = {"train": "train2017", "val": "val2017"}
FREQUENCY_GROUPS = {"r": "rare", "c": "common", "f": "frequent"}
GROUP_ORDER = ("rare", "common", "frequent")
DONTCARE_NAME = "unannotated"
EXTRA = "lvis"  # the pip extra that installs pycocotools


def _mask_api():
    try:
        from pycocotools import mask
    except ImportError:
        raise DataError("the lvis preset decodes instance masks with pycocotools, which is not installed: "
                        f"pip install 'oasisgan[{EXTRA}]'") from None
    return mask


def resolve_root(root: Union[str, Path]) -> Path:
    return Path(root)


def annotation_file(root: Union[str, Path], split: str) -> Path:
    if split not in ANNOTATION_FILES:
        raise DataError(f"unknown split {split!r} for LVIS; use train or val")
    return Path(root) / ANNOTATION_FILES[split]


@dataclass
class Record:
    """One image: its file, its size in the JSON and its annotations (largest first)."""

    image_id: int
    path: Path
    width: int
    height: int
    anns: List[dict] = field(default_factory=list)


@dataclass
class LVISIndex:
    """An annotation file, read: categories, images in id order, and what is wrong with it."""

    path: Path
    cat_ids: List[int]  # LVIS category id of model id 1, 2, ...
    names: List[str]
    frequency: List[Optional[str]]  # "rare" | "common" | "frequent" | None, per category
    records: List[Record]
    unknown_category: List[Tuple[int, int, int]] = field(default_factory=list)  # (ann id, image id, cat id)
    unknown_image: List[Tuple[int, int]] = field(default_factory=list)  # (ann id, image id)
    missing_files: List[Tuple[int, Path]] = field(default_factory=list)  # (image id, path)

    def errors(self) -> List[str]:
        """One line per kind of defect, naming the file and the first entries."""
        out = []
        if self.unknown_category:
            first = ", ".join(f"annotation {a} (image {i}) has category_id {c}"
                              for a, i, c in self.unknown_category[:5])
            out.append(f"{self.path}: {len(self.unknown_category)} annotation(s) point to a category that is not "
                       f"in its 'categories': {first}")
        if self.unknown_image:
            first = ", ".join(f"annotation {a} has image_id {i}" for a, i in self.unknown_image[:5])
            out.append(f"{self.path}: {len(self.unknown_image)} annotation(s) point to an image that is not in its "
                       f"'images': {first}")
        if self.missing_files:
            first = ", ".join(f"image {i}: {p}" for i, p in self.missing_files[:5])
            out.append(f"{self.path}: {len(self.missing_files)} image file(s) do not exist: {first}")
        return out


def _image_path(root: Path, split: str, img: dict) -> Path:
    url = img.get("coco_url")
    if url:
        parts = str(url).rstrip("/").split("/")
        if len(parts) >= 2:
            return root / parts[-2] / parts[-1]
    if img.get("file_name"):
        return root / IMAGE_FOLDERS[split] / Path(str(img["file_name"])).name
    raise DataError(f"{annotation_file(root, split)}: image {img.get('id')} has neither coco_url nor file_name")


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"LVIS: no annotation file {path} (expected {', '.join(ANNOTATION_FILES.values())} "
                        f"next to {', '.join(f + '/' for f in IMAGE_FOLDERS.values())})")
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read the LVIS annotation file {path}: {e}") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{path} is not an LVIS annotation file: no '{key}' list")
    return data


_CACHE: Dict[Tuple[str, int, int, bool], LVISIndex] = {}


def load_index(root: Union[str, Path], split: str, check_files: bool = True) -> LVISIndex:
    """The split's annotation file, indexed (cached per process while the file is unchanged).
    `check_files`: look up every image file (a stat each)."""
    root = Path(root)
    path = annotation_file(root, split)
    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size, check_files)
    except OSError:
        key = None
    if key is not None and key in _CACHE:
        return _CACHE[key]
    data = _read_json(path)
    cats = sorted(data["categories"], key=lambda c: int(c["id"]))
    cat_ids = [int(c["id"]) for c in cats]
    model_id = {c: i + 1 for i, c in enumerate(cat_ids)}
    names = [str(c.get("name", f"category_{c['id']}")) for c in cats]
    freq = [FREQUENCY_GROUPS.get(str(c.get("frequency", ""))) for c in cats]
    records: Dict[int, Record] = {}
    for img in sorted(data["images"], key=lambda i: int(i["id"])):
        records[int(img["id"])] = Record(int(img["id"]), _image_path(root, split, img), int(img["width"]),
                                         int(img["height"]))
    index = LVISIndex(path, cat_ids, names, freq, list(records.values()))
    for ann in data["annotations"]:
        aid, iid, cid = int(ann.get("id", -1)), int(ann["image_id"]), int(ann["category_id"])
        if iid not in records:
            index.unknown_image.append((aid, iid))
        elif cid not in model_id:
            index.unknown_category.append((aid, iid, cid))
        else:
            records[iid].anns.append({"id": aid, "model_id": model_id[cid], "area": float(ann.get("area", 0.0)),
                                      "segmentation": ann["segmentation"]})
    for r in index.records:
        r.anns.sort(key=lambda a: (-a["area"], a["id"]))  # largest first: small instances stay on top
    if check_files:
        index.missing_files = [(r.image_id, r.path) for r in index.records if not r.path.is_file()]
    if key is not None:
        _CACHE[key] = index
    return index


def class_index(root: Union[str, Path]) -> LVISIndex:
    """The index whose categories define the model's classes: train, else val."""
    root = Path(root)
    for split in ("train", "val"):
        if annotation_file(root, split).is_file():
            return load_index(root, split)
    raise DataError(f"LVIS: no {ANNOTATION_FILES['train']} or {ANNOTATION_FILES['val']} in {root}")


def read_classes(root: Union[str, Path]):
    """The classes metadata (``ClassesSpec``): don't care + the categories, with groups."""
    idx = class_index(root)
    n = len(idx.names) + 1
    return ClassesSpec(names=[DONTCARE_NAME] + idx.names, colors=official_colormap(n).tolist(), dontcare=0,
                       groups=[None] + idx.frequency, path=idx.path)


def rasterize(record: Record, where: Union[str, Path] = "<lvis>") -> np.ndarray:
    """The (H, W) int32 model-id map of one image: 0 where no instance is, then the instances
    pasted largest first."""
    out = np.zeros((record.height, record.width), np.int32)
    if not record.anns:
        return out
    mask_api = _mask_api()
    h, w = record.height, record.width
    for ann in record.anns:
        seg = ann["segmentation"]
        try:
            if isinstance(seg, list):  # polygons [[x0, y0, x1, y1, ...], ...]
                polys = [p for p in seg if len(p) >= 6]
                if not polys:
                    continue
                rle = mask_api.merge(mask_api.frPyObjects(polys, h, w))
            elif isinstance(seg, dict) and isinstance(seg.get("counts"), list):  # uncompressed RLE
                rle = mask_api.frPyObjects(seg, *seg["size"])
            elif isinstance(seg, dict):  # compressed RLE
                rle = {"size": seg["size"], "counts": seg["counts"].encode() if isinstance(seg["counts"], str)
                       else seg["counts"]}
            else:
                raise TypeError(f"segmentation of type {type(seg).__name__}")
            with warnings.catch_warnings():  # pycocotools 2.0.11 on numpy 2: a copy= DeprecationWarning
                warnings.simplefilter("ignore", DeprecationWarning)
                m = mask_api.decode(rle)
        except Exception as e:
            raise DataError(f"{where}: annotation {ann['id']} of image {record.image_id} cannot be decoded: "
                            f"{e}") from None
        if m.shape != (h, w):
            raise DataError(f"{where}: annotation {ann['id']} of image {record.image_id} is a "
                            f"{m.shape[1]}x{m.shape[0]} mask on a {w}x{h} image")
        out[m.astype(bool)] = ann["model_id"]
    return out


def list_split(root: Union[str, Path], split: str) -> Listing:
    """Pairs of (image file, annotation file); files the JSON names but that do not exist are the
    unmatched labels (their annotations lack an image)."""
    root = Path(root)
    idx = load_index(root, split)
    missing = {i for i, _ in idx.missing_files}
    pairs = [Pair(r.path, idx.path, f"{r.path.parent.name}/{r.path.name}") for r in idx.records
             if r.image_id not in missing]
    return Listing(pairs, root / IMAGE_FOLDERS[split], idx.path, [], [p for _, p in idx.missing_files])


class LVISDataset(PairedDataset):
    """`PairedDataset` whose label maps are rasterized from the annotation file."""

    def __init__(self, cfg, index: LVISIndex, split: str, augment: bool, seed: int, root: Path):
        missing = {i for i, _ in index.missing_files}
        self.records = [r for r in index.records if r.image_id not in missing]
        listing = Listing([Pair(r.path, index.path, f"{r.path.parent.name}/{r.path.name}") for r in self.records],
                          Path(root) / IMAGE_FOLDERS[split], index.path)
        super().__init__(cfg, listing, split, augment, seed, root)

    def load(self, index: int) -> Tuple[Image.Image, Image.Image]:
        rec = self.records[index]
        image = read_photo(rec.path)
        if image.size != (rec.width, rec.height):
            raise DataError(f"image {rec.path} is {image.size[0]}x{image.size[1]} but "
                            f"{self.listing.label_dir} gives image {rec.image_id} as {rec.width}x{rec.height}")
        return image, Image.fromarray(rasterize(rec, self.listing.label_dir))


def build(cfg, root: Union[str, Path], split: str, augment: bool, seed: int) -> LVISDataset:
    """The dataset of one split; a missing image or an unknown category is an error naming it."""
    _mask_api()
    root = Path(root)
    index = load_index(root, split)
    errors = index.errors()
    if errors:
        raise DataError("; ".join(errors) + f" (run `oasis data check --preset {cfg.preset} --root {root}`)")
    if index.cat_ids and len(index.cat_ids) + 1 != cfg.semantic_nc:
        raise DataError(f"{index.path} has {len(index.cat_ids)} categories, the model {cfg.semantic_nc - 1} "
                        f"(+ don't care): the train and val files must share their categories")
    if not index.records:
        raise DataError(f"{index.path} lists no images")
    return LVISDataset(cfg, index, split, augment, seed, root)


def check_split(cfg, root: Path, split: str, choose: Callable[[int], Tuple[str, set]], sr) -> List[str]:
    """Fill `sr` (a `check.SplitReport`) for one LVIS split; returns its errors. `choose(n)` gives
    the check's mode for `n` images and the indices it reads whole (`check.sampled_items`): full
    rasterizes every image and opens every image file; headers opens every image file and
    rasterizes the chosen images; sample rasterizes the chosen images only."""
    try:
        _mask_api()
        index = load_index(root, split)
    except DataError as e:  # no pycocotools, no or a broken annotation file: one line
        sr.layout_error = str(e)
        return []
    errors = index.errors()
    sr.image_dir, sr.label_dir = str(root / IMAGE_FOLDERS[split]), str(index.path)
    missing = {i for i, _ in index.missing_files}
    records = [r for r in index.records if r.image_id not in missing]
    sr.pairs = len(records)
    sr.mode, chosen = choose(len(records))
    mode = sr.mode
    n = cfg.semantic_nc
    sr.class_pixels = np.zeros(n, np.int64)
    sr.class_images = np.zeros(n, np.int64)
    for i, rec in enumerate(records):
        if mode == "sample" and i not in chosen:
            continue
        sr.checked += 1
        sr.image_sizes[(rec.width, rec.height)] += 1
        if mode != "sample":
            try:
                with Image.open(rec.path) as im:
                    if im.size != (rec.width, rec.height):
                        sr.size_mismatch.append((str(rec.path), str(index.path),
                                                 f"{im.size[0]}x{im.size[1]} vs {rec.width}x{rec.height}"))
            except Exception as e:
                sr.unreadable.append((str(rec.path), f"{type(e).__name__}: {e}"))
        if i in chosen:
            try:
                ids = rasterize(rec, index.path)
            except DataError as e:
                sr.unreadable.append((str(index.path), str(e)))
                continue
            bad = ids >= n
            if bad.any():
                sr.bad_ids[f"{index.path} image {rec.image_id}"] = np.unique(ids[bad]).tolist()
                ids = ids[~bad]
            counts = np.bincount(ids.ravel(), minlength=n)[:n]
            sr.decoded += 1
            sr.class_pixels += counts
            sr.class_images += counts > 0
            if counts.sum() == counts[0]:
                sr.all_dontcare.append(f"{rec.path} (image {rec.image_id})")
    return errors


def group_summary(class_images: np.ndarray, groups: List[Optional[str]], names: List[str]) -> str:
    """'rare 3/10 classes present, common ..., frequent ...' for a check report."""
    parts = []
    for g in GROUP_ORDER:
        ids = [i for i, x in enumerate(groups) if x == g]
        if ids:
            present = int((class_images[ids] > 0).sum())
            parts.append(f"{g} {present}/{len(ids)}")
    return ", ".join(parts)
