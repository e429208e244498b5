"""`oasis info`: model summary of a preset (or a checkpoint)."""
from __future__ import annotations

import argparse
import json

from .common import CHECKPOINT_HELP, add_preset_args, config_overrides, number


def register(sub) -> None:
    p = sub.add_parser("info", help="print the model summary of a preset or checkpoint",
                       description="Parameter counts of G and D, resolution and classes of a preset "
                                   "(with overrides) or of a checkpoint.")
    add_preset_args(p)
    p.add_argument("--checkpoint", default=None, metavar="CKPT_OR_NAME",
                   help="summarise this model instead of a preset: " + CHECKPOINT_HELP)
    p.add_argument("--classes", type=number(int, 2, 65536), default=None,
                   help="number of classes for the custom/toy presets (semantic_nc)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def summary(cfg) -> dict:
    from ..nn import Discriminator, Generator
    from ..nn.layers import count_parameters

    g = Generator.from_config(cfg, init=False)
    d = Discriminator.from_config(cfg, init=False)
    return {
        "preset": cfg.preset,
        "generator_params": count_parameters(g),
        "discriminator_params": count_parameters(d),
        "height": cfg.height,
        "width": cfg.width,
        "classes": cfg.semantic_nc,
        "dontcare_label": cfg.dontcare_label,
        "z_dim": cfg.z_dim,
        "generator_widths": g.channels,
        "discriminator_widths": d.channels,
    }


def run(args: argparse.Namespace) -> int:
    from ..config import ConfigError, preset

    if args.checkpoint:
        from ..loading.checkpoint import read_checkpoint
        from ..config import OASISConfig
        from ..loading.hub import read_config
        from ..loading.pretrained import resolve

        path = resolve(args.checkpoint, discriminator=False)  # a name: downloaded/converted once
        cfg = read_config(path) if path.is_dir() else \
            OASISConfig.from_dict(read_checkpoint(path)["config"], strict=False)
    else:
        if not args.preset:
            raise ConfigError("give --preset or --checkpoint")
        cfg = preset(args.preset, **config_overrides(args, {"semantic_nc": args.classes}))
    info = summary(cfg)
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"OASIS model, preset {info['preset']}")
    print(f"  generator      {info['generator_params']:>12,d} parameters  widths {info['generator_widths']}")
    print(f"  discriminator  {info['discriminator_params']:>12,d} parameters  widths {info['discriminator_widths']}")
    print(f"  resolution     {info['height']}x{info['width']}")
    print(f"  classes        {info['classes']} (don't care: {info['dontcare_label']}), z_dim {info['z_dim']}")
    return 0
