"""Argument helpers shared by several commands."""
from __future__ import annotations

import argparse
from typing import Any, Dict, List, Optional

from ..config import PRESETS, OASISConfig, Range, load_config_file, parse_value


CHECKPOINT_HELP = ("an oasisgan checkpoint (.ckpt), a save_pretrained folder, a pretrained model name "
                   "(`oasis pretrained list`: ade20k, cityscapes, coco-stuff, ...) or a Hub id")


SEED = (0, 2**32 - 1)  # the range of every --seed (numpy's)


def number(kind=int, lo=None, hi=None, lo_open: bool = False):
    """An argparse `type`: a finite `kind` in lo..hi (lo excluded with `lo_open`), else argparse's
    one-line error naming the argument (exit code 2), before anything runs."""
    import math

    rng = Range(lo, hi, lo_open=lo_open)
    what = "an integer" if kind is int else "a finite number"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what} in {rng}, got {text!r}") from None
        if (kind is float and not math.isfinite(value)) or value not in rng:
            raise argparse.ArgumentTypeError(f"must be {what} in {rng}, got {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its own messages
    return parse


def add_preset_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument("--preset", choices=list(PRESETS), required=required, default=None if required else None,
                   help="dataset preset with the paper's settings")
    p.add_argument("--config", metavar="FILE.yaml", default=None,
                   help="YAML/JSON file of config fields (applied after the preset)")
    p.add_argument("--set", metavar="FIELD=VALUE", action="append", default=[],
                   help="override any config field, e.g. --set channels_G=32 (repeatable)")


def add_command_group(sub, name: str, *, help: str, description: str, dest: str, metavar: str):
    """A command made of actions: given no action it prints its help and exits 2."""
    p = sub.add_parser(name, help=help, description=description)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    return p.add_subparsers(dest=dest, metavar=metavar)


def parse_set_overrides(items: List[str]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            from ..config import ConfigError

            raise ConfigError(f"--set expects FIELD=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        k = k.strip().replace("-", "_")
        out[k] = parse_value(k, v)
    return out


def config_overrides(args: argparse.Namespace, explicit: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Config file fields, then --set fields, then explicit flags that were given."""
    out: Dict[str, Any] = {}
    if getattr(args, "config", None):
        out.update(load_config_file(args.config))
    out.update(parse_set_overrides(getattr(args, "set", []) or []))
    for k, v in (explicit or {}).items():
        if v is not None:
            out[k] = v
    return out


def dataset_config(args: argparse.Namespace, root) -> OASISConfig:
    """The preset fitted to the data at `root`, then --config/--set."""
    from ..data import config_for_root

    return config_for_root(args.preset, root, **config_overrides(args))


def format_config(cfg: OASISConfig) -> str:
    return "\n".join(f"  {k:>18}: {v}" for k, v in cfg.to_dict().items()
                     if k not in ("class_names", "palette"))
