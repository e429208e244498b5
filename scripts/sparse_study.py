"""Quality against annotation density: gather `oasis evaluate` reports of runs trained at several
densities into one JSON and a plot (docs/sparse.md).

    .venv/bin/python scripts/sparse_study.py --runs 100=RUN_A 50=RUN_B 25=RUN_C 10=RUN_D \
        [--extra "10% + cap 100=RUN_E"] --name toy --out benchmarks/results/sparse/toy_density

Each run directory holds ``eval.json`` (from `oasis evaluate`) and ``config.yaml``. Writes
``OUT.json`` (per run: density, annotation unit, iterations, the metrics, IoU by frequency
group) and ``OUT.png`` (miou_ratio, FSD, spread_ratio, rare and frequent mIoU against the
percentage of regions kept; the plot code is `quality_curve.plot`).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
PANELS = [("miou_ratio", "mIoU ratio (higher better)"), ("fsd", "FSD (lower better)"),
          ("spread_ratio", "spread ratio"), ("miou_rare", "rare-class mIoU"), ("miou_frequent", "frequent-class mIoU")]


def _plot():
    spec = importlib.util.spec_from_file_location("quality_curve", HERE / "quality_curve.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.plot


def read_run(run: Path) -> dict:
    ev = json.loads((run / "eval.json").read_text())
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    flat = {}
    for k, v in cfg.items():
        flat.update(v if isinstance(v, dict) else {k: v})
    groups = ev.get("iou_by_frequency") or {}
    return {"run": str(run), "density": flat.get("annotation_density", 1.0), "unit": flat.get("annotation_unit"),
            "class_weight_cap": flat.get("class_weight_cap"), "iters": flat.get("iters"), "seed": flat.get("seed"),
            "metrics": ev["metrics"], "segmenter_miou_on_real_val": ev.get("segmenter", {}).get("miou_on_real_val"),
            "groups_source": groups.get("source") if isinstance(groups, dict) else groups,
            "iou_by_frequency": {g: {"miou": v["miou"], "classes": sorted(v["scored"])}
                                 for g, v in (groups.get("groups") or {}).items()} if isinstance(groups, dict) else {}}


X = "% of the regions kept"


def rows_seed(rows, line):
    seeds = {r["seed"] for r in rows if r["line"] == line}
    return ",".join(str(x) for x in sorted(seeds))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", required=True,
                    help="PERCENT=RUN_DIR; a percentage given again is another seed (its own line)")
    ap.add_argument("--extra", nargs="*", default=[], help="LABEL=RUN_DIR: single points of other settings")
    ap.add_argument("--name", default="toy")
    ap.add_argument("--out", required=True, type=Path, help="output path without suffix")
    args = ap.parse_args()
    rows = []
    for spec in args.runs:
        pct, run = spec.split("=", 1)
        r = read_run(Path(run))
        r["percent"] = float(pct)
        rows.append(r)
    seen: dict = {}
    for r in rows:  # the k-th run of a percentage is seed line k
        r["line"] = seen.get(r["percent"], 0)
        seen[r["percent"]] = r["line"] + 1
    rows.sort(key=lambda r: (r["line"], r["percent"]))
    extras = {}
    for spec in args.extra:
        label, run = spec.rsplit("=", 1)
        r = read_run(Path(run))
        r["percent"] = 100 * r["density"]
        extras[label] = r
    summary = {}
    for pct in sorted(seen):
        same = [r["metrics"] for r in rows if r["percent"] == pct]
        summary[str(pct)] = {k: {"mean": sum(m[k] for m in same) / len(same), "values": [m[k] for m in same]}
                             for k, _ in PANELS if all(k in m for m in same)}
    out = {"dataset": args.name, "x": X, "by_percent": summary, "runs": rows, "extra": extras}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(out, indent=1) + "\n")
    curves = {}
    for line in range(max(seen.values())):
        curves[f"{args.name}, run {line + 1} (seed {rows_seed(rows, line)})"] = [
            {X: r["percent"], **r["metrics"]} for r in rows if r["line"] == line]
    for label, r in extras.items():
        curves[label] = [{X: r["percent"], **r["metrics"]}]
    _plot()(curves, args.out.with_suffix(".png"), PANELS, {}, along=X)
    for r in rows + list(extras.values()):
        m = r["metrics"]
        print(f"{r['percent']:5.0f}% cap={r['class_weight_cap']}: " + ", ".join(f"{k} {m[k]:.3f}" for k, _ in PANELS
                                                                                if k in m))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
