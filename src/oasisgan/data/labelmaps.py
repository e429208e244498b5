"""Reading label PNGs into model ids: index PNGs in a dataset's own id convention, or colour PNGs.

Conventions (``label_convention(cfg)``):
- ``index``: the PNG stores model ids (ADE20K, ADE20K-outdoor, Cityscapes labelIds, custom index PNGs);
- ``coco``: COCO-Stuff raw ids: model id = raw + 1, raw 255 (unlabeled) -> 0.
Any label stored as RGB(A) is a colour label and is mapped through the palette (``cfg.palette``, from
the classes file for custom data); an RGB file whose three channels are equal is read as an index PNG
when its colours are not all in the palette.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from ..errors import LabelError
from ..labels import palette_array

INDEX_MODES = ("L", "P", "I", "I;16", "I;16B", "I;16L", "1")
COLOR_MODES = ("RGB", "RGBA", "LA", "PA", "RGBX")


def label_convention(cfg) -> str:
    return "coco" if cfg.dataset == "coco-stuff" else "index"


LOSSY_FORMATS = ("JPEG", "MPO", "WEBP")  # their compression changes ids (WebP: unless lossless; refused too)


def open_label(path: Union[str, Path]) -> Image.Image:
    """Open and decode a label image (PIL), raising LabelError naming the file. JPEG label maps
    are refused, whatever their name: compression blurs ids into others (a grey JPEG of quality
    30 had 2,496 of 4,096 ids wrong), as the painter refuses them."""
    try:
        img = Image.open(path)
        if img.format in LOSSY_FORMATS:
            raise LabelError(f"label file {path} is a {img.format} file, whose compression changes label "
                             "ids: save label maps as PNG (index or colour)")
        img.load()
    except LabelError:
        raise
    except FileNotFoundError:
        raise LabelError(f"label file {path} does not exist") from None
    except Exception as e:
        raise LabelError(f"cannot read label file {path}: {e}") from None
    if img.mode in ("LA", "PA"):
        img = img.getchannel(0)
        if img.mode == "P":
            img = img.convert("P")
    elif img.mode in ("RGBA", "RGBX", "CMYK", "YCbCr"):
        img = img.convert("RGB")
    elif img.mode == "1":
        img = img.convert("L")
    elif img.mode not in ("L", "P", "I", "RGB"):
        img = img.convert("I")  # 16-bit variants
    return img


class ColorLookup:
    """RGB colours -> class ids through a palette; unknown colours are reported, never guessed."""

    def __init__(self, palette: Sequence[Sequence[int]]):
        pal = np.asarray(palette, dtype=np.int64).reshape(-1, 3)
        keys = (pal[:, 0] << 16) | (pal[:, 1] << 8) | pal[:, 2]
        # the first id of a duplicated colour wins; duplicates are reported by `oasis data check`
        uniq, first = np.unique(keys, return_index=True)
        self.keys = uniq
        self.ids = first.astype(np.int64)
        self.duplicates = len(uniq) != len(keys)

    def map(self, rgb: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(H, W, 3) uint8 -> (ids int64 (H, W), unknown-colour mask)."""
        a = rgb.astype(np.int64)
        k = (a[..., 0] << 16) | (a[..., 1] << 8) | a[..., 2]
        pos = np.searchsorted(self.keys, k)
        pos = np.clip(pos, 0, len(self.keys) - 1)
        found = self.keys[pos] == k
        return np.where(found, self.ids[pos], 0), ~found


def _describe_colors(rgb: np.ndarray, mask: np.ndarray, limit: int = 5) -> str:
    cols, counts = np.unique(rgb[mask].reshape(-1, 3), axis=0, return_counts=True)
    order = np.argsort(-counts)[:limit]
    parts = [f"({c[0]},{c[1]},{c[2]}) x{n}" for c, n in zip(cols[order].tolist(), counts[order].tolist())]
    more = f" and {len(cols) - limit} more" if len(cols) > limit else ""
    return ", ".join(parts) + more


def label_array_to_ids(arr: np.ndarray, cfg, path: Union[str, Path] = "<label>",
                       lookup: Optional[ColorLookup] = None, check_range: bool = True) -> np.ndarray:
    """A decoded label (H, W) index or (H, W, 3) colour array -> int64 model ids (H, W)."""
    if arr.ndim == 3:
        if lookup is None:
            lookup = ColorLookup(palette_array(cfg.palette, cfg.semantic_nc))
        ids, unknown = lookup.map(arr)
        if unknown.any():
            grey = (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()
            if not grey:
                raise LabelError(
                    f"label file {path}: {int(unknown.sum())} pixels have colours that are not in the "
                    f"palette: {_describe_colors(arr, unknown)} (colour labels must use the exact class "
                    f"colours, without anti-aliasing or JPEG compression)")
            arr = arr[..., 0]  # an index map saved as grey RGB
        else:
            return ids
    out = arr.astype(np.int64)
    if label_convention(cfg) == "coco":
        out += 1
        out[arr == 255] = 0
    if check_range and out.size:
        lo, hi = int(out.min()), int(out.max())
        if lo < 0 or hi >= cfg.semantic_nc:
            bad = np.unique(out[(out < 0) | (out >= cfg.semantic_nc)])
            raw = " (raw ids " + ", ".join(str(int(b) - 1) for b in bad[:10]) + ")" \
                if label_convention(cfg) == "coco" else ""
            raise LabelError(
                f"label file {path}: ids {', '.join(map(str, bad[:10].tolist()))}{raw} are outside the "
                f"{cfg.semantic_nc} classes of preset {cfg.preset!r} (valid model ids 0..{cfg.semantic_nc - 1})")
    return out


def pil_label_to_ids(img: Image.Image, cfg, path: Union[str, Path] = "<label>",
                     lookup: Optional[ColorLookup] = None) -> np.ndarray:
    return label_array_to_ids(np.asarray(img), cfg, path, lookup)


def read_label_file(path: Union[str, Path], cfg) -> np.ndarray:
    """A label PNG -> int64 (H, W) model ids; raises LabelError naming the file."""
    return pil_label_to_ids(open_label(path), cfg, path)
