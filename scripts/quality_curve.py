#!/usr/bin/env python
"""Image quality over training: evaluate every checkpoint of one or more runs, write JSON and a plot.

    python scripts/quality_curve.py --data-root data/toy --runs runs/toy [runs/other ...] \\
        [--segmenter data/toy/reference_segmenter.pt] --out docs/images/quality_curve.png
    python scripts/quality_curve.py --preset camvid --data-root ../shared/datasets/camvid \\
        --runs /work/runs/camvid --segmenter camvid_refseg.pt --untrained --hours \\
        --out docs/images/camvid_curve.png

For each run, each ``checkpoints/iter_<N>.ckpt`` (and ``latest.ckpt`` when it is newer) is
evaluated with `oasisgan.metrics.evaluate_report` on the validation split: mIoU of the EMA
generator's images under the reference segmenter, as a ratio to the segmenter's mIoU on the real
images; FSD; and the per-pixel spread between noises as a ratio to the spread between the real
looks of each label map (`oasis data toy --appearances K`), or, for CamVid, to the spread between
each photo and its layout twin (`oasisgan.metrics.twins`); and the grid-locked period-2/4/8
patterns over the real images' (`oasisgan.metrics.periodicity`). Writes ``<out>.json`` and a PNG with
one panel per figure (drawn with PIL: no plotting library needed).

``--bands`` draws runs named ``GROUP_s<seed>`` (``fp32_s1 fp32_s2 ...``) as one curve per group:
the mean over its seeds with a shaded band from their minimum to their maximum, and adds the
groups' mean, std, min and max per iteration to the JSON (``groups``); a group's hours are the
mean of its seeds'.

``--untrained`` adds iteration 0: the run's generator freshly initialised (its seed), with
BatchNorm statistics collected as before a checkpoint: the floor that per-class IoUs are judged
against. ``--hours`` also draws the curves against training hours, read off the run's
``log.jsonl`` (iterations / logged speed, so time spent in saves and between resumed stretches is
not counted; the CamVid runs use one CPU thread, so these are CPU-thread hours too).
``--bn-batches N`` scores each checkpoint after another BatchNorm pass of its EMA generator over
N+1 training batches (the official code's pass is 50, in place; ours is on a copy, over the
preset's `bn_stats_batches`): whether the saved statistics move a figure (docs/quality.md).
``--iteration-scale RUN=K`` draws a run of K times the batch at K times its iterations (equal
images seen); the JSON keeps its own iterations.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Dict, List

import torch


def checkpoints(run: Path):
    """(iteration, path) of a run's checkpoints, in order."""
    found = {}
    for p in (run / "checkpoints").glob("iter_*.ckpt"):
        m = re.fullmatch(r"iter_(\d+)\.ckpt", p.name)
        if m:
            found[int(m.group(1))] = p
    latest = run / "checkpoints" / "latest.ckpt"
    if latest.is_file():
        from oasisgan.loading.checkpoint import read_checkpoint

        it = int((read_checkpoint(latest).get("training") or {}).get("iteration", 0))
        found.setdefault(it, latest)
    return sorted(found.items())


def training_hours(run: Path) -> Dict[int, float]:
    """{iteration: hours of training up to it}, from the speed logged every few iterations."""
    hours, total, prev = {0: 0.0}, 0.0, 0
    log = run / "log.jsonl"
    if not log.is_file():
        return hours
    for line in log.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        it, speed = row.get("iter"), row.get("speed/it_per_s")
        if not isinstance(it, int) or not speed or it <= prev:
            continue
        total += (it - prev) / speed / 3600
        hours[it], prev = total, it
    return hours


def untrained_model(run: Path, data_root: Path):
    """The run's generator at initialisation, BatchNorm statistics collected as for a checkpoint."""
    import yaml

    from oasisgan.config import OASISConfig
    from oasisgan.data import build_dataset
    from oasisgan.labels import one_hot
    from oasisgan.loading.model import OASISModel
    from oasisgan.nn import Generator
    from oasisgan.training.ema import recollect_bn_stats

    cfg = OASISConfig.from_dict(yaml.safe_load((run / "config.yaml").read_text()), strict=False)
    torch.manual_seed(cfg.seed)
    gen = Generator.from_config(cfg)
    ds = build_dataset(cfg, data_root, "train")
    n = cfg.batch_size
    batches = [one_hot(torch.stack([ds[(i % len(ds), 0)]["label"] for i in range(k * n, (k + 1) * n)]),
                       cfg.semantic_nc) for k in range(cfg.bn_stats_batches + 1)]
    recollect_bn_stats(gen, batches, cfg.bn_stats_batches)
    return OASISModel(cfg, gen.eval().requires_grad_(False))


def refresh_bn_stats(model, data_root: Path, num_batches: int, iteration: int) -> None:
    """Re-collect the checkpoint's EMA BatchNorm statistics over `num_batches` + 1 training batches
    (shuffled and flipped as in training; the batches and noise are a function of `iteration`),
    starting from the saved ones, as the official code does in place: the saved statistics are the
    trainer's `bn_stats_batches` pass, so this scores the same weights under another pass."""
    from oasisgan.data import build_dataset
    from oasisgan.data.loader import epoch_loader
    from oasisgan.training.ema import recollect_bn_stats
    from oasisgan.training.periodic import BN_EPOCH_BASE

    cfg = model.config
    loader = epoch_loader(build_dataset(cfg, data_root, "train"), cfg, BN_EPOCH_BASE + iteration,
                          cfg.batch_size, num_workers=0, seed_offset=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(BN_EPOCH_BASE + iteration)
        used = recollect_bn_stats(model.generator, (b["label"].long() for b in loader), num_batches)
    if used <= num_batches:
        raise SystemExit(f"{data_root}: {used} training batches, --bn-batches {num_batches} needs {num_batches + 1}")


def evaluate_run(run: Path, data_root: Path, segmenter, args, done: Dict[int, Dict] = None) -> List[Dict]:
    from oasisgan import load
    from oasisgan.metrics import DataSelection, DiversitySampling, Segmentation, evaluate_report

    rows = []
    hours = training_hours(run)
    todo = [(0, None)] if args.untrained else []
    for it, path in todo + [(i, p) for i, p in checkpoints(run) if args.max_iter is None or i <= args.max_iter]:
        if done and it in done and (path is None or path.name != "latest.ckpt"):
            rows.append(done[it])  # --reuse: evaluated by an earlier call
            continue
        torch.manual_seed(0)
        model = untrained_model(run, data_root) if path is None else load(path)
        if args.bn_batches is not None and path is not None:
            refresh_bn_stats(model, data_root, args.bn_batches, it)
        report = evaluate_report(model, model.config, data_root, ("miou", "fsd", "spread", "periodicity"),
                                 segmentation=Segmentation(segmenter, fsd_segmenter=segmenter),
                                 data=DataSelection(max_images=args.max_images, use_cache=False),
                                 diversity=DiversitySampling(samples=args.samples, label_maps=args.diversity_maps),
                                 progress=False)
        row = {"iteration": it, **{k: float(v) for k, v in report.metrics.items()}}
        logged = [i for i in hours if i <= it]
        if logged and it - max(logged) <= 100:  # the last logged iteration at or before it
            row["hours"] = round(hours[max(logged)], 4)
        per_class = report.info.get("per_class_iou")
        if per_class:
            row["per_class_iou"] = per_class
        if report.info.get("periodicity_by_class"):
            row["periodicity_by_class"] = {c: v["excess_db"] for c, v in report.info["periodicity_by_class"].items()}
        rows.append(row)
        print(json.dumps({"run": str(run), **row}), flush=True)
    return rows


SEED_SUFFIX = re.compile(r"(.+?)[_-]s(?:eed)?\d+")
FIGURES = ("miou_ratio", "spread_ratio", "fsd", "miou", "spread", "hours")


def seed_bands(curves: Dict[str, List[Dict]]) -> Dict[str, List[Dict]]:
    """Runs named GROUP_s<seed> -> per group and iteration (that every seed has): the mean of each
    figure, and its `_min`, `_max` and `_std` (sample std) over the seeds."""
    groups: Dict[str, List[List[Dict]]] = {}
    for name, rows in curves.items():
        m = SEED_SUFFIX.fullmatch(name)
        groups.setdefault(m.group(1) if m else name, []).append(rows)
    out = {}
    for group, runs in groups.items():
        common = sorted(set.intersection(*({r["iteration"] for r in rows} for rows in runs)))
        stats = []
        for it in common:
            picked = [next(r for r in rows if r["iteration"] == it) for rows in runs]
            row = {"iteration": it, "seeds": len(picked)}
            for key in FIGURES:
                vals = [r[key] for r in picked if key in r]
                if len(vals) == len(picked):
                    mean = sum(vals) / len(vals)
                    std = (sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5 if len(vals) > 1 else 0.0
                    row.update({key: mean, f"{key}_min": min(vals), f"{key}_max": max(vals), f"{key}_std": std})
            stats.append(row)
        out[group] = stats
    return out


def scaled(curves: Dict[str, List[Dict]], scale: Dict[str, str]) -> Dict[str, List[Dict]]:
    """The curves named in `scale` drawn at K times their iterations, relabelled "NAME (xK)"."""
    out = {}
    for name, rows in curves.items():
        if name in scale:
            k = float(scale[name])
            name, rows = f"{name} (x{scale[name]})", [dict(r, iteration=r["iteration"] * k) for r in rows]
        out[name] = rows
    return out


COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207)]


def plot(curves: Dict[str, List[Dict]], out: Path, panels, targets, along: str = "iteration") -> None:
    """A small line plot per metric, runs as coloured lines (PIL only); `along`: iteration or hours.
    Rows with `<key>_min` / `<key>_max` (`seed_bands`) get a shaded band between them."""
    from PIL import Image, ImageDraw

    curves = {k: [r for r in rows if along in r] for k, rows in curves.items()}
    pw, ph, margin = 360, 240, 48
    img = Image.new("RGB", (pw * len(panels), ph + 40 + 18 * len(curves)), "white")
    draw = ImageDraw.Draw(img, "RGBA")  # RGBA: the seed bands are translucent
    xmax = max((r[along] for rows in curves.values() for r in rows), default=1) or 1
    for k, (key, title) in enumerate(panels):
        x0, y0, x1, y1 = k * pw + margin, 30, (k + 1) * pw - 16, ph - 24
        vals = [r.get(f"{key}_max", r[key]) for rows in curves.values() for r in rows if key in r]
        ymax = max(vals + [targets.get(key, 0), 1e-6]) * 1.1
        ymin = min([0.0] + [r.get(f"{key}_min", r[key]) * 1.1 for rows in curves.values() for r in rows if key in r])
        draw.text((x0, 8), title, fill="black")
        draw.rectangle((x0, y0, x1, y1), outline="black")
        for t in range(5):  # y ticks
            v = ymin + (ymax - ymin) * t / 4
            y = y1 - (y1 - y0) * t / 4
            draw.line((x0 - 4, y, x0, y), fill="black")
            draw.text((k * pw + 4, y - 6), f"{v:.2f}" if ymax < 10 else f"{v:.0f}", fill="black")
        for t in range(5):  # x ticks
            v = xmax * t / 4
            x = x0 + (x1 - x0) * t / 4
            draw.line((x, y1, x, y1 + 4), fill="black")
            draw.text((x - 10, y1 + 6), f"{v:.0f}" if xmax >= 10 else f"{v:.1f}" if xmax >= 1 else f"{v:.2f}",
                      fill="black")
        if key in targets:
            y = y1 - (y1 - y0) * (targets[key] - ymin) / (ymax - ymin)
            for xs in range(int(x0), int(x1), 8):
                draw.line((xs, y, xs + 4, y), fill=(120, 120, 120))

        def pos(r, field=key):
            return (x0 + (x1 - x0) * r[along] / xmax, y1 - (y1 - y0) * (r[field] - ymin) / (ymax - ymin))

        for c, rows in enumerate(curves.values()):
            pts = [pos(r) for r in rows if key in r]
            colour = COLOURS[c % len(COLOURS)]
            band = [r for r in rows if f"{key}_min" in r]
            if len(band) > 1:
                draw.polygon([pos(r, f"{key}_max") for r in band] + [pos(r, f"{key}_min") for r in band[::-1]],
                             fill=colour + (50,))
            if len(pts) > 1:
                draw.line(pts, fill=colour, width=2)
            for x, y in pts:
                draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
    for c, name in enumerate(curves):
        y = ph + 10 + 18 * c
        draw.rectangle((margin, y + 3, margin + 14, y + 11), fill=COLOURS[c % len(COLOURS)])
        draw.text((margin + 20, y), name, fill="black")
    axis = {"hours": "training hours", "iteration": "iteration"}.get(along, along)
    banded = any(k.endswith("_min") for rows in curves.values() for r in rows for k in r)
    note = f"x: {axis}; dashed: target" + ("; bands: seed min-max" if banded else "")
    draw.text((img.width - 10 - int(draw.textlength(note)), ph + 10), note, fill=(90, 90, 90))
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", required=True, type=Path)
    ap.add_argument("--runs", nargs="+", required=True, type=Path, help="run directories (NAME=DIR to label)")
    ap.add_argument("--segmenter", default=None, help="reference segmenter (default: DATA_ROOT/reference_segmenter.pt)")
    ap.add_argument("--out", type=Path, default=Path("quality_curve.png"))
    ap.add_argument("--max-images", type=int, default=None, help="validation images for mIoU / FSD")
    ap.add_argument("--samples", type=int, default=4, help="noises per label map for the spread")
    ap.add_argument("--diversity-maps", type=int, default=50)
    ap.add_argument("--target-miou-ratio", type=float, default=0.8, help="dashed line (toy 0.8, CamVid 0.6)")
    ap.add_argument("--max-iter", type=int, default=None,
                    help="evaluate the checkpoints up to this iteration only (runs of different lengths)")
    ap.add_argument("--untrained", action="store_true",
                    help="add iteration 0: the run's generator at initialisation (the floor)")
    ap.add_argument("--hours", action="store_true",
                    help="also plot against training hours (<out>_hours.png), from each run's log.jsonl")
    ap.add_argument("--bands", action="store_true",
                    help="runs named GROUP_s<seed>: one curve per group, mean with a min-max band over seeds")
    ap.add_argument("--bn-batches", type=int, default=None,
                    help="re-collect each checkpoint's EMA BatchNorm statistics over N+1 training batches "
                         "before scoring (official: 50; default: as saved)")
    ap.add_argument("--iteration-scale", action="append", default=[], metavar="RUN=K",
                    help="draw RUN (or group, with --bands) at K times its iterations, as \"RUN (xK)\": "
                         "a run of K times the batch at equal images seen")
    ap.add_argument("--replot", action="store_true", help="only redraw the plot from <out>.json")
    ap.add_argument("--reuse", action="store_true",
                    help="keep the rows of <out>.json and evaluate only checkpoints it lacks")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    seg = args.segmenter or str(args.data_root / "reference_segmenter.pt")
    data_path = args.out.with_suffix(".json")
    if args.replot:
        curves = json.loads(data_path.read_text())["runs"]
    else:
        curves, paths = {}, {}
        old = json.loads(data_path.read_text())["runs"] if args.reuse and data_path.is_file() else {}
        for spec in args.runs:
            name, _, d = str(spec).partition("=")
            run = Path(d) if d else Path(name)
            key = name if d else run.name
            done = {r["iteration"]: r for r in old.get(key, [])}
            paths[key] = str(run)
            curves[key] = evaluate_run(run, args.data_root, seg, args, done)
        data_path.parent.mkdir(parents=True, exist_ok=True)
        record = {"data_root": str(args.data_root), "segmenter": seg, "run_dirs": paths, "runs": curves,
                  "bn_batches": args.bn_batches}
        if args.bands:
            record["groups"] = seed_bands(curves)
        data_path.write_text(json.dumps(record, indent=1) + "\n")
    panels = [("miou_ratio", "mIoU generated / real"), ("spread_ratio", "diversity / real diversity"),
              ("fsd", "FSD (lower is better)"), ("periodicity", "grid patterns over real, dB"),
              ("periodicity_regions", "grid patterns on class tiles, dB")]
    targets = {"miou_ratio": args.target_miou_ratio, "spread_ratio": 0.5}
    if args.bands:
        curves = seed_bands(curves)
    curves = scaled(curves, dict(x.partition("=")[::2] for x in args.iteration_scale))
    # a figure no curve has (runs scored before the metric existed; seed bands of the main figures
    # only) gets no empty panel
    panels = [(k, t) for k, t in panels if any(k in r for rows in curves.values() for r in rows)]
    plot(curves, args.out, panels, targets)
    written = [args.out, data_path]
    if args.hours:
        hours_png = args.out.with_name(args.out.stem + "_hours.png")
        plot(curves, hours_png, panels, targets, along="hours")
        written.insert(1, hours_png)
    print("wrote " + ", ".join(map(str, written)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
