"""`oasis <command>`: the command-line front door.

Each command lives in its own module under `oasisgan.commands` with two functions:
`register(subparsers)` adds its parser (and `set_defaults(func=run)`), `run(args) -> int`.
Heavy imports (torch, numpy, PIL) stay inside `run`, so that `oasis --help` and every command's
`--help` answer without importing torch (tests/test_cli_help.py).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from . import __version__

# Order is the order of `oasis --help`.
COMMANDS = ["info", "data", "train", "synthesize", "invert", "export", "evaluate", "segmenter",
            "convert_official", "pretrained", "app"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oasis", description="OASIS semantic image synthesis: train, synthesise, evaluate.")
    parser.add_argument("--version", action="version", version=f"oasisgan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"oasisgan.commands.{name}").register(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    from .allocator import INFERENCE_MODE, tune_cpu_allocator

    if args.command != "train":  # training follows its config's `tune_malloc`
        tune_cpu_allocator(INFERENCE_MODE)  # the CLI owns its process (allocator.py; results unchanged)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # known user-facing errors get one clean line
        from .errors import is_user_error, user_message

        if is_user_error(e):
            print(f"oasis {args.command}: error: {user_message(e)}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
