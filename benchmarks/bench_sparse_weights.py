"""The class-balancing weights of the N+1 loss on sparse label maps: how large they get.

    /work/heavy .venv/bin/python benchmarks/bench_sparse_weights.py --preset toy --data-root DATA \
        [--densities 1,0.5,0.25,0.1] [--batches 200] [--out FILE.json]

For each annotation density (regions), draws `--batches` training batches in the training order
(epoch 0, the preset's batch size and crop) and records, per batch, the largest class weight
``B*H*W / (K * n_c)``, the smallest labelled class's pixel count, the labelled fraction, and the
share of the summed weight that the batch's smallest class holds (1/K by construction). No
network is involved: this is what the loss's weights do to the gradient's distribution over
pixels, not a training result.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="toy")
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--densities", default="1,0.5,0.25,0.1")
    ap.add_argument("--unit", default="regions")
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    from oasisgan.data import build_dataset, config_for_root, epoch_loader
    from oasisgan.losses import class_balance_weights

    out = {"preset": args.preset, "data_root": args.data_root, "unit": args.unit, "densities": {}}
    for d in [float(x) for x in args.densities.split(",")]:
        cfg = config_for_root(args.preset, args.data_root, annotation_density=d, annotation_unit=args.unit)
        ds = build_dataset(cfg, args.data_root, "train")
        rows = []
        for epoch in range(100):
            for batch in epoch_loader(ds, cfg, epoch, cfg.batch_size, num_workers=0):
                label = batch["label"]
                w = class_balance_weights(label, cfg.semantic_nc, cfg.dontcare_label)
                counts = torch.bincount(label.reshape(-1), minlength=cfg.semantic_nc).numpy()
                counts[cfg.dontcare_label] = 0
                present = counts[counts > 0]
                rows.append({"max_weight": float(w.max()), "min_class_pixels": int(present.min()) if present.size else 0,
                             "labelled": float((label != cfg.dontcare_label).float().mean()),
                             "classes": int(present.size)})
                if len(rows) >= args.batches:
                    break
            if len(rows) >= args.batches:
                break
        mw = np.array([r["max_weight"] for r in rows])
        mp = np.array([r["min_class_pixels"] for r in rows])
        out["densities"][str(d)] = {
            "batches": len(rows), "pixels_per_batch": int(label.numel()),
            "labelled_fraction": float(np.mean([r["labelled"] for r in rows])),
            "max_weight_median": float(np.median(mw)), "max_weight_p95": float(np.percentile(mw, 95)),
            "max_weight_max": float(mw.max()),
            "min_class_pixels_median": float(np.median(mp)),
            "batches_with_a_class_under_10_px": float(np.mean((mp > 0) & (mp < 10))),
            "classes_per_batch_mean": float(np.mean([r["classes"] for r in rows])),
        }
        print(d, json.dumps(out["densities"][str(d)]))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
