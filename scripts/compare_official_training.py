#!/usr/bin/env python
"""Train the official OASIS and oasisgan's Trainer side by side, step for step, from one start.

    python scripts/compare_official_training.py --official-repo PATH/TO/OASIS --preset toy \\
        --data-root DATA --iters 60 [--size 64 --channels-g 8 --z-dim 16 --batch 2 --freq 10] [--json OUT]

Without --data-root the data are random block labels (--classes, class 0 don't-care) and noise
images, e.g. an ADE20K-shaped setting: ``--preset ade20k --classes 151``. CPU, float32.

How the runs are made identical (recorded on our side, fed to the official one):
- weights: the official `OASIS_model` is built and initialised by its own code (torch seeded
  with --seed); our Trainer's G, D and EMA are loaded with its state dicts through the
  checkpoint converter's mapping (`oasisgan.loading.official.official_to_ours`).
- data: our Trainer loads the batches (its shuffle, crops and flips). Every batch it trains on,
  and every batch of each EMA BatchNorm re-collection, is recorded and given to the official
  step as is (the official dataloader does not run).
- random draws: while ours trains, each `torch.randn` / `torch.randint` from the global RNG (the
  generator's noise z, the LabelMix bits, one per class present) is recorded in call order.
  In the official run these two functions return the recorded values in order; every call must
  ask for the same function and shape, else the script stops (a different draw sequence is a
  difference in the training).
- steps: the official run is `train.py`'s loop body (G step: `model(.., "losses_G")`,
  backward, Adam; D step: `model(.., "losses_D")`, backward, Adam; `utils.update_EMA(model,
  cur_iter, ..)` with `cur_iter` counted from 0), and after the loop its final
  `update_EMA(.., force_run_stats=True)` (one more EMA step, one more re-collection). Ours runs
  with `bn_recollect_in_place: true`, the official EMA schedule; its outputs every --freq
  iterations (`freq_save_latest`) make the official re-collections happen after iterations
  1, freq + 1, 2 freq + 1, ...
- a third run, "ulp": the official again, with every floating-point weight of the initial G and
  D (and the EMA, a copy of G) moved by one ULP (`torch.nextafter`), the same data and draws.
  It shows how fast float32 rounding alone separates two official trainings.

Output (JSON, stdout or --json): per iteration the G and D losses of the three runs and the
relative differences |ours - official| / |official| and |ulp - official| / |official|; the first
iteration where each pair separates (relative difference above 1e-3 and above 1e-1); at the
end the relative difference of the G, D and EMA states (parameters, BatchNorm statistics,
spectral-norm vectors), of ours and of the ulp run against the official run.

Exit status 1 (MISMATCH) when, in one of the first 20 iterations, ours differs from the official
run by more than the bound max(64 eps32, 16 u), u the ulp run's largest relative difference at
iterations i-1..i+1 (eps32 = 2^-23); when an end state (G, D, EMA: weights, BatchNorm
statistics, spectral-norm vectors) differs by more than the same bound of the ulp run's end
state; or when the recorded draws or re-collections do not fit the official loop. Why this
bound: both runs compute the same formulas in another order (fused and batched ops, other
reductions), so they start a few eps32 apart -- the floor, 64 eps32 = 7.6e-6, is what one
forward and backward of reassociated float32 sums reaches (scripts/compare_official.py: 1e-6).
From there Adam, with beta1 = 0, divides each gradient entry by its own running magnitude: an
entry that is at rounding level in both runs gets an update anywhere in [-lr, lr], and a D
update that spikes its logits multiplies the losses' sensitivity. How much one rounding-level
change grows is what the ulp run measures on the same batches; ours may differ by what 16 such
perturbations would, no more. A defect moves the losses or the EMA by far more than the ulp
run does (tests/test_compare_official_training.py: without class balancing, with another EMA
decay, or with the copy-side BN re-collection, the script exits 1).
Num_batches_tracked is reported apart: the official SynchronizedBatchNorm calls F.batch_norm on
one device, which never counts it (0), ours counts; with momentum 0.1 it is never read.
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from official_harness import (check_official_shape, import_official, official_model, official_opt,  # noqa: E402
                              official_optimizers, official_step)

EPS32 = float(torch.finfo(torch.float32).eps)
FLOOR_EPS, FACTOR = 64, 16  # see the module docstring


def bound(ulp_difference: float) -> float:
    return max(FLOOR_EPS * EPS32, FACTOR * ulp_difference)
CHECKED_ITERS = 20
SEPARATION = (1e-3, 1e-1)


class RandomLabels(torch.utils.data.Dataset):
    """`n` items of random block labels over `classes` ids (8x8-pixel blocks) and noise images,
    each drawn from its own seed: identical in every run."""

    def __init__(self, n: int, classes: int, height: int, width: int):
        self.n, self.classes, self.h, self.w = n, classes, height, width

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Dict[str, Any]:
        g = torch.Generator().manual_seed(1000 + i)
        ids = torch.randint(0, self.classes, (self.h // 8, self.w // 8), generator=g)
        label = ids.repeat_interleave(8, 0).repeat_interleave(8, 1)
        return {"image": torch.rand(3, self.h, self.w, generator=g) * 2 - 1, "label": label, "name": f"r{i}"}


class FirstItems(torch.utils.data.Dataset):
    """The first `n` items of a dataset (keeping its per-epoch augmentation)."""

    def __init__(self, dataset, n: int):
        self.dataset, self.n = dataset, min(n, len(dataset))

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return self.dataset[i]


class DrawLog:
    """Records the global-RNG calls of `torch.randn` / `torch.randint` (`record`), or replays
    them in order (`replay`)."""

    NAMES = ("randn", "randint")

    def __init__(self):
        self.draws: List[tuple] = []
        self.orig = {n: getattr(torch, n) for n in self.NAMES}

    @contextlib.contextmanager
    def record(self, enabled=lambda: True):
        def recorder(name):
            def f(*a, **k):
                out = self.orig[name](*a, **k)
                if k.get("generator") is None and enabled():
                    self.draws.append((name, tuple(out.shape), out.clone()))
                return out
            return f
        with self._patched(recorder):
            yield self

    @contextlib.contextmanager
    def replay(self):
        queue = iter(self.draws)

        def player(name):
            def f(*a, **k):
                if k.get("generator") is not None:
                    return self.orig[name](*a, **k)
                want = self.orig[name](*a, **k)  # for its shape and dtype only
                try:
                    got_name, shape, value = next(queue)
                except StopIteration:
                    raise RuntimeError(f"the official run draws more than ours (torch.{name}{tuple(want.shape)})") from None
                if got_name != name or shape != tuple(want.shape):
                    raise RuntimeError(f"the draw sequences differ: the official run calls torch.{name} "
                                       f"{tuple(want.shape)} where ours called torch.{got_name} {shape}")
                return value.to(want.dtype).clone()
            return f
        with self._patched(player):
            yield self
        left = sum(1 for _ in queue)
        if left:
            raise RuntimeError(f"ours drew {left} random tensors more than the official run")

    @contextlib.contextmanager
    def _patched(self, make):
        for n in self.NAMES:
            setattr(torch, n, make(n))
        try:
            yield
        finally:
            for n in self.NAMES:
                setattr(torch, n, self.orig[n])


def run_ours(cfg, dataset, official_states, out_dir: Path):
    """Train with our Trainer from the official initial weights; return the recorded events
    (("step", batch), ("recollect", batches) and ("final", batches), in order), the draws, the
    losses and the end states."""
    from oasisgan.loading.official import official_to_ours
    from oasisgan.training import loop, periodic

    trainer = loop.Trainer(cfg, None, out_dir, device="cpu", dataset=dataset, progress=False,
                           tensorboard=False, check_data=False)
    for net, part in ((trainer.g, "G"), (trainer.d, "D"), (trainer.ema, "EMA")):
        net.load_state_dict(official_to_ours(official_states[part], net.state_dict()))
    events: List[tuple] = []
    losses: List[Dict[str, float]] = []
    # "on": inside output_state (a re-collection on a copy: not training state); "final": in at_end
    side = {"on": False, "final": False}
    work = trainer.periodic
    step, output_state, recollect_fn = trainer.stepper.step, work.output_state, periodic.recollect_bn_stats
    finish = work.at_end

    def recorded_step(batch, device):
        events.append(("step", {"image": batch["image"].clone(), "label": batch["label"].clone()}))
        out = step(batch, device)
        losses.append({"G": float(out["G"]), "D": float(out["D"])})
        return out

    @contextlib.contextmanager
    def marked_output_state(s):
        side["on"] = True
        try:
            with output_state(s) as buffers:
                yield buffers
        finally:
            side["on"] = False

    def recorded_recollect(ema, batches, num_batches=50, forward=None):
        batches = [b.clone() for b in itertools.islice(batches, num_batches + 1)]
        if not side["on"]:
            events.append(("final" if side["final"] else "recollect", batches))
        return recollect_fn(ema, batches, num_batches, forward)

    def marked_finish(s, interrupted, latest):
        side["final"] = True
        return finish(s, interrupted, latest)

    trainer.stepper.step, work.output_state, work.at_end = recorded_step, marked_output_state, marked_finish
    periodic.recollect_bn_stats = recorded_recollect
    draws = DrawLog()
    try:
        with draws.record(enabled=lambda: not side["on"]):
            result = trainer.run()
    finally:
        periodic.recollect_bn_stats = recollect_fn
    if result.status != "finished":
        raise SystemExit(f"our training did not finish: {result.status}")
    states = {"G": trainer.g.state_dict(), "D": trainer.d.state_dict(), "EMA": trainer.ema.state_dict()}
    return events, draws, losses, states


def run_official(off, opt, init_states, events, draws, ulp: bool = False):
    """`train.py`'s loop over the recorded batches, draws fed from `draws`; returns losses and end states."""
    model = official_model(off, opt)
    for net, part in ((model.netG, "G"), (model.netD, "D"), (model.netEMA, "EMA")):
        net.load_state_dict(init_states[part])
        if ulp:
            with torch.no_grad():
                for p in net.parameters():
                    p.copy_(torch.nextafter(p, torch.full_like(p, math.inf)))
    model.train()
    wrapped = argparse.Namespace(module=model)  # what models.put_on_multi_gpus gives on the CPU
    lc = off.losses.losses_computer(opt)
    optimizer_g, optimizer_d = official_optimizers(model, opt)

    def official_batch(image, label_ids):
        return {"image": image, "label": label_ids.unsqueeze(1)}  # the official loader's (B,1,H,W) label

    losses: List[Dict[str, float]] = []
    pending = list(events)
    steps = sum(1 for k, _ in events if k == "step")
    if [k for k, _ in events[-1:]] != ["final"]:
        raise RuntimeError("ours made no final re-collection (the official update_EMA(force_run_stats=True))")
    with draws.replay():
        for cur_iter in range(steps):
            kind, data = pending.pop(0)
            if kind != "step":
                raise RuntimeError(f"ours re-collected twice after iteration {cur_iter}")
            image, label = off.models.preprocess_input(opt, official_batch(data["image"], data["label"]))
            losses.append(official_step(model, lc, optimizer_g, optimizer_d, image, label))
            # update_EMA re-collects over the batches ours re-collected with after this iteration
            collected = LoaderOf()
            if pending[0][0] == "recollect":
                collected = LoaderOf(official_batch(torch.zeros(0), ids) for ids in pending.pop(0)[1])
            off.utils.update_EMA(wrapped, cur_iter, collected, opt)
            if len(collected) and not collected.used:
                raise RuntimeError(f"ours re-collected after iteration {cur_iter + 1}, the official code does not")
        # after the loop: train.py's update_EMA(.., force_run_stats=True)
        end = LoaderOf(official_batch(torch.zeros(0), ids) for ids in pending.pop(0)[1])
        off.utils.update_EMA(wrapped, cur_iter, end, opt, force_run_stats=True)
    states = {"G": model.netG.state_dict(), "D": model.netD.state_dict(), "EMA": model.netEMA.state_dict()}
    return losses, states


class LoaderOf(list):
    """A list of batches standing for the official dataloader inside update_EMA: it must be
    iterated exactly when the official condition holds (an unexpected pass raises)."""

    used = False

    def __iter__(self):
        if not len(self):
            raise RuntimeError("the official update_EMA re-collects where ours did not")
        self.used = True
        return super().__iter__()


def state_differences(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> Dict[str, float]:
    """Relative difference of two state dicts, by kind of entry (max |a-b| / max |a| per group)."""
    groups: Dict[str, List[str]] = {}
    for k in a:
        if k.endswith("num_batches_tracked"):  # reported apart (see the module docstring)
            continue
        kind = ("bn_stats" if k.endswith(("running_mean", "running_var")) else
                "sn_vectors" if k.endswith(("weight_u", "weight_v")) else "weights")
        groups.setdefault(kind, []).append(k)
    out = {}
    for kind, keys in sorted(groups.items()):
        x = torch.cat([a[k].double().flatten() for k in keys])
        y = torch.cat([b[k].double().flatten() for k in keys])
        out[kind] = float((x - y).abs().max() / x.abs().max().clamp_min(1e-30))
    return out


def initial_states(off, opt, cfg, seed: int) -> Dict[str, Dict[str, torch.Tensor]]:
    """The start of every run: the official `init_networks` (the preset keeps the official
    init), or ours where the preset changes it (`sn_init_gain`), in the official layout."""
    torch.manual_seed(seed)
    if cfg.sn_init_gain is None:
        model = official_model(off, opt)
        g, d, ema = model.netG, model.netD, model.netEMA
    else:
        from oasisgan.nn import Discriminator, Generator

        g, d = Generator.from_config(cfg), Discriminator.from_config(cfg)
        ema = g
    return {part: {k: v.detach().clone() for k, v in net.state_dict().items()}
            for part, net in (("G", g), ("D", d), ("EMA", ema))}


def first_above(values: List[float], threshold: float):
    return next((i + 1 for i, v in enumerate(values) if v > threshold), None)


def relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-30)


def build_config(args):
    from oasisgan.config import preset
    from oasisgan.data import config_for_root

    over = dict(num_res_blocks=6, channels_D=64, spade_hidden=128, channels_G=args.channels_g,
                z_dim=args.z_dim, crop_size=args.size, load_size=args.load_size or args.size,
                aspect_ratio=1.0, batch_size=args.batch, iters=args.iters, amp="none", num_workers=0,
                seed=args.seed, bn_stats_batches=50, bn_recollect_in_place=True, freq_print=0,
                freq_save_latest=args.freq, freq_save_ckpt=0, freq_fid=0, eval_metrics="", log_every=0,
                compile=False, channels_last=False)
    if args.reference_ops:
        over.update(fast_spade=False, fused_losses=False, fused_updates=False, batch_d_calls="off")
    if args.data_root is None:
        return preset(args.preset, semantic_nc=args.classes, dontcare_label=0,
                      **{k: v for k, v in over.items()})
    cfg = config_for_root(args.preset, args.data_root, **over)
    if cfg.dontcare_label not in (0, None):
        cfg = cfg.replace(dontcare_label=0)  # see RemapDontcare
    return cfg


class RemapDontcare(torch.utils.data.Dataset):
    """The official losses know don't-care only as id 0: move id `d` to 0 (0..d-1 up by one)."""

    def __init__(self, dataset, dontcare: int):
        self.dataset, self.d = dataset, dontcare
        self.lut = torch.tensor([0 if i == dontcare else i + 1 if i < dontcare else i for i in range(256)])

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        item = dict(self.dataset[i])
        item["label"] = self.lut[item["label"].long()]
        return item


def build_dataset(args, cfg):
    if args.data_root is None:
        return RandomLabels(args.max_images, cfg.semantic_nc, cfg.height, cfg.width)
    from oasisgan.data import build_dataset as ours, config_for_root

    original = config_for_root(args.preset, args.data_root)
    data = ours(cfg.replace(dontcare_label=original.dontcare_label), args.data_root, "train")
    if original.dontcare_label not in (0, None):
        data = RemapDontcare(data, original.dontcare_label)
    return FirstItems(data, args.max_images)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("--official-repo", required=True, help="a checkout of boschresearch/OASIS")
    ap.add_argument("--preset", default="toy", help="our preset (its losses, learning rates, EMA decay)")
    ap.add_argument("--data-root", default=None, help="a dataset of the preset's layout (default: random labels)")
    ap.add_argument("--classes", type=int, default=151, help="label ids of the random labels, don't-care 0 included")
    ap.add_argument("--iters", type=int, default=40)
    ap.add_argument("--size", type=int, default=64, help="crop size (square; a multiple of 64)")
    ap.add_argument("--load-size", type=int, default=None, help="load size before the random crop (default: --size)")
    ap.add_argument("--channels-g", type=int, default=8)
    ap.add_argument("--z-dim", type=int, default=16)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--max-images", type=int, default=16, help="training images used (the first N)")
    ap.add_argument("--freq", type=int, default=10, help="our freq_save_latest: official re-collections "
                    "after iterations 1, freq + 1, ... (0: only after 1 and at the end)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reference-ops", action="store_true",
                    help="ours with every op's reference and unfused updates (default: the default config)")
    ap.add_argument("--ours-set", action="append", default=[], metavar="KEY=VALUE",
                    help="change our config only (a deliberate difference, to see the check fail)")
    ap.add_argument("--json", default=None, help="write the report here too")
    args = ap.parse_args(argv)
    if args.size % 64:
        ap.error("--size must be a multiple of 64 (the official networks have 6 blocks)")
    off = import_official(args.official_repo)
    cfg = build_config(args)
    check_official_shape(cfg)
    dataset = build_dataset(args, cfg)
    opt = official_opt(cfg, args.batch, freq_print=10 ** 9, freq_fid=10 ** 9, freq_save_ckpt=10 ** 9,
                       freq_save_latest=args.freq or 10 ** 9)

    init_states = initial_states(off, opt, cfg, args.seed)
    ours_cfg = cfg
    for item in args.ours_set:
        key, _, value = item.partition("=")
        from oasisgan.config import parse_value

        ours_cfg = ours_cfg.replace(**{key: parse_value(key, value)})
    with tempfile.TemporaryDirectory() as tmp:
        events, draws, ours, ours_states = run_ours(ours_cfg, dataset, init_states, Path(tmp) / "run")
    try:
        official, off_states = run_official(off, opt, init_states, events, draws)
    except RuntimeError as e:  # the recorded draws or re-collections do not fit the official loop
        print(f"MISMATCH: {e}", file=sys.stderr)
        return 1
    ulp, ulp_states = run_official(off, opt, init_states, events, draws, ulp=True)
    runs = {"ours": ours, "ulp": ulp}

    report: Dict[str, Any] = {
        "command": " ".join(["python", "scripts/compare_official_training.py"] + (argv or sys.argv[1:])),
        "setting": {"preset": args.preset, "data": args.data_root or f"random labels, {cfg.semantic_nc} ids",
                    "images": len(dataset), "size": [cfg.height, cfg.width], "batch": args.batch,
                    "channels_G": cfg.channels_G, "z_dim": cfg.z_dim, "lr_g": cfg.lr_g, "lr_d": cfg.lr_d,
                    "ema_decay": cfg.ema_decay, "lambda_labelmix": cfg.lambda_labelmix,
                    "freq_save_latest": args.freq, "reference_ops": args.reference_ops, "seed": args.seed,
                    "init": "the official init_networks" if cfg.sn_init_gain is None else
                            f"oasisgan's (sn_init_gain {cfg.sn_init_gain})", "ours_set": args.ours_set,
                    "draws": len(draws.draws), "recollections": sum(1 for k, _ in events if k == "recollect")},  # besides the final one
        "bound": f"max({FLOOR_EPS} eps32, {FACTOR} x the ulp run's relative difference at iterations i-1..i+1)",
        "checked_iterations": min(CHECKED_ITERS, args.iters), "iterations": []}
    failures: List[str] = []
    n = report["checked_iterations"]
    ulp_rel = [max(relative(u[k], o[k]) for k in ("G", "D")) for u, o in zip(ulp, official)]
    for i, o in enumerate(official):
        row = {"iter": i + 1, "official": o}
        for name, losses in runs.items():
            row[name] = losses[i]
            row[f"rel_{name}"] = {k: relative(losses[i][k], o[k]) for k in ("G", "D")}
        row["bound"] = bound(max(ulp_rel[max(0, i - 1):i + 2]))
        if i < n and max(row["rel_ours"].values()) > row["bound"]:
            failures.append(f"iteration {i + 1}: losses {max(row['rel_ours'].values()):.2e} > {row['bound']:.2e}")
        report["iterations"].append(row)
    summary: Dict[str, Any] = {}
    for name in runs:
        worst = [max(r[f"rel_{name}"].values()) for r in report["iterations"]]
        summary[name] = {"max_rel_first_%d" % n: max(worst[:n]), "max_rel": max(worst),
                         **{f"separates_above_{t:g}_at": first_above(worst, t) for t in SEPARATION}}
    ends = {name: {p: state_differences(off_states[p], st[p]) for p in off_states}
            for name, st in (("ours", ours_states), ("ulp", ulp_states))}
    summary["end_state_rel"] = ends
    for part, kinds in ends["ours"].items():  # the end states, EMA included, under the same rule
        for kind, value in kinds.items():
            if value > bound(ends["ulp"][part][kind]):
                failures.append(f"end state {part} {kind}: {value:.2e} > {bound(ends['ulp'][part][kind]):.2e}")
    summary["num_batches_tracked"] = {name: max(int(v.max()) for k, v in st["G"].items() if k.endswith("num_batches_tracked"))
                                      for name, st in (("official", off_states), ("ours", ours_states))}
    ok = not failures
    summary["ok"], summary["failures"] = ok, failures
    report["summary"] = summary
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    print(("OK" if ok else "MISMATCH: " + "; ".join(failures)) + f" (the first {n} iterations differ by at "
          f"most {summary['ours']['max_rel_first_%d' % n]:.2e}; one ULP: {summary['ulp']['max_rel_first_%d' % n]:.2e})",
          file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
