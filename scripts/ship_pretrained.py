#!/usr/bin/env python
"""Turn a training run into a model that ships inside the package (`oasisgan/zoo/NAME/`).

    python scripts/ship_pretrained.py --checkpoint /work/runs/camvid/checkpoints/latest.ckpt \\
        --name camvid --out src/oasisgan/zoo/camvid --eval benchmarks/results/camvid_eval.json \\
        --curve docs/images/camvid_curve.json --segmenter /work/runs/camvid_refseg.pt

Writes a `save_pretrained` folder (config.json with the palette and class names, the EMA
generator and the discriminator as safetensors, weights of more than 4096 values stored as
float16 to halve the size; BatchNorm statistics and spectral-norm vectors stay float32), the
reference segmenter that measured its figures (`reference_segmenter.pt`, as it was), and a model
card (README.md) with the recipe, the training length and the figures of `--eval` (an
`oasis evaluate --out` report) and `--curve` (scripts/quality_curve.py's JSON).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

RECIPE_FIELDS = ("crop_size", "aspect_ratio", "load_size", "preprocess_mode", "channels_G", "channels_D",
                 "num_res_blocks", "z_dim", "spade_hidden", "sn_init_gain", "batch_size", "lr_g", "lr_d",
                 "beta1", "beta2", "lambda_labelmix", "ema_decay", "bn_stats_batches", "amp", "seed")


def half_large(path: Path, min_numel: int = 4096) -> None:
    """Store the large floating tensors of a safetensors file as float16 (loading casts them back)."""
    from safetensors.torch import load_file, save_file

    state = load_file(str(path))
    out = {k: v.half() if v.is_floating_point() and v.numel() > min_numel else v for k, v in state.items()}
    save_file(out, str(path), metadata={"format": "pt", "oasisgan": "float16 storage of weights"})


def card(name: str, cfg, meta: dict, run_cfg: dict, report: dict, curve: dict, seg_info: dict) -> str:
    m = report.get("metrics", {})
    info = report.get("info", {})
    lines = [f"# oasisgan `{name}`: OASIS trained on CamVid street scenes", "",
             "An OASIS generator (Sushko et al., ICLR 2021: SPADE generator with 3D noise, U-Net "
             "segmentation discriminator with N+1 classes, class-balanced adversarial loss, LabelMix; "
             "no perceptual loss) trained with oasisgan on the 367 CamVid training photos, at a size "
             "a 2-core CPU can train. It ships inside the `oasisgan` package: no download.", "",
             "```python", "import oasisgan", f"model = oasisgan.from_pretrained({name!r})",
             "images = model.synthesize(label_map, seed=0)  # (H, W) CamVid ids -> (1, 3, 96, 128) in [-1, 1]",
             "```", "",
             "```bash", f"oasis synthesize --checkpoint {name} --examples --out out/{name} --samples 3",
             f"oasis synthesize --checkpoint {name} --labels CamVid/valannot --out out/{name}_val",
             f"oasis app --checkpoint {name}", "```", "",
             "## Model", "",
             "| | |", "|---|---|",
             f"| classes | {cfg.semantic_nc}: {', '.join(cfg.class_names)} (id {cfg.dontcare_label} = don't care) |",
             f"| size | {cfg.height} x {cfg.width} (H x W), 4:3 like the photos |",
             f"| generator | EMA weights, channels_G {cfg.channels_G}, {cfg.num_res_blocks} blocks, z_dim "
             f"{cfg.z_dim}, SPADE hidden {cfg.spade_hidden} |",
             f"| discriminator | channels_D {cfg.channels_D}, {cfg.num_res_blocks} down + up blocks |",
             "| storage | float16 weights (loaded as float32) |",
             f"| training | {meta.get('iteration')} iterations of batch {cfg.batch_size}"
             + (f", {curve['hours']:.1f} hours on one CPU thread" if curve.get("hours") else "") + " |", "",
             "## Recipe (`--preset camvid`)", "",
             "```bash",
             "oasis train --preset camvid --data-root CamVid --out runs/camvid   # resumable: add --resume",
             "```", "",
             "| field | value |", "|---|---|"]
    lines += [f"| {k} | {run_cfg.get(k)} |" for k in RECIPE_FIELDS if k in run_cfg]
    lines += ["", "Losses, LabelMix, the 3D noise and the training step are the paper's; the widths, "
              "size, batch, learning rates and `sn_init_gain` are the CPU recipe of docs/quality.md.", ""]
    if m:
        lines += ["## Figures (validation split, 101 photos)", "",
                  f"Measured with oasisgan's evaluation under a reference U-Net segmenter trained on the real "
                  f"CamVid training photos at the same size (`reference_segmenter.pt` here; real-photo mIoU "
                  f"{seg_info.get('val_miou', float('nan')):.3f}).", "",
                  "| figure | value |", "|---|---|"]
        for key, label in (("miou", "mIoU of generated images"), ("miou_ratio", "mIoU generated / real"),
                           ("accuracy", "pixel accuracy of generated images"), ("fsd", "FSD (segmenter features)"),
                           ("spread", "spread between noises (0-255)"), ("spread_real", "spread between layout twins"),
                           ("spread_ratio", "spread ratio (same pixels)")):
            if key in m:
                lines.append(f"| {label} | {m[key]:.3f} |")
        per_class = report.get("per_class_iou") or info.get("per_class_iou") or {}
        floor = curve.get("untrained_per_class_iou") or {}
        if per_class:
            lines += ["", "| class | IoU | untrained generator |", "|---|---|---|"]
            for cname, v in per_class.items():
                f = floor.get(cname)
                lines.append(f"| {cname} | {v:.3f} | {'' if f is None else f'{f:.3f}'} |")
        lines += ["", "Untrained generator: the same architecture at initialisation (the run's seed), BatchNorm "
                  "statistics collected as for a checkpoint: the floor a class's IoU must clear.", ""]
    lines += ["## Licence", "",
              "The weights were trained on CamVid (Brostow et al.; the SegNet release), which is licensed "
              "CC BY-NC 4.0: **the weights are for non-commercial research use.** oasisgan's code is MIT "
              "(LICENSE). The OASIS method: Sushko, Schönfeld, Zhang, Gall, Schiele, Khoreva, ICLR 2021.", ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, type=Path)
    ap.add_argument("--name", required=True)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--eval", type=Path, help="`oasis evaluate --out` report of this checkpoint")
    ap.add_argument("--curve", type=Path, help="scripts/quality_curve.py JSON of the run")
    ap.add_argument("--segmenter", type=Path, help="the reference segmenter of the figures")
    args = ap.parse_args()

    import yaml

    from oasisgan import load
    model = load(args.checkpoint, discriminator=True)
    run_cfg = yaml.safe_load((args.checkpoint.parent.parent / "config.yaml").read_text()) \
        if (args.checkpoint.parent.parent / "config.yaml").is_file() else {}
    report = json.loads(args.eval.read_text()) if args.eval else {}
    curve: dict = {}
    if args.curve:
        rows = next(iter(json.loads(args.curve.read_text())["runs"].values()))
        it = int(model.meta.get("iteration") or 0)
        at = [r for r in rows if r["iteration"] <= it and "hours" in r]
        curve["hours"] = at[-1]["hours"] if at else None
        zero = [r for r in rows if r["iteration"] == 0]
        curve["untrained_per_class_iou"] = zero[0].get("per_class_iou") if zero else None
    # force: an earlier ship is replaced file by file; nothing else in the folder is touched
    model.save_pretrained(args.out, discriminator=True, card={"name": args.name}, force=True)
    for f in ("model.safetensors", "discriminator.safetensors"):
        if (args.out / f).is_file():
            half_large(args.out / f)
    seg_info: dict = {}
    if args.segmenter:
        seg = torch.load(args.segmenter, map_location="cpu", weights_only=True)
        seg_info = {k: v for k, v in seg.items() if isinstance(v, (int, float, str))}
        shutil.copyfile(args.segmenter, args.out / "reference_segmenter.pt")  # float32: the figures' own
    (args.out / "README.md").write_text(card(args.name, model.config, model.meta, run_cfg, report, curve, seg_info))
    total = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"wrote {args.out} ({total / 2**20:.1f} MiB): {', '.join(sorted(p.name for p in args.out.iterdir()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
