"""`oasis train`: train OASIS on a dataset (CPU, one GPU, or many through torchrun)."""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_preset_args, config_overrides, format_config, number

# flag -> config field (type, help)
FLAGS = [
    ("--iters", "iters", int, "total iterations (overrides --epochs)"),
    ("--epochs", "num_epochs", int, "epochs (when --iters is not given)"),
    ("--batch-size", "batch_size", int, "global batch size (split over processes under torchrun)"),
    ("--crop-size", "crop_size", int, "generated image width; load size scales with it unless --load-size"),
    ("--load-size", "load_size", int, "training images are resized to this width before the random crop"),
    ("--channels-g", "channels_G", int, "generator base width (64 in the paper)"),
    ("--channels-d", "channels_D", int, "discriminator base width (64 in the paper)"),
    ("--lr-g", "lr_g", float, "generator learning rate"),
    ("--lr-d", "lr_d", float, "discriminator learning rate"),
    ("--ema-decay", "ema_decay", float, "EMA decay of the generator weights"),
    ("--num-workers", "num_workers", int, "data loading processes"),
    ("--seed", "seed", int, "random seed (weights, data order, noise)"),
    ("--sample-every", "freq_print", int, "sample grid every N iterations"),
    ("--save-every", "freq_save_latest", int, "checkpoints/latest.ckpt every N iterations"),
    ("--ckpt-every", "freq_save_ckpt", int, "checkpoints/iter_<N>.ckpt every N iterations (0: off)"),
    ("--log-every", "log_every", int, "log scalars every N iterations"),
    ("--eval-metrics", "eval_metrics", str, "comma-separated metrics for --eval-every (e.g. fid,miou)"),
    ("--amp", "amp", str, "mixed precision: none | bf16 | fp16 (fp16: CUDA only)"),
]


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train OASIS on a dataset",
        description="Train OASIS. The run directory gets config.yaml, checkpoints/latest.ckpt (resume "
                    "state), iter_<N>.ckpt, best.ckpt (with --eval-every), samples/, tb/ (TensorBoard) and "
                    "log.jsonl. Every config field can be set with --set FIELD=VALUE. Multi-GPU: "
                    "torchrun --nproc_per_node=K -m oasisgan.cli train ...")
    add_preset_args(p)
    p.add_argument("--data-root", default=None, help="dataset folder (see `oasis data check`)")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory")
    p.add_argument("--resume", action="store_true",
                   help="continue from RUN_DIR/checkpoints/latest.ckpt with RUN_DIR/config.yaml "
                        "(starts fresh when there is no checkpoint yet)")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:K (default: cuda when available)")
    p.add_argument("--eval-every", type=number(int, 0, 10**9), default=None, metavar="N",
                   help="evaluate the EMA generator every N iterations and keep best.ckpt "
                        "(default: the preset's freq_fid when the metric's weights are available; 0: off)")
    for flag, _, typ, hlp in FLAGS:
        extra = {"choices": ["none", "bf16", "fp16"]} if flag == "--amp" else {}
        p.add_argument(flag, type=typ, default=None, help=hlp, **extra)
    p.add_argument("--channels-last", action="store_true", default=None, help="NHWC memory layout (GPU speed-up)")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile G and D")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=run)


def resolve_config(args: argparse.Namespace):
    """The run's config: (config.yaml of the run when resuming, else the preset) + config file +
    --set + explicit flags."""
    from ..config import PRESETS, ConfigError, OASISConfig, load_config_file

    explicit = {field: getattr(args, flag[2:].replace("-", "_")) for flag, field, _, _ in FLAGS}
    explicit["channels_last"] = args.channels_last
    explicit["compile"] = args.compile
    overrides = config_overrides(args, explicit)
    run_cfg = Path(args.out) / "config.yaml"
    if args.resume and run_cfg.is_file():
        base = load_config_file(run_cfg)
        if args.preset and args.preset != base.get("preset"):
            raise ConfigError(f"--resume: {run_cfg} is a {base.get('preset')!r} run, not {args.preset!r}")
        base.update(overrides)
        return OASISConfig.from_dict(base)
    if not args.preset:
        raise ConfigError("give --preset (e.g. --preset toy), or --resume an existing run")
    if "crop_size" in overrides and "load_size" not in overrides:
        pr = PRESETS[args.preset]
        overrides["load_size"] = max(overrides["crop_size"],
                                     int(round(overrides["crop_size"] * pr["load_size"] / pr["crop_size"])))
    from ..data import config_for_root

    return config_for_root(args.preset, args.data_root, **overrides)


def run(args: argparse.Namespace) -> int:
    cfg = resolve_config(args).check_trainable()
    if args.dry_run:
        print(format_config(cfg))
        return 0
    from ..training import train

    data_root = args.data_root
    if data_root is None and args.resume:
        data_root = _data_root_of_run(Path(args.out))
    result = train(cfg, data_root, args.out, resume=args.resume, device=args.device,
                   eval_every=args.eval_every, progress=not args.no_progress)
    return 130 if result.status == "interrupted" else 0


def _data_root_of_run(out: Path):
    """The data root recorded in the run directory's run.json (written by training)."""
    import json

    meta = out / "run.json"
    if meta.is_file():
        return json.loads(meta.read_text()).get("data_root")
    return None
