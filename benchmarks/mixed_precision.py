"""bf16 autocast against float32 over seeds: the summary table of docs/quality.md ("Mixed precision").

    # runs NAME_s<seed> (same seeds in each precision), then their quality curves:
    for s in 1 2 3; do
      oasis train --preset toy --data-root data/toy --out runs/amp/fp32_s$s --seed $s --ckpt-every 300
      oasis train --preset toy --data-root data/toy --out runs/amp/bf16_s$s --seed $s --ckpt-every 300 --set amp=bf16
    done
    python scripts/quality_curve.py --data-root data/toy --bands --hours --max-images 200 \\
        --runs fp32_s1=runs/amp/fp32_s1 ... --out benchmarks/results/mixed_precision/toy_curve.png
    python benchmarks/mixed_precision.py --curve benchmarks/results/mixed_precision/toy_curve.json

Reads the curve JSON (its ``run_dirs`` and their ``log.jsonl``) and writes ``<curve>_summary.json``:

- speed: iterations per second of each run, the median of its logged windows (robust to other
  jobs' bursts on a shared machine) and the mean (iterations / summed window time);
- quality at equal iterations: each group's mean and seed std at every checkpoint;
- quality at equal wall time: at each checkpoint time of the faster group, the slower group's
  figures interpolated linearly in training hours between its checkpoints;
- stability: iterations reached, non-finite loss records (a non-finite loss stops a run; only
  ``amp: fp16`` skips steps, counted in ``amp/skipped_steps_*``) and the D/G balance, the mean of
  each loss term over the last `--last` iterations.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from quality_curve import SEED_SUFFIX, seed_bands  # noqa: E402

FIGS = ("miou_ratio", "spread_ratio", "fsd")


def run_stats(run: Path, last: int) -> Dict:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "speed/it_per_s" in r]
    end = max(r["iter"] for r in rows)
    speeds = [r["speed/it_per_s"] for r in rows]
    prev, secs = 0, 0.0
    for r in rows:
        secs, prev = secs + (r["iter"] - prev) / r["speed/it_per_s"], r["iter"]
    tail = [r for r in rows if r["iter"] > end - last]
    losses = sorted({k for r in rows for k in r if k.startswith("loss/")})
    return {"iterations": end, "it_per_s_median": statistics.median(speeds), "it_per_s_mean": end / secs,
            "nonfinite_loss_records": sum(1 for r in rows for k in losses if k in r and not math.isfinite(r[k])),
            "skipped_steps": {k: r[k] for r in rows[-1:] for k in r if k.startswith("amp/skipped_steps")},
            "last_losses": {k[5:]: statistics.mean(r[k] for r in tail if k in r) for k in losses}}


def interpolate(rows: List[Dict], hours: float, key: str):
    pts = [(r["hours"], r[key]) for r in rows if "hours" in r and key in r]
    for (h0, v0), (h1, v1) in zip(pts, pts[1:]):
        if h0 <= hours <= h1:
            return v0 + (v1 - v0) * (hours - h0) / (h1 - h0) if h1 > h0 else v1
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--curve", type=Path, required=True, help="scripts/quality_curve.py's JSON of the runs")
    ap.add_argument("--last", type=int, default=300, help="iterations at the end for the loss means")
    args = ap.parse_args()
    data = json.loads(args.curve.read_text())
    curves = data["runs"]
    groups = seed_bands(curves)
    per_run = {name: run_stats(Path(d), args.last) for name, d in data["run_dirs"].items()}
    summary: Dict = {"curve": str(args.curve), "groups": {}}
    for g, rows in groups.items():
        names = [n for n in per_run if (SEED_SUFFIX.fullmatch(n) or [None, n])[1] == g]
        st = [per_run[n] for n in names]
        losses = sorted(st[0]["last_losses"])
        summary["groups"][g] = {
            "runs": {n: per_run[n] for n in names},
            "it_per_s_median": statistics.mean(s["it_per_s_median"] for s in st),
            "it_per_s_mean": statistics.mean(s["it_per_s_mean"] for s in st),
            "last_losses": {k: statistics.mean(s["last_losses"][k] for s in st) for k in losses},
            "last_losses_std": {k: statistics.stdev([s["last_losses"][k] for s in st]) if len(st) > 1 else 0.0
                                for k in losses},
            "at_iterations": [{k: r[k] for k in r if k.split("_")[0] in ("iteration", "seeds", "hours") or
                               any(k.startswith(f) for f in FIGS)} for r in rows]}
    # equal wall time: the slower group interpolated at the faster group's checkpoint times
    names = list(summary["groups"])
    if len(names) == 2:
        fast, slow = sorted(names, key=lambda n: -summary["groups"][n]["it_per_s_median"])
        table = []
        for r in groups[fast]:
            if "hours" not in r or r["iteration"] == 0:
                continue
            row = {"hours": r["hours"], f"{fast}_iteration": r["iteration"]}
            for key in FIGS:
                row[f"{fast}_{key}"] = r.get(key)
                row[f"{slow}_{key}"] = interpolate(groups[slow], r["hours"], key)
            table.append(row)
        summary["equal_wall_time"] = {"faster": fast, "slower": slow, "rows": table}
    out = args.curve.with_name(args.curve.stem + "_summary.json")
    out.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({g: {k: v for k, v in s.items() if k not in ("runs", "at_iterations")}
                      for g, s in summary["groups"].items()}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
