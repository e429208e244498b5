"""The painter's engine: everything the web page asks of the model, with every input validated.

Nothing here knows about HTTP: `Painter` takes plain Python values (decoded JSON) and returns
plain values or raises `RequestError`, whose message is shown on the page.

The noise protocol is stateless. The page keeps, beside its label map, a *seed map*: a list of
seeds and, per pixel, the index of the seed whose noise that pixel gets. "New image" is one seed
everywhere; "resample this class / region" gives the pixels of the class / rectangle a new seed
and keeps every other pixel's. The server rebuilds the spatial noise from (seeds, map) on every
request, so any image can be reproduced from what the page holds, no session state is kept, and
a restarted server gives the same pictures.

Per pixel the noise is the z_dim vector that `oasisgan.synthesis.sample_noise(model, 1, seed)`
draws for that seed: constant over a region, as OASIS is trained (one vector broadcast over
the image), so a region with one seed looks like a normal OASIS image and a resampled region like
the same scene with another z there. One seed everywhere is exactly `synthesize(model, label,
seed=seed)`.
"""
from __future__ import annotations

import base64
import io
import math
import re
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..data.labelmaps import label_array_to_ids
from ..data.street import street_classes, street_label
from ..errors import LabelError
from ..labels import palette_array, to_uint8_image
from ..synthesis import sample_noise, synthesize
from .photos import Photos
from .protocol import MAX_UPLOAD_BYTES, MAX_UPLOAD_PIXELS, PixelBudget, RequestError, b64decode, png_bytes, require

MAX_SEED = 2**31 - 1
MAX_SEEDS = 1024  # distinct seeds in one seed map
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------------
# small validators

def parse_seed(value: Any, field: str = "seed") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise RequestError(f"'{field}' must be an integer in 0..{MAX_SEED}, got {str(value)[:40]!r}")
    return value


# ------------------------------------------------------------------------------------------------

class Painter:
    """The model behind the page. Thread-safe: one synthesis at a time (the model is shared)."""

    def __init__(self, model, title: Optional[str] = None):
        self.model = model
        cfg = model.config
        self.cfg = cfg
        self.height, self.width = int(cfg.height), int(cfg.width)
        self.num_classes = int(cfg.semantic_nc)
        self.dontcare = cfg.dontcare_label
        self.palette = palette_array(cfg.palette, self.num_classes)[: self.num_classes]
        self.names = [cfg.class_name(i) for i in range(self.num_classes)]
        self.z_dim = int(cfg.z_dim)
        self.noise = bool(cfg.noise_3d)
        self.dtype = np.uint8 if self.num_classes <= 256 else np.uint16
        self.encoding = "u8" if self.dtype == np.uint8 else "u16"
        self.title = title or (model.path.name if model.path else cfg.preset)
        self._lock = threading.Lock()
        self._noise_cache: Dict[int, torch.Tensor] = {}
        self.decoding = PixelBudget()  # uploads decoded at once, label maps and photos together
        self.last_ms: Optional[float] = None
        self.photos = Photos(self)  # photo mode: inverted photos and their jobs (photos.py)

    # --- the page's static description -----------------------------------------------------------
    def info(self) -> Dict[str, Any]:
        cfg = self.cfg
        return {
            "title": self.title,
            "preset": cfg.preset,
            "height": self.height,
            "width": self.width,
            "size_multiple": int(cfg.size_multiple),
            "num_classes": self.num_classes,
            "classes": [{"id": i, "name": self.names[i], "color": [int(c) for c in self.palette[i]]}
                        for i in range(self.num_classes)],
            "dontcare": self.dontcare,
            "noise": self.noise,
            "z_dim": self.z_dim,
            "encoding": self.encoding,
            "max_seed": MAX_SEED,
            "max_seeds": MAX_SEEDS,
            "max_upload_bytes": MAX_UPLOAD_BYTES,
            "photo_steps": self.photos.steps,
            "device": str(self.model.device),
            "last_ms": self.last_ms,
        }

    # --- maps over the wire: {"encoding": "u8"|"u16", "data": base64 of H*W little-endian ints} ---
    def encode_map(self, arr: np.ndarray) -> Dict[str, str]:
        dtype = np.dtype(self.dtype).newbyteorder("<")
        return {"encoding": self.encoding, "data": base64.b64encode(arr.astype(dtype).tobytes()).decode()}

    def decode_map(self, obj: Any, field: str, limit: int) -> np.ndarray:
        """A (H, W) int64 map with values in [0, limit)."""
        if not isinstance(obj, dict):
            raise RequestError(f"'{field}' must be an object {{encoding, data}}")
        enc = obj.get("encoding")
        if enc not in ("u8", "u16"):
            raise RequestError(f"'{field}.encoding' must be 'u8' or 'u16'")
        raw = b64decode(obj.get("data"), f"{field}.data")
        itemsize = 1 if enc == "u8" else 2
        n = self.height * self.width
        if len(raw) != n * itemsize:
            raise RequestError(f"'{field}' has {len(raw) // itemsize} values; the model needs "
                               f"{self.height}x{self.width} = {n}")
        arr = np.frombuffer(raw, dtype=np.uint8 if itemsize == 1 else np.dtype("<u2"))
        arr = arr.astype(np.int64).reshape(self.height, self.width)
        top = int(arr.max())
        if top >= limit:
            raise RequestError(f"'{field}' holds the value {top}; valid values are 0..{limit - 1}")
        return arr

    def parse_label(self, body: Any) -> np.ndarray:
        return self.decode_map(require(body, "label", dict, "an object {encoding, data}"),
                               "label", self.num_classes)

    def parse_noise(self, body: Any) -> Tuple[List[int], Optional[np.ndarray]]:
        noise = body.get("noise") if isinstance(body, dict) else None
        if noise is None:  # a plain seed (or 0)
            seed = body.get("seed", 0) if isinstance(body, dict) else 0
            return [parse_seed(seed)], None
        if not isinstance(noise, dict):
            raise RequestError("'noise' must be an object {seeds, map}")
        seeds = noise.get("seeds")
        if not isinstance(seeds, list) or not 1 <= len(seeds) <= MAX_SEEDS:
            raise RequestError(f"'noise.seeds' must be a list of 1..{MAX_SEEDS} seeds")
        seeds = [parse_seed(s, "noise.seeds[]") for s in seeds]
        if noise.get("map") is None:
            if len(seeds) != 1:
                raise RequestError("'noise.map' is needed when there is more than one seed")
            return seeds, None
        return seeds, self.decode_map(noise["map"], "noise.map", len(seeds))

    # --- noise ----------------------------------------------------------------------------------
    def seed_vector(self, seed: int) -> torch.Tensor:
        """The (z_dim,) noise vector of a seed: `synthesis.sample_noise(model, 1, seed)[0]`."""
        v = self._noise_cache.get(seed)
        if v is None:
            v = sample_noise(self.model, 1, seed=seed)[0].detach().float().cpu()
            if len(self._noise_cache) > 4096:
                self._noise_cache.clear()
            self._noise_cache[seed] = v
        return v

    def noise_map(self, seeds: Sequence[int], index: Optional[np.ndarray]) -> torch.Tensor:
        """(1, z_dim, H, W): pixel p gets the vector of seeds[index[p]].

        The same tensor as `sample_noise(model, 1, seeds[0], size=(H, W))` followed by
        `resample_region(z, index == k, seeds[k])` for k = 1, 2, ..., built in one gather.
        """
        vecs = torch.stack([self.seed_vector(s) for s in seeds])  # (S, z)
        if index is None:
            z = vecs[0][:, None, None].expand(self.z_dim, self.height, self.width)
        else:
            z = vecs[torch.from_numpy(index)].permute(2, 0, 1)  # (z, H, W)
        return z.unsqueeze(0).contiguous()

    # --- synthesis -------------------------------------------------------------------------------
    def synthesize_array(self, label: np.ndarray, seeds: Sequence[int], index: Optional[np.ndarray] = None,
                         photo: Optional[Dict[str, Any]] = None) -> Tuple[np.ndarray, Dict[str, Any]]:
        """uint8 (H, W, 3) image and notes for a validated label map and seed map; `photo`
        (`Photos.parse`): edit that inverted photo instead (photos.py)."""
        lab = torch.from_numpy(np.ascontiguousarray(label)).long()
        z = self.noise_map(seeds, index) if photo is None else self.photos.noise(label, seeds, index, photo)
        with self._lock:
            t0 = time.perf_counter()
            with torch.inference_mode():
                out = synthesize(self.model, lab, z=z)
                if photo is not None and photo["paste_back"]:
                    out = self.photos.composite(out, label, z, photo)
            ms = (time.perf_counter() - t0) * 1000.0
            self.last_ms = ms
        notes: Dict[str, Any] = {"ms": round(ms, 1)}
        if not torch.isfinite(out).all():
            out = torch.nan_to_num(out, nan=0.0, posinf=1.0, neginf=-1.0)
            notes["warning"] = ("the model produced non-finite values (an untrained or broken "
                                "checkpoint?); they are shown as grey")
        return to_uint8_image(out[0]), notes

    def synthesize(self, body: Any) -> Dict[str, Any]:
        label = self.parse_label(body)
        seeds, index = self.parse_noise(body)
        photo = self.photos.parse(body["photo"]) if body.get("photo") is not None else None
        img, notes = self.synthesize_array(label, seeds, index, photo)
        from PIL import Image

        png = png_bytes(Image.fromarray(img, "RGB"))
        return {"image": "data:image/png;base64," + base64.b64encode(png).decode(),
                "seeds": list(seeds), **notes}

    # --- label files -----------------------------------------------------------------------------
    def label_png(self, label: np.ndarray) -> bytes:
        """An index PNG of model ids: palette mode (viewable in colour) up to 256 classes, else 16-bit."""
        from PIL import Image

        if self.num_classes <= 256:
            img = Image.frombytes("P", (label.shape[1], label.shape[0]), label.astype(np.uint8).tobytes())
            pal = np.zeros((256, 3), np.uint8)
            pal[: self.num_classes] = self.palette
            img.putpalette(pal.reshape(-1).tolist())
            return png_bytes(img)
        return png_bytes(Image.fromarray(np.ascontiguousarray(label, dtype=np.uint16)))  # mode I;16

    def decode_upload(self, body: Any) -> Dict[str, Any]:
        """An uploaded label map (index PNG or colour PNG) -> model ids at the model's size."""
        data = b64decode(require(body, "file", str, "a base64 string"), "file")
        name = body.get("name") if isinstance(body.get("name"), str) else "upload"
        name = "".join(ch for ch in name[:80] if ch.isprintable()) or "upload"
        arr, notes, _ = self.upload_to_ids(data, name)
        present = [int(c) for c in np.unique(arr)]
        return {"label": self.encode_map(arr), "notes": notes,
                "classes_present": present}

    def upload_to_ids(self, data: bytes, name: str) -> Tuple[np.ndarray, List[str], Tuple[int, int]]:
        """A label PNG's bytes -> model ids at the model's size, notes, the file's (h, w)."""
        if len(data) > MAX_UPLOAD_BYTES:
            raise RequestError(f"the file is {len(data) / 2**20:.1f} MiB; the limit is "
                               f"{MAX_UPLOAD_BYTES // 2**20} MiB", 413)
        if not data.startswith(PNG_MAGIC):
            raise RequestError("label maps must be PNG files (an index PNG of class ids, or a "
                               "colour PNG in the model's palette); JPEG would blur the labels")
        arr, notes = self._read_png(data, name)
        h, w = arr.shape
        if (h, w) != (self.height, self.width):
            notes.append(f"resized from {w}x{h} to {self.width}x{self.height} (nearest neighbour)")
            if abs(w / h - self.width / self.height) > 0.02 * self.width / self.height:
                notes.append("its aspect ratio differs from the model's, so it is stretched")
            rows = (np.arange(self.height) * h // self.height)
            cols = (np.arange(self.width) * w // self.width)
            arr = arr[rows[:, None], cols[None, :]]
        return arr, notes, (h, w)

    def _read_png(self, data: bytes, name: str = "upload") -> Tuple[np.ndarray, List[str]]:
        """Model ids of a PNG, decoded within the server's budget of pixels at once."""
        from PIL import Image

        try:
            img = Image.open(io.BytesIO(data))
            w, h = img.size
        except Exception as e:  # Pillow raises many types on broken files
            raise RequestError(f"cannot read the PNG: {str(e)[:200] or type(e).__name__}") from None
        if w * h > MAX_UPLOAD_PIXELS or w < 1 or h < 1:
            raise RequestError(f"the image is {w}x{h}; that is too large for a label map")
        with self.decoding.take(w * h):  # held until the ids are made: the large arrays live here
            return self._png_ids(img, name)

    def _png_ids(self, img, name: str) -> Tuple[np.ndarray, List[str]]:
        """Model ids of an opened PNG.

        A palette PNG whose colours are the model's (what "Download label map" writes) holds model
        ids. Anything else is read as a label file of the model's dataset
        (`oasisgan.data.labelmaps`): index PNGs in the dataset's own ids (COCO-Stuff: raw + 1,
        255 -> 0), colour PNGs through the palette.
        """
        try:
            img.load()
        except Exception as e:  # Pillow raises many types on broken files
            raise RequestError(f"cannot read the PNG: {str(e)[:200] or type(e).__name__}") from None
        notes: List[str] = []
        n = self.num_classes
        if img.mode == "LA":
            img = img.getchannel(0)
        elif img.mode == "PA":
            img = img.convert("RGB")
        if img.mode == "P":
            idx = np.asarray(img).astype(np.int64)
            used = np.unique(idx)
            flat = list(img.getpalette() or [])[:768]
            pal = np.zeros((256, 3), np.int64)
            got = np.asarray(flat[: len(flat) // 3 * 3], dtype=np.int64).reshape(-1, 3)
            pal[: len(got)] = got
            if used.max() < n and np.array_equal(pal[used], self.palette[used].astype(np.int64)):
                return idx, notes  # our own download format: model ids with the model's colours
            img = img.convert("RGB")
            notes.append("a palette PNG in other colours than the model's: read by colour")
        elif img.mode == "1":
            img = img.convert("L")
        elif img.mode in ("RGBA", "RGBX", "CMYK", "YCbCr"):
            img = img.convert("RGB")
        elif img.mode not in ("L", "I", "RGB"):
            try:
                img = img.convert("I")
            except Exception:
                raise RequestError(f"unsupported PNG mode {img.mode!r}: use an index (8/16-bit grey "
                                   "or palette) PNG or an RGB colour PNG") from None
        try:
            ids = label_array_to_ids(np.asarray(img), self.cfg, path=name)
        except LabelError as e:
            raise RequestError(str(e)) from None
        if ids.ndim != 2 or ids.min() < 0 or ids.max() >= n:  # checked by the reader; never trust blindly
            raise RequestError(f"{name}: class ids outside 0..{n - 1}")
        return ids, notes

    # --- the built-in example ---------------------------------------------------------------------
    def example(self, variant: int = 0) -> np.ndarray:
        return example_label(self.names, self.height, self.width, self.dontcare, variant)


# ------------------------------------------------------------------------------------------------
# A landscape drawn with the model's own classes, chosen by name where the names say enough.

_ROLES = {
    "sky": ("sky",),
    "far": ("mountain", "hill", "building", "house", "wall", "vegetation", "tree"),
    "ground": ("grass", "road", "field", "earth", "terrain", "sand", "dirt", "floor", "ground", "snow",
               "sidewalk", "land"),
    "water": ("sea", "water", "lake", "river"),
    "blob": ("tree", "vegetation", "bush", "plant", "rock", "car", "person", "flower"),
}


def _pick(names: Sequence[str], role: str, taken: set, fallback: List[int], required: bool) -> Optional[int]:
    """The first class whose name has one of the role's words (as a whole word: 'sky-other' is sky,
    'skyscraper' is not); without one, an unused class when `required`, else None."""
    tokens = [set(re.split(r"[\s,;/_\-()]+", n.lower())) for n in names]
    for word in _ROLES[role]:
        for i, t in enumerate(tokens):
            if i not in taken and i in fallback and word in t:
                taken.add(i)
                return i
    if not required:
        return None
    for i in fallback:
        if i not in taken:
            taken.add(i)
            return i
    return fallback[0]


def example_label(names: Sequence[str], height: int, width: int, dontcare: Optional[int],
                  variant: int = 0) -> np.ndarray:
    """A street (`oasisgan.data.street`) for street-scene models (CamVid, Cityscapes classes); else a
    simple scene: sky, a far range, ground, a lake and a few blobs (variant moves things)."""
    if street_classes(names) is not None:
        return street_label(names, height, width, variant)
    n = len(names)
    usable = [i for i in range(n) if i != dontcare] or [0]
    rng = np.random.default_rng(variant)
    taken: set = set()
    if variant:
        rng.shuffle(usable)  # other variants may pick other classes where names do not decide
    named = not all(re.fullmatch(r"class_\d+", n) for n in names)  # without names any class will do
    sky = _pick(names, "sky", taken, usable, True)
    far = _pick(names, "far", taken, usable, True)
    ground = _pick(names, "ground", taken, usable, True)
    water = _pick(names, "water", taken, usable, not named)
    blob = _pick(names, "blob", taken, usable, not named)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = xx / max(width - 1, 1), yy / max(height - 1, 1)
    lab = np.full((height, width), ground, dtype=np.int64)
    horizon = 0.55 + 0.06 * rng.uniform(-1, 1)
    phase = rng.uniform(0, 2 * math.pi)
    ridge = horizon - 0.12 - 0.1 * np.abs(np.sin(3.1 * u + phase)) - 0.05 * np.sin(7.3 * u + 2 * phase)
    lab[v < horizon] = far
    lab[v < ridge] = sky
    cx, cy = rng.uniform(0.25, 0.75), rng.uniform(0.72, 0.85)
    if water is not None:
        lab[((u - cx) / 0.28) ** 2 + ((v - cy) / 0.08) ** 2 < 1] = water
    for _ in range(3 if blob is not None else 0):
        bx, by = rng.uniform(0.05, 0.95), rng.uniform(horizon - 0.02, horizon + 0.12)
        r = rng.uniform(0.04, 0.08)
        lab[((u - bx) / r) ** 2 + ((v - by) / (1.4 * r * width / height)) ** 2 < 1] = blob
    return lab
