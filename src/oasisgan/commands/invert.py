"""`oasis invert`: find the noise that makes a checkpoint reproduce a photo (`oasisgan.editing`),
optionally synthesising an edited label map with it."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..limits import MAX_INVERSION_STEPS
from .common import SEED, number


def register(sub) -> None:
    p = sub.add_parser(
        "invert", help="invert a photo into the model's 3D noise (for editing its label map)",
        description="Optimise the noise with which the generator reproduces PHOTO from its label map "
                    "(per-class vectors, then a per-pixel refinement; pixel L1 + LPIPS where its weights "
                    "are local, and a prior that keeps the noise in distribution). Writes the inversion "
                    "(--out, a .pt whose 'z' `oasis synthesize --z-file` reads) and OUT_reconstruction.png; "
                    "with --edit-label also OUT_edited.png.")
    p.add_argument("--checkpoint", required=True, metavar="FILE", help="oasisgan checkpoint (.ckpt)")
    p.add_argument("--image", required=True, metavar="PHOTO", help="the photo (PNG, JPEG, ...)")
    p.add_argument("--label", required=True, metavar="PNG",
                   help="its label map (dataset ids or a colour PNG in the model's palette), same size")
    p.add_argument("--out", required=True, metavar="Z.pt", help="where to write the inversion (.pt)")
    p.add_argument("--steps", type=number(int, 0, MAX_INVERSION_STEPS), default=200,
                   help="optimisation steps in all (default 200)")
    p.add_argument("--stages", default="class,spatial",
                   help="comma-separated stages from global, class, spatial (default class,spatial)")
    p.add_argument("--seed", type=number(int, *SEED), default=0,
                   help="seed of the starting noise (default 0)")
    p.add_argument("--size", default=None, metavar="HxW",
                   help="work at this size (default: the model's resolution); photo bicubic, label nearest")
    p.add_argument("--lr", type=number(float, 0, 10, lo_open=True), default=0.1,
                   help="Adam learning rate (default 0.1; half in the spatial stage)")
    p.add_argument("--prior-weight", type=number(float, 0, 1e6), default=0.01,
                   help="weight of the in-distribution prior on the noise (default 0.01; 0: off)")
    p.add_argument("--d-weight", type=number(float, 0, 1e6), default=0.0,
                   help="weight of the discriminator feature loss (default 0: off)")
    p.add_argument("--lpips-backbone", default=None, metavar="FILE",
                   help="torchvision alexnet-owt-7be5be79.pth (default: the cache; without it no LPIPS)")
    p.add_argument("--lpips-weights", default=None, metavar="FILE", help="LPIPS v0.1 alex.pth linear weights")
    p.add_argument("--edit-label", default=None, metavar="PNG",
                   help="an edited label map: write OUT_edited.png, the photo with this label map")
    p.add_argument("--new-noise", choices=("class", "fresh"), default="class",
                   help="noise of repainted regions: the photo's mean noise of the class (default) or fresh")
    p.add_argument("--paste-back", action="store_true",
                   help="with --edit-label: keep the photo's pixels outside the edited region (feathered)")
    p.add_argument("--device", default="auto", help="auto (GPU when available), cpu, cuda, cuda:1 ...")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--force", action="store_true",
                   help="replace existing output files (OUT, OUT_reconstruction.png, OUT_edited.png)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import warnings

    from .. import load
    from ..editing import EditingError, edit, random_psnr, read_pair
    from ..outputs import check_output_file
    from ..synthesis import parse_size, resize_label, to_pil
    from .synthesize import resolve_device

    out = Path(args.out)
    if out.suffix != ".pt":
        raise EditingError(f"{out}: the inversion is written as a .pt file")
    stem = out.with_suffix("")
    outputs = [out, Path(f"{stem}_reconstruction.png")] + ([Path(f"{stem}_edited.png")] if args.edit_label else [])
    for path in outputs:  # before the long inversion: nothing of the user's is replaced unasked
        check_output_file(path, args.force)
    model = load(args.checkpoint, device=resolve_device(args.device))
    size = parse_size(args.size) if args.size else None
    image, label = read_pair(model, args.image, args.label, size)
    edited = None
    if args.edit_label:
        edited = model.read_label(args.edit_label)
        if edited.shape != label.shape:
            edited = resize_label(edited, label.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the notes are printed below
        inv = model.invert(image, label, steps=args.steps, stages=[s.strip() for s in args.stages.split(",")],
                           seed=args.seed, lr=args.lr, d_weight=args.d_weight, prior_weight=args.prior_weight,
                           progress=not args.no_progress,
                           lpips_backbone=args.lpips_backbone, lpips_weights=args.lpips_weights,
                           image_name=args.image, label_name=args.label)
    out.parent.mkdir(parents=True, exist_ok=True)
    inv.save(out)
    files = [str(out), f"{stem}_reconstruction.png"]
    to_pil(inv.reconstruction)[0].save(files[1])
    if edited is not None:
        e = edit(model, inv, edited, new_noise=args.new_noise, seed=args.seed, paste_back=args.paste_back)
        files.append(f"{stem}_edited.png")
        to_pil(e.result)[0].save(files[-1])
    summary = {"psnr": round(inv.psnr, 3), "psnr_random_noise": round(random_psnr(model, image, label, args.seed), 3),
               "lpips": inv.lpips, "seconds": round(inv.seconds, 2), "steps": args.steps,
               "stages": list(inv.stages), "notes": inv.notes, "files": files}
    if args.json:
        print(json.dumps(summary))
    else:
        for note in inv.notes:
            print(f"note: {note}", file=sys.stderr)
        lp = f", LPIPS {inv.lpips:.4f}" if inv.lpips is not None else ""
        print(f"inverted {args.image}: PSNR {inv.psnr:.2f} dB (random noise {summary['psnr_random_noise']:.2f} dB)"
              f"{lp} in {inv.seconds:.1f} s -> {', '.join(files)}")
    return 0
