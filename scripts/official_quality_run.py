#!/usr/bin/env python
"""Train with the official OASIS training step at a preset's recipe; save oasisgan checkpoints of its EMA.

    python scripts/official_quality_run.py --official-repo PATH/TO/OASIS --preset toy \\
        --data-root DATA --out RUN --seed 1 --iters 600 --save-every 300

What runs: the official `models.OASIS_model` (imported from the checkout at run time, on the
CPU, float32) built at the preset's depth and widths (`official_harness.official_widths`: the
official classes, their hard-coded widths mapped to ours), and `train.py`'s loop: per
iteration the G step and the D step (`official_harness.official_step`), then
`utils.update_EMA(model, cur_iter, dataloader, opt)`; after the last one
`update_EMA(.., force_run_stats=True)`. The recipe is the preset's (learning rates, betas,
batch, EMA decay, LabelMix lambda, class balancing, no VGG loss), through `official_opt`.

The start is ours: torch seeded with --seed, our G and D built as our Trainer builds them for
that seed (`oasis train --seed S` starts from the same weights), loaded into the official
networks (the same names), the EMA a copy of G. Then the official run samples on its own:
torch, Python's `random` and the loader's shuffle are seeded with --seed; the official
dataloader's settings (shuffle, drop_last, the batch); images and labels are read by our dataset
without augmentation (the preset's resize) and flipped as the official transforms do
(`random.random() < 0.5`); the noise and the LabelMix masks are the official code's draws.
The official EMA BatchNorm re-collection iterates this loader (51 batches at most), as
`update_EMA` does after iterations with `cur_iter % freq == 0`; --save-every is that freq
(`freq_save_latest`, the others off).

Checkpoints: `RUN/checkpoints/iter_<N>.ckpt` in oasisgan's format (the EMA generator, G and D
converted with `official_to_ours`, the preset's config), so `scripts/quality_curve.py` and
`oasis evaluate` score them exactly as ours. `iter_<k*freq>` is the official save at
`cur_iter = k*freq` (k*freq + 1 steps, the official file name), `iter_<iters>` the final one
(after `iters` steps and the extra EMA step). `RUN/log.jsonl` holds the losses and
`speed/it_per_s` every --log-every iterations (the wall time of the steps and EMA updates,
re-collections and saves included, as our log's), and `RUN/config.yaml` the config.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from official_harness import (import_official, official_model, official_opt,  # noqa: E402
                              official_optimizers, official_step)


class OfficialFlip(torch.utils.data.Dataset):
    """Our un-augmented items as the official loader gives them: flipped when
    `random.random() < 0.5` (Python's RNG, as the official transforms), label (1, H, W)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        item = self.dataset[i]
        image, label = item["image"], item["label"].unsqueeze(0)
        if random.random() < 0.5:
            image, label = image.flip(-1), label.flip(-1)
        return {"image": image, "label": label, "name": item.get("name", str(i))}


def our_initial_states(cfg):
    """Our Trainer's initial G and D for cfg.seed (seed_everything, then G, then D)."""
    from oasisgan.nn import Discriminator, Generator
    from oasisgan.training.state import seed_everything

    seed_everything(cfg.seed)
    g, d = Generator.from_config(cfg), Discriminator.from_config(cfg)
    return g.state_dict(), d.state_dict()


def save(path: Path, cfg, model, iteration: int, references) -> None:
    from oasisgan.loading.checkpoint import save_checkpoint
    from oasisgan.loading.official import official_to_ours

    g_ref, d_ref = references
    states = {"ema": official_to_ours(model.netEMA.state_dict(), g_ref),
              "generator": official_to_ours(model.netG.state_dict(), g_ref),
              "discriminator": official_to_ours(model.netD.state_dict(), d_ref)}
    save_checkpoint(path, config=cfg, training={"iteration": iteration, "trained_by": "official train.py step"},
                    meta={"official_training": True}, **states)


def train(args) -> Path:
    from oasisgan.config import parse_value
    from oasisgan.data import build_dataset, config_for_root
    from oasisgan.training.loop import write_config

    over = {}
    for item in args.set:
        key, _, value = item.partition("=")
        over[key] = parse_value(key, value)
    cfg = config_for_root(args.preset, args.data_root, seed=args.seed, iters=args.iters, amp="none",
                          num_workers=0, **over)
    if cfg.dontcare_label not in (0, None):
        raise SystemExit(f"{args.data_root}: don't-care id {cfg.dontcare_label}; the official losses know only 0")
    off = import_official(args.official_repo)
    big = 10 ** 9
    opt = official_opt(cfg, cfg.batch_size, freq_print=big, freq_fid=big, freq_save_ckpt=big,
                       freq_save_latest=args.save_every or big, num_workers=0)
    g_state, d_state = our_initial_states(cfg)
    model = official_model(off, opt, cfg)
    model.netG.load_state_dict(g_state)
    model.netD.load_state_dict(d_state)
    model.netEMA.load_state_dict(g_state)
    model.train()
    wrapped = argparse.Namespace(module=model)  # what models.put_on_multi_gpus gives on the CPU
    lc = off.losses.losses_computer(opt)
    optimizer_g, optimizer_d = official_optimizers(model, opt)

    torch.manual_seed(args.seed)
    random.seed(args.seed)
    data = OfficialFlip(build_dataset(cfg, args.data_root, "train", augment=False))
    # one loader for the training loop and update_EMA's re-collections, as train.py passes it
    loader = torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                                         num_workers=0, generator=torch.Generator().manual_seed(args.seed))
    out = Path(args.out)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    write_config(cfg, out / "config.yaml")
    refs = (copy.deepcopy(g_state), copy.deepcopy(d_state))
    log = (out / "log.jsonl").open("w")
    sums, t_window, cur_iter = {"G": 0.0, "D": 0.0}, time.perf_counter(), -1
    for epoch in range(10 ** 6):
        if cur_iter + 1 >= args.iters:
            break
        for i, data_i in enumerate(loader):
            if cur_iter + 1 >= args.iters:
                break
            cur_iter = epoch * len(loader) + i
            image, label = off.models.preprocess_input(opt, data_i)
            losses = official_step(model, lc, optimizer_g, optimizer_d, image, label)
            off.utils.update_EMA(wrapped, cur_iter, loader, opt)
            if args.save_every and cur_iter > 0 and cur_iter % args.save_every == 0:
                save(out / "checkpoints" / f"iter_{cur_iter}.ckpt", cfg, model, cur_iter, refs)
            for k in sums:
                sums[k] += losses[k]
            if (cur_iter + 1) % args.log_every == 0:
                now = time.perf_counter()
                row = {"iter": cur_iter + 1, "speed/it_per_s": args.log_every / (now - t_window),
                       **{f"loss/{k}": v / args.log_every for k, v in sums.items()}}
                log.write(json.dumps(row) + "\n")
                log.flush()
                sums, t_window = {k: 0.0 for k in sums}, now
            if not all(math.isfinite(v) for v in losses.values()):
                raise SystemExit(f"non-finite loss at iteration {cur_iter + 1}: {losses}")
    off.utils.update_EMA(wrapped, cur_iter, loader, opt, force_run_stats=True)
    save(out / "checkpoints" / f"iter_{args.iters}.ckpt", cfg, model, args.iters, refs)
    log.close()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("--official-repo", required=True, help="a checkout of boschresearch/OASIS")
    ap.add_argument("--preset", default="toy", help="our preset: the recipe and the networks' widths")
    ap.add_argument("--data-root", required=True, help="a dataset of the preset's layout")
    ap.add_argument("--out", required=True, help="the run folder (checkpoints/, log.jsonl, config.yaml)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--iters", type=int, default=600)
    ap.add_argument("--save-every", type=int, default=300, help="the official freq_save_latest (0: only the end)")
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="change the preset's config")
    args = ap.parse_args(argv)
    if args.iters < 1:
        ap.error("--iters must be at least 1")
    out = train(args)
    print(f"wrote {out}/checkpoints", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
