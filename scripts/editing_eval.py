"""Measure photo inversion and editing on held-out images (the figures of docs/editing.md).

    python scripts/editing_eval.py --checkpoint runs/toy/checkpoints/latest.ckpt --data-root data/toy \
        [--n 8] [--steps 200] [--seed 0] > editing_eval.json

For the first N validation images (photo + label map, never seen in training):
- reconstruction PSNR (and LPIPS where its weights are local) of: random noise (the mean over 4
  seeds), the best single global noise (the "global" stage: one optimised vector per image), one
  optimised vector per class, and the default inversion (per-class then spatial); the same number
  of steps for every optimised variant; seconds per inversion;
- locality of an edit: a square of side H/4 in the middle of the image is repainted with the
  class that covers least of it; mean absolute change (in 0..255 grey levels) of the edited
  image against the reconstruction inside the square, outside it, and far from it (more than
  H/8 px), and, with paste-back, of the composite against the photo far from it.
Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data-root", required=True, help="dataset root with val/images and val/labels (toy layout)")
    p.add_argument("--n", type=int, default=8, help="validation images (default 8)")
    p.add_argument("--steps", type=int, default=200, help="steps per inversion (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--figure", default=None, metavar="PNG",
                   help="also write a before/after figure of the first 3 images: photo | reconstruction | "
                        "edited label | edited | pasted back")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    import oasisgan
    from oasisgan.editing import psnr, read_pair
    from scipy import ndimage

    model = oasisgan.load(args.checkpoint)
    root = Path(args.data_root)
    images = sorted((root / "val" / "images").iterdir())[: args.n]
    variants = {"global": ("global",), "class": ("class",), "class+spatial": ("class", "spatial")}
    rows = {k: [] for k in ["random", *variants]}
    lp_rows = {k: [] for k in variants}
    secs = {k: [] for k in variants}
    loc = {"inside": [], "outside": [], "far": [], "far_pasted_vs_photo": [], "inside_pasted_vs_photo": []}
    notes = set()
    tiles = []
    h, w = model.config.height, model.config.width
    side = h // 4
    for path in images:
        label_path = root / "val" / "labels" / (path.stem + ".png")
        image, label = read_pair(model, path, label_path)
        rnd = [float(psnr(model.synthesize(label, seed=args.seed + k), image[None])) for k in range(4)]
        rows["random"].append(statistics.mean(rnd))
        for name, stages in variants.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                inv = model.invert(image, label, steps=args.steps, stages=stages, seed=args.seed, progress=False)
                secs[name].append(time.perf_counter() - t0)
            notes.update(inv.notes)
            rows[name].append(inv.psnr)
            if inv.lpips is not None:
                lp_rows[name].append(inv.lpips)
        present = [c for c in np.unique(label) if c != model.config.dontcare_label]

        def repaint(where):  # `where` repainted with the present class that covers least of it
            cls = min(present, key=lambda c: (label[where] == c).sum())
            out = label.copy()
            out[where] = cls
            return out

        if args.figure and len(tiles) < 3:  # for the eye: a pond (an ellipse of water) in the lower half
            yy, xx = np.mgrid[0:h, 0:w]
            ell = ((yy - 0.7 * h) / (0.13 * h)) ** 2 + ((xx - 0.5 * w) / (0.3 * w)) ** 2 < 1
            names = [n.lower() for n in (model.config.class_names or [])]
            pond = label.copy()
            pond[ell] = names.index("water") if "water" in names else repaint(ell)[ell][0]
            fig = model.edit(inv, pond, paste_back=True)
            tiles.append([inv.image[0], inv.reconstruction[0], fig.label[0], fig.image[0], fig.composite[0]])
        # the measured edit: a centred square
        y0, x0 = (h - side) // 2, (w - side) // 2
        sq = np.zeros((h, w), bool)
        sq[y0:y0 + side, x0:x0 + side] = True
        new = repaint(sq)
        out = model.edit(inv, new, paste_back=True)
        region = new != label
        diff = ((out.image - inv.reconstruction).abs().mean(1)[0] * 127.5).numpy()
        far = ~ndimage.binary_dilation(region, np.ones((3, 3), bool), iterations=h // 8)
        pasted = ((out.composite - inv.image).abs().mean(1)[0] * 127.5).numpy()
        loc["inside"].append(float(diff[region].mean()))
        loc["outside"].append(float(diff[~region].mean()))
        loc["far"].append(float(diff[far].mean()))
        loc["far_pasted_vs_photo"].append(float(pasted[far].mean()))
        loc["inside_pasted_vs_photo"].append(float(pasted[region].mean()))
        print(f"{path.name}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in rows.items()), file=sys.stderr)

    def mean(v):
        return round(statistics.mean(v), 3) if v else None

    result = {
        "checkpoint": str(args.checkpoint), "images": len(images), "steps": args.steps,
        "resolution": f"{h}x{w}", "threads": args.threads,
        "psnr_db": {k: mean(v) for k, v in rows.items()},
        "psnr_db_min_gain_over_random": round(min(a - b for a, b in zip(rows["class+spatial"], rows["random"])), 3),
        "lpips": {k: mean(v) for k, v in lp_rows.items()} if any(lp_rows.values()) else None,
        "seconds_per_inversion": {k: mean(v) for k, v in secs.items()},
        "edit_mean_abs_change_0_255": {k: mean(v) for k, v in loc.items()},
        "edit": f"centred {side}x{side} square repainted; far = more than {h // 8} px from it",
        "notes": sorted(notes),
    }
    print(json.dumps(result, indent=1))
    if args.figure:
        write_figure(args.figure, tiles, model.config)
    return 0


def write_figure(path, rows, cfg, scale: int = 3, pad: int = 4) -> None:
    """Rows of photo | reconstruction | edited label | edited | pasted back, enlarged (nearest)."""
    from PIL import Image, ImageDraw

    from oasisgan.labels import colorize, to_uint8_image

    heads = ["photo", "reconstruction", "edited label", "edited", "pasted back"]
    h, w = rows[0][0].shape[-2:]
    th, tw = h * scale, w * scale
    canvas = Image.new("RGB", (len(heads) * (tw + pad) + pad, 16 + len(rows) * (th + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for j, head in enumerate(heads):
        draw.text((pad + j * (tw + pad) + 2, 2), head, fill=(0, 0, 0))
    for i, row in enumerate(rows):
        for j, t in enumerate(row):
            arr = colorize(t, cfg.palette, cfg.semantic_nc) if j == 2 else to_uint8_image(t)
            img = Image.fromarray(np.ascontiguousarray(arr)).resize((tw, th), Image.NEAREST)
            canvas.paste(img, (pad + j * (tw + pad), 16 + pad + i * (th + pad)))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


if __name__ == "__main__":
    sys.exit(main())
