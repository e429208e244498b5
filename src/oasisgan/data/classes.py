"""Class names and colours: the three benchmarks' label sets and the ``classes`` file of custom data.

Benchmark ids are *model* ids: id 0 is the don't-care class in all of them (ADE20K "other",
Cityscapes "unlabeled", COCO-Stuff "unlabeled" = raw 255).

The classes file of a custom dataset (``classes.yaml``, ``classes.yml`` or ``classes.json`` at the
dataset root)::

    dontcare: 0              # id ignored by the losses; null if every id is a real class
    classes:
      - {id: 0, name: unlabeled, color: [0, 0, 0]}
      - {id: 1, name: sky,       color: [70, 130, 180]}
      - ...

A class may carry ``frequency: rare | common | frequent`` (LVIS's groups; the lvis preset fills them
from its annotation file): `oasis evaluate` then reports IoU per group. Ids must be 0..N-1 without gaps (their order is the model's channel order); ``color`` (or
``colour``) is the RGB colour used for colour-coded label PNGs and for display. A short form is
accepted too: ``names: [...]`` and ``colors: [[r, g, b], ...]`` (list position = id).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from ..errors import DataError
from ..labels import official_colormap

CLASSES_FILENAMES = ("classes.yaml", "classes.yml", "classes.json")

ADE20K_CLASSES: List[str] = ["other"] + [
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair",
    "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
    "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion",
    "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper",
    "fireplace", "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table",
    "pillow", "screen door", "stairway", "river", "bridge", "bookcase", "blind", "coffee table",
    "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm", "kitchen island",
    "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light",
    "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman",
    "bottle", "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy",
    "washer", "plaything", "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag",
    "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name", "microwave", "pot",
    "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce",
    "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag",
]

# Cityscapes labelIds 0..33, plus 34 for "license plate" (id -1 in the Cityscapes scripts; never
# stored in *_labelIds.png, but the official semantic_nc of 35 leaves a channel for it).
CITYSCAPES_CLASSES: List[str] = [
    "unlabeled", "ego vehicle", "rectification border", "out of roi", "static", "dynamic", "ground",
    "road", "sidewalk", "parking", "rail track", "building", "wall", "fence", "guard rail", "bridge",
    "tunnel", "pole", "polegroup", "traffic light", "traffic sign", "vegetation", "terrain", "sky",
    "person", "rider", "car", "truck", "bus", "caravan", "trailer", "train", "motorcycle", "bicycle",
    "license plate",
]

# COCO-Stuff: model id = raw id + 1; raw 255 (unlabeled) -> 0.
COCO_STUFF_CLASSES: List[str] = ["unlabeled"] + [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "street sign", "stop sign", "parking meter", "bench", "bird",
    "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "hat", "backpack",
    "umbrella", "shoe", "eye glasses", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard",
    "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "plate", "wine glass", "cup", "fork", "knife", "spoon", "bowl",
    "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut",
    "cake", "chair", "couch", "potted plant", "bed", "mirror", "dining table", "window", "desk",
    "toilet", "door", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave",
    "oven", "toaster", "sink", "refrigerator", "blender", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush", "hair brush", "banner", "blanket", "branch",
    "bridge", "building-other", "bush", "cabinet", "cage", "cardboard", "carpet", "ceiling-other",
    "ceiling-tile", "cloth", "clothes", "clouds", "counter", "cupboard", "curtain", "desk-stuff",
    "dirt", "door-stuff", "fence", "floor-marble", "floor-other", "floor-stone", "floor-tile",
    "floor-wood", "flower", "fog", "food-other", "fruit", "furniture-other", "grass", "gravel",
    "ground-other", "hill", "house", "leaves", "light", "mat", "metal", "mirror-stuff", "moss",
    "mountain", "mud", "napkin", "net", "paper", "pavement", "pillow", "plant-other", "plastic",
    "platform", "playingfield", "railing", "railroad", "river", "road", "rock", "roof", "rug",
    "salad", "sand", "sea", "shelf", "sky-other", "skyscraper", "snow", "solid-other", "stairs",
    "stone", "straw", "structural-other", "table", "tent", "textile-other", "towel", "tree",
    "vegetable", "wall-brick", "wall-concrete", "wall-other", "wall-panel", "wall-stone",
    "wall-tile", "wall-wood", "water-other", "waterdrops", "window-blind", "window-other", "wood",
]

# CamVid (SegNet release): ids 0..10, 11 = Unlabelled (don't care); the release's own colours.
CAMVID_CLASSES: List[str] = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence",
                             "Car", "Pedestrian", "Bicyclist", "Unlabelled"]
CAMVID_PALETTE: List[List[int]] = [
    [128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128], [60, 40, 222], [128, 128, 0],
    [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0], [0, 128, 192], [0, 0, 0]]

BENCHMARK_CLASSES: Dict[str, List[str]] = {
    "ade20k": ADE20K_CLASSES,
    "ade20k-outdoor": ADE20K_CLASSES,
    "cityscapes": CITYSCAPES_CLASSES,
    "coco-stuff": COCO_STUFF_CLASSES,
    "camvid": CAMVID_CLASSES,
}
# Layouts whose release has its own colours (the others use the official OASIS colormap).
BENCHMARK_PALETTES: Dict[str, List[List[int]]] = {"camvid": CAMVID_PALETTE}


@dataclass
class ClassesSpec:
    """The content of a custom dataset's classes file."""

    names: List[str]
    colors: List[List[int]]
    dontcare: Optional[int]
    path: Optional[Path] = None
    groups: Optional[List[Optional[str]]] = None  # frequency group per id (rare/common/frequent), or None

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def to_dict(self) -> Dict[str, Any]:
        classes = []
        for i, (n, c) in enumerate(zip(self.names, self.colors)):
            entry: Dict[str, Any] = {"id": i, "name": n, "color": list(c)}
            if self.groups is not None and self.groups[i] is not None:
                entry["frequency"] = self.groups[i]
            classes.append(entry)
        return {"dontcare": self.dontcare, "classes": classes}


def find_classes_file(root: Union[str, Path]) -> Optional[Path]:
    root = Path(root)
    for name in CLASSES_FILENAMES:
        if (root / name).is_file():
            return root / name
    return None


def _color(value: Any, where: str) -> List[int]:
    if isinstance(value, str):  # "#rrggbb"
        s = value.lstrip("#")
        if len(s) == 6:
            try:
                return [int(s[i:i + 2], 16) for i in (0, 2, 4)]
            except ValueError:
                pass
        raise DataError(f"{where}: colour {value!r} is not [r, g, b] or '#rrggbb'")
    if not isinstance(value, (list, tuple)) or len(value) != 3 or not all(
            isinstance(v, int) and 0 <= v <= 255 for v in value):
        raise DataError(f"{where}: colour {value!r} must be [r, g, b] with integers 0..255")
    return [int(v) for v in value]


def parse_classes(data: Any, where: str = "classes file") -> ClassesSpec:
    """Validate the mapping read from a classes file; errors name `where` and the entry."""
    if not isinstance(data, dict):
        raise DataError(f"{where}: expected a mapping with 'classes' (or 'names'), got {type(data).__name__}")
    dontcare = data.get("dontcare", data.get("dontcare_label", data.get("ignore", 0)))
    if "classes" in data:
        entries = data["classes"]
        if not isinstance(entries, list) or not entries:
            raise DataError(f"{where}: 'classes' must be a non-empty list")
        by_id: Dict[int, Dict[str, Any]] = {}
        for pos, e in enumerate(entries):
            if isinstance(e, str):
                e = {"id": pos, "name": e}
            if not isinstance(e, dict) or "name" not in e:
                raise DataError(f"{where}: classes[{pos}] must be a mapping with at least 'name'")
            cid = e.get("id", pos)
            if not isinstance(cid, int) or cid < 0:
                raise DataError(f"{where}: classes[{pos}] has id {cid!r}; ids are integers >= 0")
            if cid in by_id:
                raise DataError(f"{where}: id {cid} is given twice ({by_id[cid]['name']!r}, {e['name']!r})")
            by_id[cid] = e
        n = len(by_id)
        missing = sorted(set(range(n)) - set(by_id))
        if missing:
            raise DataError(f"{where}: ids must be 0..{n - 1} without gaps; missing {missing[:10]}")
        names = [str(by_id[i]["name"]) for i in range(n)]
        raw_colors = [by_id[i].get("color", by_id[i].get("colour")) for i in range(n)]
        groups = [_group(by_id[i].get("frequency"), f"{where}: class {i} ({names[i]!r})") for i in range(n)]
        if all(g is None for g in groups):
            groups = None
    elif "names" in data:
        names = [str(x) for x in data["names"]]
        n = len(names)
        cols = data.get("colors", data.get("colours"))
        if cols is not None and len(cols) != n:
            raise DataError(f"{where}: {len(cols)} colours for {n} names")
        raw_colors = list(cols) if cols is not None else [None] * n
        groups = None
    else:
        raise DataError(f"{where}: no 'classes' (or 'names') list")
    if n < 2:
        raise DataError(f"{where}: needs at least 2 classes, has {n}")
    default = official_colormap(n)
    colors = [_color(c, f"{where}: class {i} ({names[i]!r})") if c is not None else default[i].tolist()
              for i, c in enumerate(raw_colors)]
    if dontcare is not None and (not isinstance(dontcare, int) or not 0 <= dontcare < n):
        raise DataError(f"{where}: dontcare = {dontcare!r} must be an id in 0..{n - 1} or null")
    return ClassesSpec(names=names, colors=colors, dontcare=dontcare, groups=groups)


FREQUENCY_GROUPS = ("rare", "common", "frequent")


def _group(value: Any, where: str) -> Optional[str]:
    """A class's frequency group: rare | common | frequent (or LVIS's r | c | f), or None."""
    if value is None:
        return None
    text = {"r": "rare", "c": "common", "f": "frequent"}.get(str(value).lower(), str(value).lower())
    if text not in FREQUENCY_GROUPS:
        raise DataError(f"{where}: frequency {value!r} must be one of {', '.join(FREQUENCY_GROUPS)}")
    return text


def read_classes_file(path: Union[str, Path]) -> ClassesSpec:
    path = Path(path)
    if not path.exists():
        raise DataError(f"data root {path} does not exist")
    if path.is_dir():
        found = find_classes_file(path)
        if found is None:
            raise DataError(f"no classes file in {path}: expected one of {', '.join(CLASSES_FILENAMES)} "
                            "(see docs/data.md)")
        path = found
    try:
        text = path.read_text()
    except OSError as e:
        raise DataError(f"cannot read classes file {path}: {e.strerror}") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as e:
        raise DataError(f"classes file {path} is not valid {path.suffix[1:].upper()}: {e}") from None
    spec = parse_classes(data, where=str(path))
    spec.path = path
    return spec


def write_classes_file(path: Union[str, Path], names: Sequence[str], colors: Sequence[Sequence[int]],
                       dontcare: Optional[int] = 0) -> Path:
    """Write a classes file (YAML, one class per line, or JSON by suffix)."""
    path = Path(path)
    spec = ClassesSpec(list(names), [list(map(int, c)) for c in colors], dontcare)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(spec.to_dict(), indent=1) + "\n")
    else:
        lines = [f"dontcare: {'null' if dontcare is None else dontcare}", "classes:"]
        for i, (n, c) in enumerate(zip(spec.names, spec.colors)):
            lines.append(f"  - {{id: {i}, name: {json.dumps(n)}, color: [{c[0]}, {c[1]}, {c[2]}]}}")
        path.write_text("\n".join(lines) + "\n")
    return path
