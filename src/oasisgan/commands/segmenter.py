"""`oasis segmenter`: train the reference U-Net segmenter, or score any segmenter on real images."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import SEED, add_command_group, add_preset_args, dataset_config, number


def register(sub) -> None:
    ssub = add_command_group(sub, "segmenter", help="train / score the segmenter used for mIoU and FSD",
                             description="The reference U-Net segmenter gives mIoU and the Fréchet Segmenter "
                                         "Distance on data without a published segmenter (toy, custom data).",
                             dest="segmenter_command", metavar="ACTION")

    t = ssub.add_parser("train", help="train the reference U-Net on the real images of a dataset",
                        description="Trains on the train split (the dataset's crop/flip augmentation), reports "
                                    "its mIoU and pixel accuracy on the real validation images, and saves it. "
                                    "Saved as DATA_ROOT/reference_segmenter.pt by default, where `oasis "
                                    "evaluate` and training's --eval-every find it.",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_preset_args(t, required=True)
    t.add_argument("--data-root", required=True, help="dataset folder")
    t.add_argument("--out", default=None, help="segmenter file (default: DATA_ROOT/reference_segmenter.pt)")
    t.add_argument("--iters", type=number(int, 1, 10**9), default=None,
                   help="training iterations (default: 600 for images of at most 64x64, where it scores "
                        "0.98 mIoU on the toy data in under 3 minutes on 2 CPU cores; else 3000)")
    t.add_argument("--batch-size", type=number(int, 1, 4096), default=16)
    t.add_argument("--lr", type=number(float, 0, 1, lo_open=True), default=1e-3,
                   help="Adam learning rate (cosine decay)")
    t.add_argument("--width", type=number(int, 1, 1024), default=None,
                   help="U-Net base width (default: 16 for small images, else 32)")
    t.add_argument("--depth", type=number(int, 1, 10), default=None,
                   help="U-Net downsamplings, capped by the image size (default: 3 for small images, else 4)")
    t.add_argument("--device", default=None, help="cpu | cuda | cuda:K (default: cuda when available)")
    t.add_argument("--seed", type=number(int, *SEED), default=0)
    t.add_argument("--num-workers", type=number(int, 0, 256), default=0)
    t.add_argument("--val-max-images", type=number(int, 1, 10**9), default=None,
                   help="score on the first N validation images")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--json", action="store_true", help="print one JSON object")
    t.set_defaults(func=run_train)

    s = ssub.add_parser("score", help="mIoU of a segmenter on the real validation images",
                        description="A sanity check of a segmenter (reference, TorchScript, drn/upernet/deeplab, "
                                    "...) before using it for mIoU of generated images.",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_preset_args(s, required=True)
    s.add_argument("--data-root", required=True)
    s.add_argument("--segmenter", default=None, help="as for `oasis evaluate --segmenter`")
    s.add_argument("--segmenter-weights", default=None)
    s.add_argument("--class-map", default=None)
    s.add_argument("--segmenter-input", default="minus1_1", choices=["minus1_1", "0_1", "imagenet", "0_255"])
    s.add_argument("--split", default="val")
    s.add_argument("--max-images", type=number(int, 1, 10**9), default=None)
    s.add_argument("--batch-size", type=number(int, 1, 4096), default=16)
    s.add_argument("--device", default=None)
    s.add_argument("--no-progress", action="store_true")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=run_score)


# Images up to 64x64 (the toy data) get a smaller, shorter-trained U-Net by default.
SMALL_IMAGE_PIXELS = 64 * 64


def run_train(args: argparse.Namespace) -> int:
    from ..metrics import REFERENCE_SEGMENTER_FILENAME
    from ..metrics.segmenters.train import train_reference_segmenter

    cfg = dataset_config(args, args.data_root)
    out = Path(args.out) if args.out else Path(args.data_root) / REFERENCE_SEGMENTER_FILENAME
    small = cfg.height * cfg.width <= SMALL_IMAGE_PIXELS
    res = train_reference_segmenter(cfg, args.data_root, out,
                                    iters=args.iters or (600 if small else 3000), batch_size=args.batch_size,
                                    lr=args.lr, width=args.width or (16 if small else 32),
                                    depth=args.depth or (3 if small else 4), device=args.device,
                                    seed=args.seed, num_workers=args.num_workers, progress=not args.no_progress,
                                    val_max_images=args.val_max_images)
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"reference segmenter ({res['width']}x{res['depth']} U-Net, {res['iters']} iterations, "
          f"{res['seconds']} s) saved to {res['out']}")
    print(f"  real validation images: {res['num_images']}, mIoU {res['miou']:.4f}, "
          f"pixel accuracy {res['accuracy']:.4f}")
    for name, iou in res["per_class_iou"].items():
        print(f"    {name:<20} {iou:.4f}")
    return 0


def run_score(args: argparse.Namespace) -> int:
    import torch

    from ..data import build_dataset
    from ..metrics.segmenters import load_segmenter
    from ..metrics.segmenters.train import score_segmenter

    cfg = dataset_config(args, args.data_root)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    seg = load_segmenter(args.segmenter, cfg, weights=args.segmenter_weights, class_map=args.class_map,
                         input_range=args.segmenter_input, device=device)
    ds = build_dataset(cfg, args.data_root, split=args.split)
    res = score_segmenter(seg, ds, args.batch_size, args.max_images, not args.no_progress, device)
    res["segmenter"] = seg.name
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"{seg.name} on {res['num_images']} real {args.split} images: mIoU {res['miou']:.4f}, "
          f"pixel accuracy {res['accuracy']:.4f}")
    return 0
