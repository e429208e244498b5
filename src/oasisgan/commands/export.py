"""`oasis export`: the EMA generator as an ONNX model (checked with onnxruntime), or the model
as a safetensors folder in the Hugging Face Hub convention (`oasisgan.loading.hub`)."""
from __future__ import annotations

import argparse
import json
import sys

from .common import CHECKPOINT_HELP, number


def register(sub) -> None:
    p = sub.add_parser(
        "export", help="export the generator to ONNX (checked with onnxruntime) or to safetensors",
        description="--format safetensors writes OUT as a folder: config.json, model.safetensors (the EMA "
                    "generator), discriminator.safetensors with --discriminator, and a model card "
                    "README.md; `oasisgan.from_pretrained(OUT)` reads it back without pickle. "
                    "--format onnx exports the checkpoint's EMA generator with inputs label (B, N, H, W) one-hot and "
                    "z (B, z_dim, H, W) spatial noise, output image (B, 3, H, W) in [-1, 1]. Batch, "
                    "height and width are dynamic (height and width must be multiples of the model's size "
                    "multiple, 32 for the paper's models) unless --static-size. Before reporting success "
                    "it runs onnxruntime against PyTorch on random input (max abs difference); exits 1 "
                    "on a mismatch.")
    p.add_argument("--checkpoint", required=True, metavar="CKPT_OR_NAME", help=CHECKPOINT_HELP)
    p.add_argument("--format", default="onnx", choices=["onnx", "safetensors"],
                   help="onnx (a file) or safetensors (a folder, Hub convention); default onnx")
    p.add_argument("--out", required=True, metavar="PATH", help="output file (.onnx) or folder (safetensors)")
    p.add_argument("--force", action="store_true",
                   help="replace an existing output: the .onnx file, or in an existing folder only the files "
                        "a safetensors export writes (nothing else there is touched)")
    p.add_argument("--discriminator", action="store_true",
                   help="safetensors: also write the discriminator (discriminator.safetensors)")
    p.add_argument("--height", type=number(int, 1, 8192), default=None,
                   help="trace/check height (default: the model's)")
    p.add_argument("--width", type=number(int, 1, 8192), default=None,
                   help="trace/check width (default: the model's)")
    p.add_argument("--opset", type=number(int, 7, 30), default=17, help="ONNX opset (default 17)")
    p.add_argument("--static-size", action="store_true",
                   help="fix height and width in the graph (only the batch stays dynamic)")
    p.add_argument("--atol", type=number(float, 0, 1e3), default=1e-4,
                   help="largest accepted |onnxruntime - PyTorch| (default 1e-4)")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime check")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..export import ExportError, export_onnx
    from ..outputs import check_output_file
    from ..loading.pretrained import from_pretrained

    if args.format == "safetensors":
        return _run_safetensors(args)
    check_output_file(args.out, args.force)
    model = from_pretrained(args.checkpoint, device="cpu", discriminator=False)
    try:
        rep = export_onnx(model, args.out, height=args.height, width=args.width, opset=args.opset,
                          static_size=args.static_size, check=not args.no_check, atol=args.atol)
    except ExportError as e:
        if "differ by" in str(e):
            print(f"oasis export: error: {e}", file=sys.stderr)
            return 1
        raise
    except ImportError as e:
        print(f"oasis export: error: {e.name or e} is not installed: pip install 'oasisgan[onnx]'",
              file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rep))
        return 0
    cfg = model.config
    size = "dynamic (multiples of %d)" % rep["size_multiple"] if rep["dynamic_size"] else \
        f"fixed {rep['height']}x{rep['width']}"
    print(f"wrote {rep['path']} (opset {rep['opset']})")
    print(f"  inputs  label (B, {cfg.semantic_nc}, H, W) one-hot"
          + (f", z (B, {cfg.z_dim}, H, W) noise" if "z" in rep["inputs"] else ""))
    print(f"  output  image (B, 3, H, W) in [-1, 1]; batch dynamic, H x W {size}")
    if rep["checked"]:
        other = rep["max_abs_diff_other_size"]
        print(f"  onnxruntime vs PyTorch: max abs diff {rep['max_abs_diff']:.2e} at {rep['height']}x{rep['width']}"
              + (f", {other:.2e} at {rep['height'] + rep['size_multiple']}x"
                 f"{rep['width'] + 2 * rep['size_multiple']}" if other is not None else "")
              + f" (limit {args.atol:g}): OK")
    else:
        print("  not checked (--no-check)")
    return 0


def _run_safetensors(args: argparse.Namespace) -> int:
    from ..loading.hub import SAVED_FILES
    from ..outputs import check_output_dir
    from ..loading.pretrained import from_pretrained

    check_output_dir(args.out, SAVED_FILES, args.force)  # before the model is loaded
    model = from_pretrained(args.checkpoint, device="cpu", discriminator=args.discriminator)
    out = model.save_pretrained(args.out, discriminator=args.discriminator, force=args.force)
    files = sorted(p.name for p in out.iterdir())
    if args.json:
        print(json.dumps({"path": str(out), "files": files}))
        return 0
    print(f"wrote {out}: {', '.join(files)}")
    print(f"  load with oasisgan.from_pretrained({str(out)!r}) or --checkpoint {out}")
    return 0
