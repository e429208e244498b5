"""Data loader throughput (images/s): the toy dataset and the benchmark layouts on the shared samples.

    .venv/bin/python benchmarks/bench_data.py [--workers 0 2] [--repeats 5] [--json]

For each dataset and worker count: one warm-up epoch, then `repeats` timed passes of at least
`--images` images each through training's own loader, `oasisgan.data.loader.epoch_loader` (one
loader per epoch, so worker start-up is counted as in training; decode, resize, crop, flip, to
tensor, collate). Prints median / min / max images/s over the repeats and the time the loader
needs per training batch, to compare with the training step time (`benchmarks/` of training).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"


def bench(ds, cfg, batch: int, workers: int, repeats: int, min_images: int) -> dict:
    from oasisgan.data import batches_per_epoch, epoch_loader

    batch = min(batch, len(ds))
    per_pass = max(1, -(-min_images // (batches_per_epoch(ds, batch) * batch)))  # epochs per timed pass
    for _ in epoch_loader(ds, cfg, 0, batch, num_workers=workers):  # warm-up
        pass
    rates, epoch = [], 1
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        for _ in range(per_pass):
            for b in epoch_loader(ds, cfg, epoch, batch, num_workers=workers):
                n += b["image"].shape[0]
            epoch += 1
        rates.append(n / (time.perf_counter() - t0))
    med = statistics.median(rates)
    return {"images_per_s_median": med, "images_per_s_min": min(rates), "images_per_s_max": max(rates),
            "batch": batch, "ms_per_batch_median": 1000 * batch / med, "workers": workers, "repeats": repeats}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--images", type=int, default=128, help="minimum images per timed pass")
    ap.add_argument("--datasets", default="toy,coco-stuff,ade20k,cityscapes")
    ap.add_argument("--threads", type=int, default=2, help="torch threads in the main process")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from oasisgan.data import build_dataset, config_for_root
    from oasisgan.data.toy import generate_toy

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        jobs = []
        for name in args.datasets.split(","):
            if name == "toy":
                root = generate_toy(Path(tmp) / "toy", n_train=256, n_val=0, seed=0)
                jobs.append(("toy (64x64)", config_for_root("toy", root), root, 8))
            else:
                sub = {"coco-stuff": "coco_stuff", "ade20k": "ade20k", "cityscapes": "cityscapes"}[name]
                root = SHARED / sub
                if not root.is_dir():
                    print(f"skip {name}: no samples at {root}", file=sys.stderr)
                    continue
                cfg = config_for_root(name)
                jobs.append((f"{name} ({cfg.height}x{cfg.width}, train)", cfg, root, cfg.batch_size))
        for label, cfg, root, batch in jobs:
            ds = build_dataset(cfg, root, "train")
            for w in args.workers:
                r = bench(ds, cfg, batch, w, args.repeats, args.images)
                r.update(dataset=label, items=len(ds))
                results.append(r)
                if not args.json:
                    print(f"{label:32s} workers={w}  {r['images_per_s_median']:8.1f} img/s "
                          f"(min {r['images_per_s_min']:.1f}, max {r['images_per_s_max']:.1f}; "
                          f"{r['ms_per_batch_median']:.1f} ms per batch of {r['batch']}; {len(ds)} files)",
                          flush=True)
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
