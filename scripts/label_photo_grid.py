#!/usr/bin/env python
"""A figure of label | real photo | generated images with several noises, on validation label maps.

    python scripts/label_photo_grid.py --checkpoint camvid --data-root ../shared/datasets/camvid \\
        --maps 4 --samples 3 --scale 2 --out docs/images/camvid_grid.png

Rows are validation items spread evenly over the split (`--maps` of them, or `--items i,j,...`);
noise k of every row is drawn with seed `--seed` + k, so a column shares its noise. Each tile is
enlarged `--scale` times (nearest) for viewing.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="checkpoint, model folder or registry name")
    ap.add_argument("--data-root", required=True, type=Path)
    ap.add_argument("--split", default="val")
    ap.add_argument("--maps", type=int, default=4)
    ap.add_argument("--items", default=None, help="comma list of item indices (instead of --maps)")
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()

    from PIL import Image

    from oasisgan import from_pretrained
    from oasisgan.data import build_dataset
    from oasisgan.labels import colorize, to_uint8_image

    model = from_pretrained(args.checkpoint, discriminator=False)
    cfg = model.config
    ds = build_dataset(cfg, args.data_root, args.split, augment=False)
    idx = ([int(i) for i in args.items.split(",")] if args.items else
           np.linspace(0, len(ds) - 1, args.maps).round().astype(int).tolist())
    z = model.sample_noise(args.samples, seed=args.seed)
    pad, rows = 4, []
    for i in idx:
        item = ds[i]
        with torch.no_grad():
            fakes = model.synthesize(item["label"], z=z)
        tiles = [colorize(item["label"].numpy(), cfg.palette, cfg.semantic_nc), to_uint8_image(item["image"])]
        tiles += [to_uint8_image(f) for f in fakes]
        h, w = tiles[0].shape[:2]
        row = np.full((h, len(tiles) * (w + pad) - pad, 3), 255, np.uint8)
        for k, t in enumerate(tiles):
            row[:, k * (w + pad): k * (w + pad) + w] = t
        rows.append(row)
    grid = np.full((len(rows) * (rows[0].shape[0] + pad) - pad, rows[0].shape[1], 3), 255, np.uint8)
    for r, row in enumerate(rows):
        grid[r * (row.shape[0] + pad): r * (row.shape[0] + pad) + row.shape[0]] = row
    img = Image.fromarray(grid)
    if args.scale > 1:
        img = img.resize((img.width * args.scale, img.height * args.scale), Image.Resampling.NEAREST)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    img.save(args.out)
    print(f"wrote {args.out}: rows = {args.split} items {idx}; columns = label | real | {args.samples} noises")
    return 0


if __name__ == "__main__":
    sys.exit(main())
