"""Training stability of the precision modes on the toy dataset: the same run (same seed, data
order and noise) in fp32 and in each autocast mode, compared by what they learn.

    python benchmarks/amp_stability.py                     # fp32 vs bf16, 300 iterations, CPU
    python benchmarks/amp_stability.py --modes none,bf16,fp16 --device cuda --iters 2000

Reports per mode: seconds per iteration, non-finite loss records (10-iteration means from the
run's log.jsonl), the mean losses over the last
quarter of the run, the per-class colour error of the EMA generator on the validation label
maps (distance between the mean colour of generated and real pixels per class; lower is
better, an all-grey image scores ~0.49), and the mean absolute difference of its images from
the fp32 run's on the same label maps and noise. Results: benchmarks/results/<name>.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

import oasisgan  # noqa: E402
from oasisgan.data import build_dataset, config_for_root  # noqa: E402
from oasisgan.data.toy import generate_toy  # noqa: E402
from oasisgan.training import train  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def class_colour_error(images: torch.Tensor, reals: torch.Tensor, labels: torch.Tensor, n: int) -> float:
    """Mean over classes present (don't care excluded) of the RGB distance between the mean
    colour of generated and real pixels of that class."""
    errs = []
    for c in range(1, n):
        m = labels == c
        if m.sum() >= 20:
            fake = images.permute(0, 2, 3, 1)[m].mean(0)
            real = reals.permute(0, 2, 3, 1)[m].mean(0)
            errs.append((fake - real).norm().item())
    return sum(errs) / len(errs)


def run_mode(mode: str, root: Path, work: Path, args) -> dict:
    cfg = config_for_root("toy", root, crop_size=args.size, load_size=args.size, iters=args.iters,
                          num_workers=0, freq_print=args.iters, freq_save_latest=args.iters,
                          log_every=10, bn_stats_batches=4, amp=mode)
    t = time.perf_counter()
    res = train(cfg, root, work / mode, device=args.device, progress=False, tensorboard=False)
    seconds = time.perf_counter() - t
    records = [json.loads(line) for line in (work / mode / "log.jsonl").read_text().splitlines()]
    records = [{k[5:]: v for k, v in r.items() if k.startswith("loss/")} for r in records]
    records = [r for r in records if "G" in r]  # the training scalars (10-iteration means)
    if not records:
        raise RuntimeError(f"{work / mode / 'log.jsonl'} holds no loss records")
    tail = records[-max(1, len(records) // 4):]
    keys = [k for k in ("G", "D_fake", "D_real", "LabelMix") if k in tail[0]]
    nonfinite = sum(1 for r in records for k in keys if not math.isfinite(r[k]))
    finite_tail = {k: [r[k] for r in tail if math.isfinite(r[k])] for k in keys}
    model = oasisgan.load(work / mode / "checkpoints/latest.ckpt", device=args.device)
    return {"mode": mode, "status": res.status, "s_per_iter": seconds / args.iters,
            "nonfinite_losses": nonfinite,
            "tail_losses": {k: sum(v) / len(v) if v else float("nan") for k, v in finite_tail.items()},
            "model": model, "cfg": cfg}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modes", default="none,bf16", help="comma list of amp modes; the first is the reference")
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--size", type=int, default=32, help="training crop size (toy images are 64x64)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--name", default="amp_stability_cpu")
    p.add_argument("--no-save", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        root = generate_toy(Path(tmp) / "toy", size=64, n_train=64, n_val=16, seed=0, workers=1)
        runs = [run_mode(m, root, Path(tmp), args) for m in modes]
        cfg = runs[0]["cfg"]
        val = build_dataset(cfg, root, "val")
        items = [val[i] for i in range(len(val))]
        labels = torch.stack([it["label"] for it in items])
        reals = torch.stack([it["image"] for it in items])
        ids = labels.long().to(args.device)
        z = torch.randn(len(items), cfg.z_dim, generator=torch.Generator().manual_seed(1)).to(args.device)
        images = []
        for r in runs:
            with torch.no_grad():
                images.append(r["model"].generator(ids, z).float().cpu())
    rows = []
    for r, img in zip(runs, images):
        rows.append({k: v for k, v in r.items() if k not in ("model", "cfg")} | {
            "colour_error": class_colour_error(img, reals, labels, cfg.semantic_nc),
            "mean_abs_diff_vs_" + modes[0]: float((img - images[0]).abs().mean())})
    lines = [f"Toy dataset, {args.iters} iterations at {args.size}x{args.size}, device {args.device}, "
             f"same seed for every mode.", "",
             "| mode | s/iter | non-finite losses | G | D_fake | D_real | LabelMix | colour error | "
             f"mean abs diff vs {modes[0]} |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t = r["tail_losses"]
        lines.append(f"| {r['mode']} | {r['s_per_iter']:.3f} | {r['nonfinite_losses']} | "
                     + " | ".join(f"{t.get(k, float('nan')):.3f}" for k in ("G", "D_fake", "D_real", "LabelMix"))
                     + f" | {r['colour_error']:.3f} | {r['mean_abs_diff_vs_' + modes[0]]:.3f} |")
    text = "\n".join(lines)
    print(text)
    if not args.no_save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{args.name}.json").write_text(json.dumps(rows, indent=1))
        (RESULTS / f"{args.name}.md").write_text(text + "\n")
    return 0 if all(r["status"] == "finished" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
