#!/usr/bin/env python
"""Real images and each run's EMA generator on the same validation label maps, one row per run,
enlarged 2x with nearest neighbour so that period-2/4/8 patterns stay visible.

    python scripts/artefact_grid.py --data-root /work/runs/toydata \\
        --checkpoints base=/work/runs/art/base/checkpoints/iter_1200.ckpt \\
                      bilinear=/work/runs/art/bilinear/checkpoints/iter_1200.ckpt \\
        --out docs/images/toy_artefacts.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from PIL import Image


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", required=True, type=Path)
    ap.add_argument("--checkpoints", nargs="+", required=True, help="NAME=CKPT, one row each")
    ap.add_argument("--maps", type=int, default=6, help="validation label maps (columns)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    from oasisgan.data import build_dataset
    from oasisgan.loading.model import load

    rows = []
    for spec in args.checkpoints:
        name, _, path = spec.partition("=")
        model = load(path or name)
        if not rows:
            ds = build_dataset(model.config, args.data_root, "val")
            items = [ds[i] for i in range(min(args.maps, len(ds)))]
            label = torch.stack([it["label"] for it in items]).long()
            rows.append(torch.stack([it["image"] for it in items]))
        with torch.no_grad():  # load() gives the EMA generator where the checkpoint has one
            rows.append(model.generator.eval()(label, generator=torch.Generator().manual_seed(args.seed)))
    grid = torch.cat([torch.cat(list(r), dim=2) for r in rows], dim=1)
    pixels = ((grid.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    image = Image.fromarray(pixels)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    image.resize((image.width * 2, image.height * 2), Image.NEAREST).save(args.out)
    print(f"wrote {args.out}: real, then {', '.join(s.partition('=')[0] for s in args.checkpoints)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
