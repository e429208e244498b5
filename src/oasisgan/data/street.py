"""Street layouts drawn from class names: label maps of a street in perspective for street-scene
models (CamVid, Cityscapes), so that the painter and the shipped model's examples need no dataset.

A road narrows to a vanishing point between two rows of building facades, with pavement on both
sides, sky above, trees, poles with signs, a fence, cars on the road and people on the pavement;
``variant`` moves the vanishing point, the horizon and the objects. Classes are found by name
(case-insensitive, with the Cityscapes synonyms); a street model's classes include sky, building,
road, pavement (sidewalk) and car.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

SYNONYMS: Dict[str, Sequence[str]] = {
    "sky": ("sky",), "building": ("building",), "road": ("road",),
    "pavement": ("pavement", "sidewalk"), "tree": ("tree", "vegetation"), "car": ("car",),
    "pole": ("pole",), "sign": ("signsymbol", "traffic sign", "sign"), "fence": ("fence",),
    "person": ("pedestrian", "person"), "cyclist": ("bicyclist", "rider"),
}
REQUIRED = ("sky", "building", "road", "pavement", "car")  # a street dataset's classes, not a landscape's


def street_classes(names: Sequence[str]) -> Optional[Dict[str, int]]:
    """{role: class id} for the roles the names have, or None unless the names are a street
    dataset's (sky, building, road, pavement or sidewalk, car)."""
    low = [str(n).strip().lower() for n in names]
    found = {role: next(low.index(s) for s in syns if s in low)
             for role, syns in SYNONYMS.items() if any(s in low for s in syns)}
    return found if all(r in found for r in REQUIRED) else None


def street_label(names: Sequence[str], height: int, width: int, variant: int = 0) -> np.ndarray:
    """An (height, width) int64 label map of a street (see the module docstring)."""
    ids = street_classes(names)
    if ids is None:
        raise ValueError("a street layout needs classes named sky, building, road, pavement (or sidewalk) and car")
    rng = np.random.default_rng(variant)
    # drawn at 4x and reduced with nearest, so that thin poles survive at small sizes
    s = 4
    W, H = width * s, height * s
    img = Image.new("L", (W, H), ids["sky"])
    d = ImageDraw.Draw(img)
    vx = W * rng.uniform(0.4, 0.6)
    vy = H * rng.uniform(0.48, 0.58)
    pave, tree = ids.get("pavement", ids["road"]), ids.get("tree")

    def toward(x: float, y: float, t: float):
        """The point a fraction t of the way from (x, y) to the vanishing point."""
        return x + (vx - x) * t, y + (vy - y) * t

    # pavement below the facades' foot lines, which run from the image edges to the vanishing point
    feet = [H * rng.uniform(0.72, 0.9), H * rng.uniform(0.72, 0.9)]
    d.polygon([(0, feet[0]), (vx, vy), (W, feet[1]), (W, H), (0, H)], fill=pave)
    # facades: tops slanting down to the vanishing point, ending short of it
    for side in (0, 1):
        x_edge = 0 if side == 0 else W
        top = H * rng.uniform(-0.3, 0.05)
        t_end = rng.uniform(0.75, 0.92)
        far_top, far_bottom = toward(x_edge, top, t_end), toward(x_edge, feet[side], t_end)
        d.polygon([(x_edge, top), far_top, far_bottom, (x_edge, feet[side])], fill=ids["building"])
        if tree is not None and rng.uniform() < 0.8:  # a tree in front of the facade
            tx, _ = toward(x_edge, H, rng.uniform(0.25, 0.6))
            r = W * rng.uniform(0.06, 0.11)
            ty = vy - r * rng.uniform(0.2, 0.9)
            d.ellipse([tx - r, ty - r, tx + r, ty + r], fill=tree)
            d.rectangle([tx - r * 0.08, ty, tx + r * 0.08, vy + (H - vy) * 0.35], fill=tree)
    # road between two pavement strips, all converging to the vanishing point
    left_kerb, right_kerb = W * rng.uniform(-0.35, 0.05), W * rng.uniform(0.95, 1.35)
    d.polygon([(left_kerb, H), (vx, vy + 1), (right_kerb, H)], fill=ids["road"])
    if "fence" in ids and rng.uniform() < 0.6:  # along one pavement's back
        side = int(rng.integers(2))
        x0 = 0 if side == 0 else W
        t0, t1 = rng.uniform(0.1, 0.3), rng.uniform(0.55, 0.75)
        a, b = toward(x0, H * 0.93, t0), toward(x0, H * 0.93, t1)
        hgt = (H - vy) * 0.14
        d.polygon([a, b, (b[0], b[1] - hgt * (1 - t1)), (a[0], a[1] - hgt * (1 - t0))], fill=ids["fence"])
    # cars on the road, far ones first so near ones cover them
    if "car" in ids:
        for t in sorted(rng.uniform(0.2, 0.85, int(rng.integers(1, 4))), reverse=True):
            lane = rng.uniform(0.25, 0.75)
            bx = left_kerb + (right_kerb - left_kerb) * lane
            cx, cy = toward(bx, H, t)
            w = (right_kerb - left_kerb) * 0.32 * (1 - t)
            h = w * 0.75
            d.rounded_rectangle([cx - w / 2, cy - h, cx + w / 2, cy], radius=max(1, w * 0.12), fill=ids["car"])
    # poles with signs, and people, on the pavements
    for side in (0, 1):
        kerb = left_kerb if side == 0 else right_kerb
        x_out = 0.0 if side == 0 else float(W)
        if "pole" in ids:
            for t in rng.uniform(0.1, 0.7, int(rng.integers(1, 3))):
                px, py = toward((kerb + x_out) / 2, H, t)
                hgt, wid = (H - vy) * 1.1 * (1 - t), max(2.0, W * 0.008 * (1 - t))
                d.rectangle([px - wid / 2, py - hgt, px + wid / 2, py], fill=ids["pole"])
                if "sign" in ids and rng.uniform() < 0.6:
                    sw = wid * 4
                    d.rectangle([px - sw, py - hgt, px + sw, py - hgt + sw * 1.2], fill=ids["sign"])
        if "person" in ids and rng.uniform() < 0.7:
            t = rng.uniform(0.3, 0.7)
            px, py = toward((kerb + x_out) / 2 + W * 0.03, H, t)
            hgt = (H - vy) * 0.75 * (1 - t)
            d.ellipse([px - hgt * 0.18, py - hgt, px + hgt * 0.18, py], fill=ids["person"])
    out = img.resize((width, height), Image.Resampling.NEAREST if hasattr(Image, "Resampling") else Image.NEAREST)
    return np.asarray(out, dtype=np.int64)
