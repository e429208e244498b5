"""`oasis convert-official`: import a checkpoint of the official OASIS code."""
from __future__ import annotations

import argparse

from .common import add_preset_args, config_overrides


def register(sub) -> None:
    p = sub.add_parser(
        "convert-official", help="convert an official OASIS checkpoint to an oasisgan checkpoint",
        description="Reads SRC_DIR/models/{WHICH}_{G,EMA,D}.pth of the official code (boschresearch/OASIS) "
                    "and the run's opt.pkl/opt.txt when present, and writes one oasisgan checkpoint. "
                    "GPU-saved files load on the CPU.")
    p.add_argument("src", metavar="SRC_DIR", help="the official run folder (checkpoints/NAME) or its models/ folder")
    p.add_argument("--which", default="best", help="best, latest or an iteration number (default: best)")
    add_preset_args(p)
    p.add_argument("--out", required=True, help="output checkpoint file (.ckpt)")
    p.add_argument("--verify", action="store_true",
                   help="reload the written checkpoint and check it reproduces the official weights' outputs")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..loading.official import convert_official

    out = convert_official(args.src, args.out, which=args.which, preset_name=args.preset,
                           **config_overrides(args))
    print(f"wrote {out}")
    if args.verify:
        from ..loading.official import verify_conversion

        err = verify_conversion(args.src, out, which=args.which)
        print(f"verified: max relative difference {err:.2e} (limit 1e-5)")
        if err > 1e-5:
            return 1
    return 0
