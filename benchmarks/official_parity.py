"""The official training against oasisgan's over seeds: the summary of docs/quality.md
("Training parity with the official code", "Over seeds").

    # the official step at the toy recipe (scripts/official_quality_run.py) and ours, seeds 1-3,
    # then both sets of checkpoints scored the same way:
    python scripts/quality_curve.py --data-root data/toy --bands --max-images 200 --max-iter 900 \\
        --runs official_s1=runs/official_s1 ... oasisgan_s1=runs/ours_s1 ... \\
        --out benchmarks/results/parity/toy_quality.png
    python benchmarks/official_parity.py --curve benchmarks/results/parity/toy_quality.json \\
        --timing oasisgan=runs/t_s1 --timing official=runs/official_s1@last12,runs/official_s2@first12

    # the toy recipe's deviations, each back to the paper's value, against the preset (the batch-32
    # runs at equal images seen):
    python benchmarks/official_parity.py --curve benchmarks/results/toy_recipe/curve.json \\
        --reference base --iteration-scale batch=8 --loss-window 0 1200

Writes ``<curve>_summary.json``: for each group and checkpoint the per-seed figures, their mean,
sample std, minimum and maximum (mIoU ratio, spread ratio, FSD); for the two groups, or for each
group against `--reference`, the difference of the means, the Welch t, an exact permutation p and
whether the seed ranges overlap; the D/G balance (mean G and D loss of each run over
`--loss-window` iterations, from the curve's run folders' ``log.jsonl``); and the speed of each
`--timing` group (runs measured side by side: the median of each run's logged windows, as
benchmarks/mixed_precision.py's `run_stats`, or of its first or last N windows, the stretch
logged next to the other side's run on a shared machine), with the ratio oasisgan<X> over
official<X> for each pair of groups.
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mixed_precision import run_stats  # noqa: E402
from quality_curve import SEED_SUFFIX, seed_bands  # noqa: E402

FIGS = ("miou_ratio", "spread_ratio", "fsd")


def group_of(name: str) -> str:
    m = SEED_SUFFIX.fullmatch(name)
    return m.group(1) if m else name


def loss_means(run: Path, lo: int, hi: int) -> Dict[str, float]:
    """Mean logged G and D loss over iterations (lo, hi]."""
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if lo < r.get("iter", -1) <= hi]
    return {k: statistics.mean(r[f"loss/{k}"] for r in rows) for k in ("G", "D")} if rows else {}


def mean_or_none(values: List[float]):
    """The mean, or None where no run logged the window (a shorter run)."""
    return statistics.mean(values) if values else None


def window_speed(spec: str) -> Dict:
    """`DIR` or `DIR@firstN` / `DIR@lastN`: the median iterations per second of the run's logged
    windows (run_stats), or of its first or last N windows (the stretch next to another run)."""
    d, _, part = spec.partition("@")
    if not part:
        st = run_stats(Path(d), 10 ** 9)
        return {k: st[k] for k in ("iterations", "it_per_s_median", "it_per_s_mean")}
    rows = [json.loads(line) for line in (Path(d) / "log.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "speed/it_per_s" in r]
    n = int(part.lstrip("firstla"))
    rows = rows[:n] if part.startswith("first") else rows[-n:]
    return {"iterations": [rows[0]["iter"], rows[-1]["iter"]],
            "it_per_s_median": statistics.median(r["speed/it_per_s"] for r in rows)}


def permutation_p(a: List[float], b: List[float]) -> float:
    """Two-sided exact permutation test of the difference of means: the share of all splits of
    a + b into groups of their sizes whose difference is at least as large (3 seeds against 3:
    at best 0.1; against 6: 0.024)."""
    pooled, n = a + b, len(a)
    observed = abs(statistics.mean(a) - statistics.mean(b))
    splits = list(itertools.combinations(range(len(pooled)), n))
    hits = 0
    for idx in splits:
        x = [pooled[i] for i in idx]
        y = [v for i, v in enumerate(pooled) if i not in idx]
        hits += abs(statistics.mean(x) - statistics.mean(y)) >= observed - 1e-12
    return hits / len(splits)


def compare(ga: Dict, gb: Dict, a: str, b: str, scale: float = 1.0) -> List[Dict]:
    """Group `a` against `b` at each iteration both have (`a`'s iterations times `scale`: a run of
    `scale` times the batch is compared at equal images seen): the difference of the means, the
    Welch t, the exact permutation p and whether the seed ranges overlap."""
    table = []
    for ra in ga["at_iterations"]:
        it = ra["iteration"] * scale
        rb = next((r for r in gb["at_iterations"] if r["iteration"] == it), None)
        if rb is None:
            continue
        row = {"iteration": ra["iteration"], f"iteration_of_{b}": rb["iteration"]}
        for f in FIGS:
            xa, xb = list(ra[f]["per_seed"].values()), list(rb[f]["per_seed"].values())
            diff = ra[f]["mean"] - rb[f]["mean"]
            se = (ra[f]["std"] ** 2 / len(xa) + rb[f]["std"] ** 2 / len(xb)) ** 0.5
            row[f"{f}_{a}_minus_{b}"] = diff
            row[f"{f}_welch_t"] = diff / se if se > 0 else None
            row[f"{f}_permutation_p"] = permutation_p(xa, xb)
            row[f"{f}_ranges_overlap"] = ra[f]["min"] <= rb[f]["max"] and rb[f]["min"] <= ra[f]["max"]
        table.append(row)
    return table


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--curve", type=Path, required=True, help="scripts/quality_curve.py's JSON (with --bands)")
    ap.add_argument("--timing", action="append", default=[], metavar="GROUP=DIR[@firstN|@lastN],...",
                    help="runs timed side by side, by group; oasisgan<X> is compared with official<X>")
    ap.add_argument("--reference", default=None, metavar="GROUP",
                    help="compare every other group with GROUP (default: the two groups, when there are two)")
    ap.add_argument("--iteration-scale", action="append", default=[], metavar="GROUP=K",
                    help="compare GROUP's iteration i with the reference's K*i (K times the batch: equal images)")
    ap.add_argument("--loss-window", type=int, nargs=2, default=(600, 900), metavar=("FROM", "TO"))
    args = ap.parse_args()
    data = json.loads(args.curve.read_text())
    curves, bands = data["runs"], seed_bands(data["runs"])
    summary: Dict = {"curve": str(args.curve), "groups": {}}
    for group, rows in bands.items():
        names = [n for n in curves if group_of(n) == group]
        at: List[Dict] = []
        for r in rows:
            row = {"iteration": r["iteration"], "seeds": r["seeds"]}
            for f in FIGS:
                row[f] = {"mean": r[f], "std": r[f"{f}_std"], "min": r[f"{f}_min"], "max": r[f"{f}_max"],
                          "per_seed": {n: next(x[f] for x in curves[n] if x["iteration"] == r["iteration"])
                                       for n in names}}
            at.append(row)
        lo, hi = args.loss_window
        losses = {n: loss_means(Path(data["run_dirs"][n]), lo, hi) for n in names}
        summary["groups"][group] = {"runs": names, "at_iterations": at,
                                    f"losses_{lo}_{hi}": losses,
                                    f"losses_{lo}_{hi}_mean": {k: mean_or_none([v[k] for v in losses.values() if v])
                                                               for k in ("G", "D")}}
    groups = list(summary["groups"])
    scale = {g: float(k) for g, _, k in (x.partition("=") for x in args.iteration_scale)}
    if args.reference:
        if args.reference not in groups:
            raise SystemExit(f"{args.curve}: no group {args.reference!r} (groups: {', '.join(groups)})")
        pairs = [(g, args.reference) for g in groups if g != args.reference]
    else:
        pairs = [tuple(groups)] if len(groups) == 2 else []
    summary["comparisons"] = {f"{a}_vs_{b}": compare(summary["groups"][a], summary["groups"][b], a, b, scale.get(a, 1.0))
                              for a, b in pairs}
    if len(pairs) == 1 and not args.reference:
        summary["comparison"] = next(iter(summary["comparisons"].values()))
    speed = {}
    for spec in args.timing:
        group, _, dirs = spec.partition("=")
        runs = {d: window_speed(d) for d in dirs.split(",") if d}
        med = statistics.mean(s["it_per_s_median"] for s in runs.values())
        speed[group] = {"runs": runs, "it_per_s_median": med, "seconds_per_iteration": 1 / med}
    for name in list(speed):  # oasisgan<suffix> against official<suffix>
        if name.startswith("oasisgan") and "official" + name[len("oasisgan"):] in speed:
            other = "official" + name[len("oasisgan"):]
            speed[f"{name}_over_{other}"] = speed[name]["it_per_s_median"] / speed[other]["it_per_s_median"]
    summary["speed"] = speed
    out = args.curve.with_name(args.curve.stem + "_summary.json")
    out.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({"comparisons": summary["comparisons"], "speed": {k: v["it_per_s_median"] if isinstance(v, dict) else v
                                                                           for k, v in speed.items()}}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
