"""The embedded toy dataset: procedural outdoor scenes, written in the custom-folder layout.

``generate_toy(out, size=64, n_train=2000, n_val=200, seed=0)`` writes::

    out/classes.yaml  out/toy.json
    out/train/images/00000.png  out/train/labels/00000.png   (index PNGs, model ids)
    out/val/images/...          out/val/labels/...

Classes: 0 unlabeled (don't care), 1 sky, 2 mountain, 3 water, 4 grass, 5 sand, 6 tree, 7 building,
8 road. Four scene types (coast, countryside, city, mountains) give large coherent regions; each class
has its own colour range *and* texture (smooth gradient sky, rippled water, grainy grass and sand,
blotchy trees, windowed buildings, asphalt roads with a dashed line), and appearance is multi-modal
for the same layout (day / sunset / overcast light, three grass and tree seasons, four building
colours, two road and mountain looks), so that diversity metrics have something to measure.
Image ``i`` of a split depends only on (seed, split, i): generation is deterministic and can be
split across processes.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
from PIL import Image
from ..errors import DataError, OutputError
from .classes import read_classes_file, write_classes_file

TOY_VERSION = 1
TOY_CLASSES: List[Tuple[str, Tuple[int, int, int]]] = [
    ("unlabeled", (0, 0, 0)),
    ("sky", (70, 130, 180)),
    ("mountain", (150, 100, 70)),
    ("water", (0, 60, 200)),
    ("grass", (100, 200, 60)),
    ("sand", (230, 210, 140)),
    ("tree", (20, 110, 30)),
    ("building", (200, 60, 60)),
    ("road", (110, 110, 110)),
]
UNLABELED, SKY, MOUNTAIN, WATER, GRASS, SAND, TREE, BUILDING, ROAD = range(9)
SCENES = ("coast", "countryside", "city", "mountains")
SPLIT_IDS = {"train": 0, "val": 1}


class _Grid:
    def __init__(self, size: int):
        self.S = size
        c = (np.arange(size, dtype=np.float32) + 0.5) / size
        self.y = c[:, None] * np.ones((1, size), np.float32)
        self.x = c[None, :] * np.ones((size, 1), np.float32)
        self.px = np.arange(size)[None, :].repeat(size, 0)  # integer pixel coordinates
        self.py = np.arange(size)[:, None].repeat(size, 1)


def _smooth_noise(rng: np.random.Generator, g: _Grid, cells: int) -> np.ndarray:
    """Bilinear value noise in about [-1, 1], with `cells` cells across the image."""
    grid = rng.uniform(-1.0, 1.0, size=(cells + 1, cells + 1)).astype(np.float32)
    t = np.linspace(0, cells, g.S, endpoint=False, dtype=np.float32)
    i0 = np.minimum(t.astype(np.int64), cells - 1)
    f = t - i0
    a, b = grid[i0][:, i0], grid[i0][:, i0 + 1]
    c, d = grid[i0 + 1][:, i0], grid[i0 + 1][:, i0 + 1]
    fx, fy = f[None, :], f[:, None]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def _pick(rng: np.random.Generator, options, p=None):
    return options[int(rng.choice(len(options), p=p))]


def _layout(rng: np.random.Generator, g: _Grid, scene: str) -> Tuple[np.ndarray, Dict]:
    """The label map of one scene plus the geometry the renderer needs."""
    y, x = g.y, g.x
    lab = np.full((g.S, g.S), SKY, np.uint8)
    horizon = rng.uniform(0.32, 0.55)
    info: Dict = {"horizon": horizon, "buildings": []}
    ground = y >= horizon
    # mountains behind everything on the ground
    if scene == "mountains" or rng.random() < 0.35:
        amp = rng.uniform(0.12, 0.3) if scene == "mountains" else rng.uniform(0.06, 0.15)
        ridge = np.zeros_like(x[0])
        for _ in range(3):
            f, ph = rng.uniform(2, 9), rng.uniform(0, 2 * np.pi)
            ridge = ridge + rng.uniform(0.3, 1.0) * np.abs(np.sin(f * x[0] + ph))
        ridge = horizon - amp * (0.35 + 0.65 * ridge / ridge.max())
        lab[(y >= ridge[None, :]) & ~ground] = MOUNTAIN
        info["ridge"] = ridge
    # ground
    if scene == "coast":
        shore = horizon + rng.uniform(0.15, 0.3) + 0.03 * np.sin(rng.uniform(3, 8) * x[0] + rng.uniform(0, 6))
        sand_end = shore + rng.uniform(0.12, 0.3)
        lab[ground] = GRASS
        lab[ground & (y < sand_end[None, :])] = SAND
        lab[ground & (y < shore[None, :])] = WATER
    elif scene == "mountains":
        lab[ground] = _pick(rng, (GRASS, SAND), p=(0.7, 0.3))
        if rng.random() < 0.5:  # a lake
            cx, cy = rng.uniform(0.25, 0.75), horizon + rng.uniform(0.1, 0.25)
            rx, ry = rng.uniform(0.15, 0.35), rng.uniform(0.05, 0.12)
            lab[ground & (((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1)] = WATER
    else:
        lab[ground] = GRASS
        if scene == "countryside" and rng.random() < 0.4:  # a river
            cx = rng.uniform(0.2, 0.8)
            t = (y - horizon) / (1 - horizon)
            width = 0.02 + 0.2 * t
            centre = cx + 0.15 * np.sin(3 * t + rng.uniform(0, 6)) * t
            lab[ground & (np.abs(x - centre) < width)] = WATER
    # buildings standing on the horizon
    n_build = int(rng.integers(3, 7)) if scene == "city" else (int(rng.integers(1, 3)) if scene == "countryside"
                                                               and rng.random() < 0.35 else 0)
    for _ in range(n_build):
        w = rng.uniform(0.12, 0.3)
        x0 = rng.uniform(-0.05, 1.0 - w + 0.05)
        top = horizon - rng.uniform(0.12, 0.4 if scene == "city" else 0.2)
        bottom = horizon + rng.uniform(0.02, 0.07)
        m = (x >= x0) & (x < x0 + w) & (y >= top) & (y < bottom)
        lab[m] = BUILDING
        info["buildings"].append((m, int(rng.integers(0, 4))))
    # a road from the bottom to a vanishing point on the horizon
    if scene == "city" or (scene == "countryside" and rng.random() < 0.5):
        vx = rng.uniform(0.3, 0.7)
        half = rng.uniform(0.3, 0.55)
        t = np.clip((y - horizon) / (1 - horizon), 0, 1)
        centre = vx + (rng.uniform(0.3, 0.7) - vx) * t
        road = ground & (np.abs(x - centre) < 0.01 + half * t)
        lab[road] = ROAD
        info["road"] = (centre, t)
    # trees (drawn last: they occlude)
    n_tree = {"coast": (0, 3), "countryside": (2, 7), "city": (0, 3), "mountains": (1, 5)}[scene]
    for _ in range(int(rng.integers(*n_tree))):
        r = rng.uniform(0.06, 0.14)
        cx, cy = rng.uniform(0, 1), horizon + rng.uniform(-0.02, 0.35)
        m = ((x - cx) / r) ** 2 + ((y - cy) / (r * 1.3)) ** 2 < 1
        lab[m] = TREE
    # occasionally an unlabelled object (the don't-care class)
    if rng.random() < 0.25:
        cx, cy = rng.uniform(0.1, 0.9), rng.uniform(horizon, 0.95)
        r = rng.uniform(0.04, 0.08)
        lab[(np.abs(x - cx) < r) & (np.abs(y - cy) < r)] = UNLABELED
    return lab, info


def _render(rng: np.random.Generator, g: _Grid, lab: np.ndarray, info: Dict) -> np.ndarray:
    S, y, x = g.S, g.y, g.x
    horizon = info["horizon"]
    light = _pick(rng, ("day", "sunset", "overcast"), p=(0.5, 0.3, 0.2))
    img = np.zeros((S, S, 3), np.float32)
    present = set(np.unique(lab).tolist())

    def put(cls: int, value: np.ndarray) -> None:
        m = lab == cls
        img[m] = value[m] if value.ndim == 3 else value

    def col(*rgb) -> np.ndarray:
        return np.asarray(rgb, np.float32)

    def jitter(c: np.ndarray, amount: float = 12.0) -> np.ndarray:
        return c + rng.uniform(-amount, amount, 3).astype(np.float32)

    fine = rng.normal(0.0, 1.0, (S, S)).astype(np.float32)
    if SKY in present:
        top, bottom = {"day": (col(50, 100, 200), col(165, 200, 240)),
                       "sunset": (col(60, 40, 110), col(250, 150, 60)),
                       "overcast": (col(140, 145, 155), col(200, 200, 205))}[light]
        t = np.clip(y / max(horizon, 1e-3), 0, 1)[..., None]
        put(SKY, jitter(top) * (1 - t) + jitter(bottom) * t + 2.0 * fine[..., None])
    if MOUNTAIN in present:
        base = _pick(rng, (col(95, 105, 135), col(125, 95, 70)))
        shade = _smooth_noise(rng, g, 6)[..., None]
        v = jitter(base) * (1.0 + 0.18 * shade) + 6.0 * fine[..., None]
        if "ridge" in info and rng.random() < 0.4:  # snow caps
            snow = (y < info["ridge"][None, :] + 0.05)[..., None]
            v = np.where(snow, col(235, 235, 240) + 4.0 * fine[..., None], v)
        put(MOUNTAIN, v)
    if WATER in present:
        base = {"day": col(35, 85, 165), "sunset": col(110, 70, 100), "overcast": col(80, 100, 110)}[light]
        ripple = np.sin(y * S * rng.uniform(1.2, 2.2) + 2.0 * np.sin(x * S * 0.3 + rng.uniform(0, 6)))
        put(WATER, jitter(base) + 22.0 * ripple[..., None] + 3.0 * fine[..., None])
    if GRASS in present:
        base = _pick(rng, (col(70, 145, 50), col(150, 150, 60), col(95, 170, 75)))
        streak = np.sin(x * S * 2.5 + 1.5 * _smooth_noise(rng, g, 4))[..., None]
        put(GRASS, jitter(base) * (1 + 0.12 * streak) + 14.0 * fine[..., None])
    if SAND in present:
        base = _pick(rng, (col(220, 195, 135), col(195, 160, 110)))
        put(SAND, jitter(base, 8) + 6.0 * fine[..., None] + 8.0 * _smooth_noise(rng, g, 3)[..., None])
    if TREE in present:
        base = _pick(rng, (col(30, 90, 35), col(185, 100, 30), col(60, 130, 50)), p=(0.5, 0.25, 0.25))
        blot = _smooth_noise(rng, g, 12)[..., None]
        put(TREE, jitter(base) * (1.0 + 0.35 * blot) + 5.0 * fine[..., None])
    if BUILDING in present:
        colours = (col(160, 70, 50), col(140, 140, 148), col(225, 220, 205), col(200, 170, 120))
        period = max(3, S // 16)
        win = ((g.px % period) < period // 2 + 0) & ((g.py % (period + 1)) < (period + 1) // 2)
        lit = col(250, 220, 120) if light == "sunset" else None
        for m, k in info["buildings"]:
            c = jitter(colours[k], 10)
            v = np.broadcast_to(c, (S, S, 3)).copy()
            wc = lit if lit is not None else c * 0.45
            v[win] = wc
            v += 3.0 * fine[..., None]
            mm = m & (lab == BUILDING)
            img[mm] = v[mm]
    if ROAD in present:
        base = _pick(rng, (col(70, 70, 75), col(115, 110, 105)))
        v = np.broadcast_to(jitter(base, 6), (S, S, 3)) + 5.0 * fine[..., None]
        centre, t = info["road"]
        period = max(4, S // 8)
        dash = (np.abs(x - centre) < 0.006 + 0.012 * t) & ((g.py % period) < period // 2) & (y > horizon + 0.03)
        line = _pick(rng, (col(235, 235, 235), col(235, 200, 60)))
        v = np.where(dash[..., None], line, v)
        put(ROAD, v)
    if UNLABELED in present:
        put(UNLABELED, rng.uniform(0, 255, (S, S, 3)).astype(np.float32))
    # global light: sunset is warm and darker on the ground, overcast is desaturated
    below = (lab != SKY)[..., None]
    if light == "sunset":
        img = np.where(below, img * col(1.0, 0.82, 0.7) * 0.9, img)
    elif light == "overcast":
        grey = img.mean(axis=2, keepdims=True)
        img = np.where(below, 0.65 * img + 0.35 * grey, img)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def toy_sample(seed: int, split: str, index: int, size: int = 64,
               appearance: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """One scene: (image uint8 (S, S, 3), label uint8 (S, S)); a pure function of its arguments.

    `appearance` k > 0 renders the same label map with its own draw of light, colours and
    textures (k = 0 is the dataset's image): samples of the real distribution of looks of one
    layout, against which a generator's diversity can be measured.
    """
    rng = np.random.default_rng([int(seed), SPLIT_IDS[split], int(index), TOY_VERSION])
    g = _grid(size)
    scene = _pick(rng, SCENES, p=(0.25, 0.3, 0.25, 0.2))
    lab, info = _layout(rng, g, scene)
    if appearance:
        rng = np.random.default_rng([int(seed), SPLIT_IDS[split], int(index), TOY_VERSION, int(appearance)])
    return _render(rng, g, lab, info), lab


APPEARANCES_DIR = "val_appearances"


def appearance_paths(root: Union[str, Path]) -> Dict[str, List[Path]]:
    """``{val label file name: [image of look 0, look 1, ...]}`` of a toy dataset written with
    ``appearances`` > 1 (empty when it has none). Look 0 is the val image itself."""
    folder = Path(root) / APPEARANCES_DIR
    looks: Dict[str, List[Path]] = {}
    if not folder.is_dir():
        return looks
    for p in sorted(folder.glob("*_*.png")):
        stem, _, k = p.stem.rpartition("_")
        if k.isdigit():
            looks.setdefault(stem + ".png", []).append(p)
    return looks


_GRIDS: Dict[int, _Grid] = {}


def _grid(size: int) -> _Grid:
    if size not in _GRIDS:
        _GRIDS[size] = _Grid(size)
    return _GRIDS[size]


def _write_range(args) -> int:
    out, split, start, stop, size, seed, appearances = args
    img_dir, lab_dir = Path(out) / split / "images", Path(out) / split / "labels"
    for i in range(start, stop):
        im, lab = toy_sample(seed, split, i, size)
        Image.fromarray(im).save(img_dir / f"{i:05d}.png", compress_level=1)
        Image.fromarray(lab, mode="L").save(lab_dir / f"{i:05d}.png", compress_level=1)
        for k in range(1, appearances if split == "val" else 1):
            look, _ = toy_sample(seed, split, i, size, appearance=k)
            Image.fromarray(look).save(Path(out) / APPEARANCES_DIR / f"{i:05d}_{k}.png", compress_level=1)
    return stop - start


def _check_ours(out: Path) -> None:
    """Regenerating deletes the PNGs of the layout's folders: only in a toy dataset (its toy.json,
    or classes.yaml with the toy classes after a generation that was cut short) or a folder that
    is new or empty, never in a user's own dataset of the same layout."""
    if not out.exists():
        return
    if not out.is_dir():
        raise OutputError(f"{out} exists and is not a folder; choose a new folder for the toy dataset")
    if (out / "toy.json").is_file() or not any(out.iterdir()):
        return
    try:
        ours = read_classes_file(out / "classes.yaml").names == [n for n, _ in TOY_CLASSES]
    except Exception:
        ours = False
    if not ours:
        raise OutputError(f"{out} is not empty and is not a toy dataset (no toy.json); choose a new folder, "
                          "so that no file of yours is replaced")


def generate_toy(out: Union[str, Path], size: int = 64, n_train: int = 2000, n_val: int = 200, seed: int = 0,
                 workers: Optional[int] = None, progress: bool = False, overwrite: bool = True,
                 appearances: int = 1) -> Path:
    """Write the toy dataset to `out` (custom layout + classes.yaml); returns `out`.

    ``appearances`` K > 1 also writes ``val_appearances/<i>_<k>.png``, k = 1..K-1: each val label
    map rendered with K-1 further looks (`toy_sample`), the truth for diversity metrics.
    With ``overwrite=False`` an existing dataset with the same parameters is kept as is.
    ``workers``: processes (default: 1 for small jobs, else up to 2 / the CPU count).
    """
    if size < 16 or size % 16:
        raise ValueError(f"toy size must be a multiple of 16 (>= 16), got {size}")
    if appearances < 1:
        raise DataError(f"appearances must be at least 1, got {appearances}")
    out = Path(out)
    meta = {"generator": "oasisgan.toy", "version": TOY_VERSION, "size": size, "n_train": n_train,
            "n_val": n_val, "seed": seed}
    if appearances > 1:
        meta["appearances"] = appearances
    meta_path = out / "toy.json"
    if not overwrite and meta_path.is_file():
        try:
            if json.loads(meta_path.read_text()) == meta:
                return out
        except ValueError:
            pass
    _check_ours(out)
    for split in ("train", "val"):
        for sub in ("images", "labels"):
            d = out / split / sub
            d.mkdir(parents=True, exist_ok=True)
            for old in d.glob("*.png"):  # stale files of an earlier, larger generation
                old.unlink()
    looks = out / APPEARANCES_DIR
    if looks.is_dir():
        for old in looks.glob("*.png"):
            old.unlink()
    if appearances > 1:
        looks.mkdir(parents=True, exist_ok=True)
    if meta_path.exists():
        meta_path.unlink()
    write_classes_file(out / "classes.yaml", [n for n, _ in TOY_CLASSES], [c for _, c in TOY_CLASSES], dontcare=0)
    jobs = []
    chunk = 100
    for split, n in (("train", n_train), ("val", n_val)):
        jobs += [(str(out), split, s, min(s + chunk, n), size, seed, appearances) for s in range(0, n, chunk)]
    total = n_train + n_val
    if workers is None:
        workers = 1 if total * size * size <= 64 * 64 * 400 else min(2, os.cpu_count() or 1)
    from tqdm import tqdm

    bar = tqdm(total=total, desc="toy dataset", unit="img", disable=not progress)
    if workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn" if os.name == "nt" else "fork").Pool(workers) as pool:
            for n in pool.imap_unordered(_write_range, jobs):
                bar.update(n)
    else:
        for job in jobs:
            bar.update(_write_range(job))
    bar.close()
    meta_path.write_text(json.dumps(meta) + "\n")
    return out
