"""`oasis evaluate`: FID, mIoU, diversity (LPIPS, MS-SSIM) and the offline FSD of a checkpoint."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from .common import CHECKPOINT_HELP, SEED, number

BENCHMARK_DEFAULT = "fid,miou,lpips,msssim"
DATA_DEFINED_DEFAULT = "fsd,miou,lpips,msssim,spread"


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="compute FID, mIoU, LPIPS/MS-SSIM diversity (and FSD) of a checkpoint",
        description="Evaluate a checkpoint's EMA generator (eval mode) on the validation split at its own "
                    "resolution, one fake per label map with a fresh z per image. FID uses pytorch-fid's "
                    "InceptionV3 weights; mIoU the paper's segmenter for the dataset (DRN-D-105, "
                    "UperNet-ResNet101, DeepLabV2-ResNet101) or --segmenter; FSD (Fréchet Segmenter "
                    "Distance, offline, not FID) the reference segmenter of `oasis segmenter train`. "
                    "Prints a table and writes JSON. See docs/evaluation.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", required=True, metavar="CKPT_OR_NAME", help=CHECKPOINT_HELP)
    p.add_argument("--data-root", required=True, help="dataset folder (its validation split is used)")
    p.add_argument("--preset", default=None,
                   help="dataset layout preset (default: the checkpoint's)")
    p.add_argument("--metrics", default=None,
                   help=f"comma-separated: fid, miou, lpips, msssim, spread, fsd, periodicity (default: {BENCHMARK_DEFAULT} for "
                        f"the benchmarks, {DATA_DEFINED_DEFAULT} for custom/toy data; defaults whose "
                        "weights are missing are skipped, explicit ones fail)")
    p.add_argument("--out", required=True, metavar="FILE.json", help="write the results here")
    g = p.add_argument_group("FID")
    g.add_argument("--inception-weights", default=None, metavar="FILE",
                   help="pt_inception-2015-12-05-6726825d.pth (default: cache, else download)")
    g.add_argument("--no-verify", action="store_true",
                   help="accept an Inception file whose checksum differs (numbers then not comparable)")
    g = p.add_argument_group("mIoU")
    g.add_argument("--segmenter", default=None,
                   help="drn | upernet | deeplab | discriminator | FILE (reference segmenter, TorchScript, or an "
                        "original state dict) | DIR (UperNet encoder/decoder files); default: the paper's for "
                        "the dataset, or DATA_ROOT/reference_segmenter.pt")
    g.add_argument("--segmenter-weights", default=None, metavar="FILE",
                   help="weights for --segmenter drn/upernet/deeplab (default: cache, else download)")
    g.add_argument("--class-map", default=None, metavar="FILE.json",
                   help="TorchScript segmenter: model id -> segmenter class ({\"1\": 0, ...} or a list)")
    g.add_argument("--segmenter-input", default="minus1_1", choices=["minus1_1", "0_1", "imagenet", "0_255"],
                   help="TorchScript segmenter: input convention")
    g.add_argument("--segmenter-size", default=None, metavar="HxW",
                   help="resize fakes to HxW before segmenting (scores stay at the generated resolution)")
    g.add_argument("--segmenter-scales", default=None, metavar="S1,S2,...",
                   help="multi-scale segmentation with these short sides, probabilities averaged at the generated "
                        "resolution (CSAIL's UperNet eval uses 300,375,450,525,600)")
    g.add_argument("--fsd-segmenter", default=None, metavar="FILE",
                   help="reference segmenter for FSD (default: --segmenter if it is one, or "
                        "DATA_ROOT/reference_segmenter.pt)")
    g.add_argument("--frequency-groups", default="auto", choices=["auto", "pixels", "images", "none"],
                   help="also report mIoU of the rare / common / frequent classes: the dataset's groups (LVIS) "
                        "when it has them (auto), else thirds of the classes by training pixel or image counts")
    g.add_argument("--annotation-density", type=number(float, 0, 1, lo_open=True), default=None, metavar="D",
                   help="thin the evaluated label maps as training does (annotation_density, annotation_unit "
                        "of the checkpoint): the generator gets the sparse maps, mIoU scores the labelled "
                        "pixels only (default: the maps as they are)")
    g = p.add_argument_group("diversity")
    g.add_argument("--samples", type=number(int, 1, 1000), default=10, metavar="K",
                   help="images per label map")
    g.add_argument("--diversity-maps", type=number(int, 0, 10**6), default=50, metavar="N",
                   help="label maps used for diversity (0: all)")
    g.add_argument("--lpips-net", default="alex", choices=["alex", "vgg", "squeeze"])
    g.add_argument("--lpips-backbone", default=None, metavar="FILE",
                   help="torchvision ImageNet weights of the LPIPS backbone (e.g. alexnet-owt-7be5be79.pth)")
    g.add_argument("--lpips-weights", default=None, metavar="FILE",
                   help="LPIPS linear weights (official lpips/weights/v0.1/<net>.pth)")
    g = p.add_argument_group("run")
    g.add_argument("--split", default="val", help="dataset split")
    g.add_argument("--max-images", type=number(int, 1, 10**9), default=None, metavar="N",
                   help="use the first N images only")
    g.add_argument("--batch-size", type=number(int, 1, 4096), default=16)
    g.add_argument("--seed", type=number(int, *SEED), default=0, help="seed of the noise")
    g.add_argument("--num-workers", type=number(int, 0, 256), default=2, help="data loading processes")
    g.add_argument("--device", default=None, help="cpu | cuda | cuda:K (default: cuda when available)")
    g.add_argument("--cache-dir", default=None, help="where real statistics are cached (default: the weights cache)")
    g.add_argument("--no-cache", action="store_true", help="recompute the real statistics")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _jsonable(x):
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def resolve_eval_config(model_cfg, preset_name, data_root):
    """The checkpoint's config, with another dataset layout when --preset names one."""
    from ..config import PRESETS, ConfigError

    cfg = model_cfg
    if preset_name and preset_name != cfg.preset:
        from ..data import config_for_root

        data_cfg = config_for_root(preset_name, data_root)
        if data_cfg.semantic_nc != cfg.semantic_nc:
            raise ConfigError(f"--preset {preset_name}: the data has {data_cfg.semantic_nc} label ids, the "
                              f"checkpoint's model {cfg.semantic_nc}")
        cfg = cfg.replace(preset=preset_name, dataset=PRESETS[preset_name]["dataset"],
                          dontcare_label=data_cfg.dontcare_label,
                          class_names=cfg.class_names or data_cfg.class_names)
    return cfg


def run(args: argparse.Namespace) -> int:
    import torch

    from .. import __version__
    from ..loading.checkpoint import atomic_write
    from ..loading.pretrained import from_pretrained
    from ..config import DATA_DEFINED_PRESETS, ConfigError
    from ..metrics import (DataSelection, DiversitySampling, InceptionOptions, LPIPSOptions, Segmentation,
                           evaluate_report, parse_metrics)

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = from_pretrained(args.checkpoint, device=device)
    cfg = resolve_eval_config(model.config, args.preset, args.data_root)
    explicit = args.metrics is not None
    metrics = parse_metrics(args.metrics if explicit else
                            (DATA_DEFINED_DEFAULT if cfg.preset in DATA_DEFINED_PRESETS else BENCHMARK_DEFAULT))
    size = None
    if args.segmenter_size:
        try:
            h, w = (int(v) for v in args.segmenter_size.lower().split("x"))
            size = (h, w)
        except ValueError:
            raise ConfigError(f"--segmenter-size expects HxW, got {args.segmenter_size!r}") from None
    scales = None
    if args.segmenter_scales:
        try:
            scales = [int(v) for v in args.segmenter_scales.split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"--segmenter-scales expects integers, got {args.segmenter_scales!r}") from None
    dataset = None
    if args.annotation_density is not None and args.annotation_density < 1:
        from ..data import build_dataset

        cfg = cfg.replace(annotation_density=args.annotation_density)
        dataset = build_dataset(cfg, args.data_root, split=args.split)
        dataset.thin = True
    report = evaluate_report(
        model, cfg, args.data_root, metrics, device=device, seed=args.seed, progress=not args.no_progress,
        on_missing="raise" if explicit else "skip",
        data=DataSelection(split=args.split, dataset=dataset, max_images=args.max_images, batch_size=args.batch_size,
                           num_workers=args.num_workers, cache_dir=args.cache_dir, use_cache=not args.no_cache),
        segmentation=Segmentation(args.segmenter, weights=args.segmenter_weights, class_map=args.class_map,
                                  input_range=args.segmenter_input, input_size=size, scales=scales,
                                  fsd_segmenter=args.fsd_segmenter, frequency_groups=args.frequency_groups),
        inception=InceptionOptions(weights=args.inception_weights, verify=not args.no_verify),
        lpips=LPIPSOptions(net=args.lpips_net, backbone=args.lpips_backbone, weights=args.lpips_weights),
        diversity=DiversitySampling(samples=args.samples, label_maps=args.diversity_maps))
    out = {"checkpoint": str(Path(args.checkpoint).resolve()), "data_root": str(Path(args.data_root).resolve()),
           "preset": cfg.preset, "annotation_density": args.annotation_density or 1.0, "oasisgan": __version__,
           **report.to_dict()}
    text = json.dumps(_jsonable(out), indent=2) + "\n"
    path = Path(args.out)
    atomic_write(path, lambda f: f.write(text), text=True)
    print(f"evaluation of {args.checkpoint} on {report.info.get('num_images')} {args.split} images "
          f"({cfg.height}x{cfg.width}, preset {cfg.preset})")
    print(report.format_table())
    if "segmenter" in report.info and report.info["segmenter"].get("miou_on_real_val") is not None:
        print(f"(segmenter mIoU on real validation images: {report.info['segmenter']['miou_on_real_val']:.4f})")
    summary = report.quality_summary()
    if summary:
        print(summary)
    if report.info.get("warning"):
        print(f"warning: {report.info['warning']}")
    print(f"results written to {path}")
    return 0
