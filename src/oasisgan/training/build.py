"""A run's set-up: the training set, the networks and optimisers, and what a resume restores.

The trainer (`training.loop`) calls these once, in this order: `read_resume_checkpoint` (and
`check_resume_config`), `build_training_set`, `build_networks` (weights from the checkpoint),
`make_adam`, `load_training_state` (optimisers, precision, iteration, RNG streams).
"""
from __future__ import annotations

import copy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch
import torch.nn as nn
import yaml

from ..config import ConfigError, OASISConfig, RuntimeConfig, flat_fields
from ..data import build_dataset, check_dataset
from ..errors import DataError, first_line
from ..loading.checkpoint import CheckpointError, atomic_write, read_checkpoint, remove_stale_temporaries
from ..nn import Discriminator, Generator
from . import distributed as D
from .amp import Precision, prepare_module
from .state import load_buffers, restore_rng_state, seed_everything

# Fields that may change when a run is resumed (schedule and bookkeeping); all others define the
# model, the data or the optimisation and must match the checkpoint.
RESUMABLE_CHANGES = {"iters", "num_epochs", "num_workers", "freq_print", "freq_save_latest",
                     "freq_save_ckpt", "freq_fid", "eval_metrics", "log_every", "lr_g", "lr_d",
                     "bn_stats_batches", "bn_recollect_in_place", "class_names", "palette"} | set(RuntimeConfig.__dataclass_fields__)


def make_adam(params, lr: float, cfg: OASISConfig) -> torch.optim.Adam:
    """The official Adam; fused (one kernel over all tensors) when `cfg.fused_updates` is set and
    the device has the fused kernel. Same update up to float rounding; same state-dict format."""
    params = list(params)
    if cfg.fused_updates:
        try:
            return torch.optim.Adam(params, lr=lr, betas=(cfg.beta1, cfg.beta2), fused=True)
        except RuntimeError:  # a device without the fused kernel: torch's default implementation
            pass
    return torch.optim.Adam(params, lr=lr, betas=(cfg.beta1, cfg.beta2))


def write_config(cfg: OASISConfig, path: Path) -> None:
    text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    atomic_write(path, lambda f: f.write(text), text=True)


def read_resume_checkpoint(cfg: OASISConfig, ctx: D.DistContext, out_dir: Path,
                           resume: bool) -> Optional[Dict[str, Any]]:
    """The checkpoint to resume from (None: a fresh start); refuses to start over an existing run.
    The main process first removes the temporaries of a save killed mid-write."""
    ckpt_dir = out_dir / "checkpoints"
    if ctx.is_main and ckpt_dir.is_dir():
        remove_stale_temporaries(ckpt_dir)
    latest = ckpt_dir / "latest.ckpt"
    if resume and latest.is_file():
        ckpt = read_checkpoint(latest)
        if ckpt.get("training") is None:
            raise CheckpointError(f"{latest} holds no training state to resume from")
        check_resume_config(cfg, ckpt, latest)
        return ckpt
    if not resume and latest.is_file():
        raise ConfigError(f"{out_dir} already holds a training run ({latest}); continue it with "
                          "--resume, or choose another --out")
    return None


def check_resume_config(cfg: OASISConfig, ckpt, path) -> None:
    old = flat_fields(ckpt["config"])
    new = cfg.to_dict()
    diff = [k for k in new if k in old and old[k] != new[k] and k not in RESUMABLE_CHANGES]
    if diff:
        items = ", ".join(f"{k}: {old[k]!r} -> {new[k]!r}" for k in diff)
        raise ConfigError(f"cannot resume {path} with a different config ({items}); "
                          "resume with the run's own config.yaml")


def build_training_set(cfg: OASISConfig, data_root: Optional[Path], ctx: D.DistContext,
                       check_data: Union[bool, str], progress: bool):
    """The training set, after `oasis data check` of its every file (mode `check_data`: True
    is "auto"; False skips it). The main process checks, the others wait for its verdict."""
    if data_root is None:
        raise ConfigError("give --data-root (the dataset folder)")
    if check_data:
        mode = "auto" if check_data is True else check_data
        failure = None
        if ctx.is_main:
            report = check_dataset(cfg, data_root, mode=mode, splits=["train"],
                                   progress=progress and sys.stderr.isatty())
            failure = None if report.ok else report.format()
        failure = D.broadcast_object(ctx, failure)
        if failure:
            raise DataError(failure)
    return build_dataset(cfg, data_root, "train")


@dataclass
class Networks:
    """G, D and the EMA generator (None with ``ema: false``) on the device, as trained."""

    g: nn.Module
    d: nn.Module
    ema: Optional[nn.Module]


def build_networks(cfg: OASISConfig, ctx: D.DistContext, device: torch.device,
                   resume_ckpt: Optional[Dict[str, Any]], path: Path) -> Networks:
    """Identical on every rank: seeded init, the EMA as a copy of the initialised G, the weights
    of `resume_ckpt` when resuming; then moved, SyncBatchNorm-converted, prepared."""
    seed_everything(cfg.seed)
    g, d = Generator.from_config(cfg), Discriminator.from_config(cfg)
    ema = copy.deepcopy(g).requires_grad_(False) if cfg.ema else None
    if resume_ckpt is not None:
        _load_weights(resume_ckpt, g, d, ema, path)
    g, d = g.to(device), d.to(device)
    g = D.convert_sync_batchnorm(g, ctx, cfg.param_free_norm)
    prepare_module(g, cfg.channels_last, cfg.compile)
    prepare_module(d, cfg.channels_last, cfg.compile)
    if ema is not None:
        ema = D.convert_sync_batchnorm(ema.to(device), ctx, cfg.param_free_norm)
        prepare_module(ema, cfg.channels_last, False)
        ema.eval()
    return Networks(g, d, ema)


def _load_weights(ckpt, g, d, ema, path) -> None:
    try:
        g.load_state_dict(ckpt["generator"])
        d.load_state_dict(ckpt["discriminator"])
        if ema is not None:
            ema.load_state_dict(ckpt["ema"])
            extra = (ckpt["training"] or {}).get("ema_buffers")
            if extra:
                load_buffers(ema, extra)
    except (RuntimeError, TypeError, KeyError) as e:
        raise CheckpointError(f"{path}: cannot restore the networks: {first_line(e)}") from None


def load_training_state(tr: Dict[str, Any], cfg: OASISConfig, ctx: D.DistContext, opt_g, opt_d,
                        precision: Precision, bpe: int) -> Tuple[int, Optional[Dict[str, Any]]]:
    """Restore the optimisers (at the config's learning rates), the loss scalers and every RNG
    stream from a checkpoint's training state; returns (iteration, best evaluation so far)."""
    opt_g.load_state_dict(tr["opt_g"])
    opt_d.load_state_dict(tr["opt_d"])
    for grp in opt_g.param_groups:
        grp["lr"] = cfg.lr_g
    for grp in opt_d.param_groups:
        grp["lr"] = cfg.lr_d
    precision.load_state_dict(tr.get("precision"))
    step = int(tr["iteration"])
    rngs = tr.get("rng") or []
    if len(rngs) == ctx.world_size:
        restore_rng_state(rngs[ctx.rank])
    else:
        seed_everything(cfg.seed + ctx.rank + 7919 * step)
        if ctx.is_main:
            print(f"note: the checkpoint was written by {len(rngs)} process(es), this run has "
                  f"{ctx.world_size}: random streams are re-seeded (the run continues, not bit-exactly)",
                  file=sys.stderr)
    if int(tr.get("batches_per_epoch", bpe)) != bpe and ctx.is_main:
        print("note: the number of batches per epoch changed since the checkpoint "
              f"({tr.get('batches_per_epoch')} -> {bpe}); the data order differs from "
              "an uninterrupted run", file=sys.stderr)
    return step, tr.get("best")
