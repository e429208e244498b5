"""`oasis data`: check a dataset, generate the toy dataset, build the ADE20K-outdoor list."""
from __future__ import annotations

import argparse
import sys

from .common import SEED, add_command_group, add_preset_args, dataset_config, number


def register(sub) -> None:
    dsub = add_command_group(sub, "data", help="check datasets, generate the toy dataset",
                             description="Dataset tools: `check` scans a dataset for problems, `toy` writes "
                                         "the embedded toy dataset, `outdoor-list` builds the ADE20K-outdoor "
                                         "file list.",
                             dest="data_command", metavar="SUBCOMMAND")

    c = dsub.add_parser("check", help="scan a dataset: counts, sizes, classes, defects",
                        description="Scan a dataset in the preset's layout. Exits 1 when training would fail "
                                    "or silently go wrong (unmatched/unreadable files, label ids out of range, "
                                    "unknown colours, size mismatches, ...), 0 otherwise.")
    add_preset_args(c, required=True)
    c.add_argument("--root", required=True, help="dataset root folder")
    c.add_argument("--split", choices=["train", "val", "test", "all"], default="all",
                   help="split(s) to scan (all: train and val)")
    c.add_argument("--mode", choices=["full", "headers", "sample", "auto"], default="full",
                   help="full: decode every file (default); headers: open every file and check its size "
                        "and end-of-file marker, decode a sample of 16 pairs; sample: only the 16 pairs; "
                        "auto: full for small splits, else headers (what training runs first)")
    c.add_argument("--quick", dest="mode", action="store_const", const="auto", help="same as --mode auto")
    c.add_argument("--workers", type=number(int, 1, 256), default=8, help="threads (default 8)")
    c.add_argument("--json", action="store_true", help="print the full report as one JSON object")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.set_defaults(func=run_check)

    t = dsub.add_parser("toy", help="generate the embedded toy dataset",
                        description="Procedural outdoor scenes (9 ids: don't care + 8 classes) in the custom "
                                    "layout, with classes.yaml; deterministic per seed.")
    t.add_argument("--out", required=True, help="output folder")
    t.add_argument("--size", type=number(int, 16, 4096), default=64,
                   help="image size (multiple of 16; default 64)")
    t.add_argument("--train", type=number(int, 1, 10**7), default=2000, help="training images (default 2000)")
    t.add_argument("--val", type=number(int, 1, 10**7), default=200, help="validation images (default 200)")
    t.add_argument("--seed", type=number(int, *SEED), default=0)
    t.add_argument("--appearances", type=number(int, 1, 64), default=1, metavar="K",
                   help="also render each val label map with K-1 more looks in val_appearances/ "
                        "(the real diversity that `oasis evaluate` compares with; default 1: none)")
    t.add_argument("--workers", type=number(int, 1, 256), default=None, help="processes (default: automatic)")
    t.set_defaults(func=run_toy)

    o = dsub.add_parser("outdoor-list", help="build and cache the ADE20K-outdoor file list",
                        description="Select the outdoor images of ADE20K by the classes in their annotations "
                                    "(rule in docs/data.md) and cache the list next to the dataset.")
    o.add_argument("--root", required=True, help="ADEChallengeData2016 folder (or its parent)")
    o.add_argument("--split", choices=["train", "val", "all"], default="all")
    o.add_argument("--min-outdoor", type=number(float, 0, 1), default=0.01,
                   help="minimum fraction of pixels of outdoor classes (default 0.01)")
    o.set_defaults(func=run_outdoor)


def run_check(args: argparse.Namespace) -> int:
    from ..data import check_dataset

    cfg = dataset_config(args, args.root)
    splits = ["train", "val"] if args.split == "all" else [args.split]
    report = check_dataset(cfg, args.root, mode=args.mode, splits=splits, workers=args.workers,
                           progress=not (args.json or args.no_progress) and sys.stderr.isatty())
    print(report.to_json() if args.json else report.format())
    return 0 if report.ok else 1


def run_toy(args: argparse.Namespace) -> int:
    import time

    from ..data.toy import generate_toy

    t0 = time.perf_counter()
    out = generate_toy(args.out, size=args.size, n_train=args.train, n_val=args.val, seed=args.seed,
                       workers=args.workers, progress=sys.stderr.isatty(), appearances=args.appearances)
    print(f"toy dataset: {args.train} train + {args.val} val images of {args.size}x{args.size} in {out} "
          f"({time.perf_counter() - t0:.1f} s); train with: oasis train --preset toy --data-root {out}")
    return 0


def run_outdoor(args: argparse.Namespace) -> int:
    from ..data import ade20k

    splits = ["train", "val"] if args.split == "all" else [args.split]
    for split in splits:
        total = len(ade20k.list_split(args.root, split).pairs)
        stems, path = ade20k.build_outdoor_list(args.root, split, args.min_outdoor, progress=sys.stderr.isatty())
        where = f"cached in {path}" if path else "NOT cached (no writable location)"
        print(f"ADE20K-outdoor {split}: {len(stems)} of {total} images; {where}")
    return 0
