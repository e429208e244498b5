"""`oasis data check` cost per mode on an ADE20K-sized set: what training's start-up check costs.

    .venv/bin/python benchmarks/bench_check.py --root /tmp/ade20k_20k [--pairs 20000] [--modes headers,full]

Builds (once) `--pairs` distinct ADE20K-like pairs in the ADE20K layout from the shared sample
(683x512 JPEG image, PNG label; each pair a shifted copy, so no two files are equal), then times
`check_dataset` in each mode over the training split, side by side in one run. The files were just
written, so the page cache holds them: the figures are the CPU cost; a cold disk adds its reading time
to every mode that opens all files.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "datasets" / "ade20k" / "ADEChallengeData2016"


def build(root: Path, pairs: int) -> Path:
    base = root / "ADEChallengeData2016"
    img_dir, lab_dir = base / "images" / "training", base / "annotations" / "training"
    if img_dir.is_dir() and len(list(img_dir.iterdir())) >= pairs:
        return root
    img_dir.mkdir(parents=True, exist_ok=True)
    lab_dir.mkdir(parents=True, exist_ok=True)
    for split in ("validation",):
        (base / "images" / split).mkdir(parents=True, exist_ok=True)
        (base / "annotations" / split).mkdir(parents=True, exist_ok=True)
    src_img = np.asarray(Image.open(next((SAMPLE / "images" / "training").glob("*.jpg"))).convert("RGB"))
    src_lab = np.asarray(Image.open(next((SAMPLE / "annotations" / "training").glob("*.png"))))
    from tqdm import tqdm

    for i in tqdm(range(pairs), desc="writing pairs"):
        dy, dx = divmod(i, 97)
        img, lab = np.roll(src_img, (dy % 50, dx), (0, 1)), np.roll(src_lab, (dy % 50, dx), (0, 1))
        name = f"ADE_train_{i:08d}"
        Image.fromarray(img).save(img_dir / f"{name}.jpg", quality=90)
        Image.fromarray(lab).save(lab_dir / f"{name}.png")
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True, type=Path, help="where the synthetic set is (or will be) written")
    ap.add_argument("--pairs", type=int, default=20000)
    ap.add_argument("--modes", default="sample,headers,full")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from oasisgan.data import check_dataset, config_for_root

    root = build(args.root, args.pairs)
    cfg = config_for_root("ade20k")
    out = {"pairs": args.pairs, "workers": args.workers, "seconds": {}}
    for mode in args.modes.split(","):
        t0 = time.perf_counter()
        rep = check_dataset(cfg, root, mode=mode, splits=["train"], workers=args.workers, progress=True)
        dt = time.perf_counter() - t0
        assert rep.splits["train"].pairs == args.pairs, rep.format()
        out["seconds"][mode] = round(dt, 2)
        print(f"{mode:>8}: {dt:7.1f} s  ({args.pairs / dt:7.0f} pairs/s), ok={rep.ok}", flush=True)
    s = out["seconds"]
    if "headers" in s and "full" in s:
        print(f"full / headers: {s['full'] / s['headers']:.1f}x")
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
