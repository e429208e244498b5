"""`oasis synthesize`: images from label maps, with seeds, saved noise, local resampling and
interpolation. The work is done by `oasisgan.synthesis`; this module reads files and writes them.

Outputs for a label file `NAME.png` in `--out`:

    NAME_label.png          the label map in the model's colours
    NAME_sKKK.png / .npy    sample K and the noise that made it (K = 000, 001, ...); sample K of a
                            run with --seed S uses seed S+K, so any sample is reproducible alone
    NAME_grid.png           label | samples
  with --resample-classes / --mask:
    NAME_base.png / .npy    the image before resampling (seed S, or the first noise of --z-file)
    NAME_sKKK.png / .npz    K = 001..: the base noise with new noise (seed S+K) in the region
  with --interpolate N:
    NAME_fKKK.png / .npy    frame K of N, NAME_interp.gif the animation
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List

from .common import CHECKPOINT_HELP, SEED, number

LABEL_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm")


def register(sub) -> None:
    p = sub.add_parser(
        "synthesize", help="generate images from label maps (seeds, saved noise, local resampling, "
                           "interpolation)",
        description="Generate images from one label PNG or a folder of them. Labels are index PNGs in "
                    "the dataset's own ids (the checkpoint's preset maps them, e.g. COCO-Stuff 255 -> "
                    "don't care) or colour PNGs in the model's palette. Writes each image with the noise "
                    "that made it (reusable with --z-file), the colourised label and a grid per label map.")
    p.add_argument("--checkpoint", required=True, metavar="CKPT_OR_NAME", help=CHECKPOINT_HELP)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--labels", metavar="PATH", help="a label file or a folder of label files")
    src.add_argument("--examples", type=number(int, 1, 100), nargs="?", const=6, metavar="N",
                     help="N example label maps drawn for the model's classes instead of files (default 6): "
                          "streets for street-scene models such as `camvid`, else the painter's landscape; "
                          "written to OUT/examples/")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--samples", type=number(int, 1, 1000), default=1, metavar="K",
                   help="images per label map (with --resample-classes/--mask: resampled variants); default 1")
    p.add_argument("--seed", type=number(int, *SEED), default=0, metavar="S",
                   help="sample K uses seed S+K (default 0), drawn on the CPU: same images on CPU and GPU")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--size", default=None, metavar="HxW",
                      help="resize label maps (nearest) to HxW, multiples of the model's size multiple "
                           "(default: the model's training size)")
    size.add_argument("--native-size", action="store_true",
                      help="keep each label map's own size instead of resizing it to the training size")
    p.add_argument("--batch-size", type=number(int, 1, 4096), default=None, metavar="B",
                   help="images per forward pass (default 8); several label maps of one size share a pass")
    p.add_argument("--z-file", default=None, metavar="F",
                   help="use this noise (.npy/.npz/.pt, e.g. one written beside an image): shape (z_dim,), "
                        "(K, z_dim), (z_dim, H, W) or (K, z_dim, H, W); K images per label map")
    p.add_argument("--resample-classes", default=None, metavar="NAMES_OR_IDS",
                   help="comma-separated classes (names or ids): keep the base image and resample the noise "
                        "only where the label has these classes")
    p.add_argument("--mask", default=None, metavar="PNG",
                   help="resample the noise only where this mask is non-zero (resized to the label, nearest)")
    p.add_argument("--interpolate", type=number(int, 1, 10000), default=None, metavar="N",
                   help="write N frames between two noises (seeds S and S+1, or the first two of --z-file; "
                        "with --resample-classes/--mask only the region changes) and an animated GIF")
    p.add_argument("--slerp", action="store_true", help="spherical instead of linear interpolation")
    p.add_argument("--gif-ms", type=number(int, 1, 60000), default=80,
                   help="GIF frame duration in milliseconds (default 80)")
    p.add_argument("--device", default="auto", help="auto (GPU when available), cpu, cuda, cuda:1 ...")
    p.add_argument("--skip-bad", action="store_true",
                   help="with a folder: report bad label files and go on (exit code 2 at the end)")
    p.set_defaults(func=run)


def label_files(path: Path) -> List[Path]:
    from ..errors import DataError

    if path.is_file():
        return [path]
    if not path.exists():
        raise DataError(f"{path}: label file or folder not found")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in LABEL_EXTENSIONS)
    if not files:
        raise DataError(f"{path}: no label files ({', '.join(LABEL_EXTENSIONS)}) in this folder")
    return files


def write_examples(model, folder: Path, n: int, size) -> List[Path]:
    """`n` example label maps for the model's classes (the painter's examples) as index PNGs."""
    import numpy as np
    from PIL import Image

    from ..app.core import example_label
    from ..data.labelmaps import label_convention

    cfg = model.config
    names = [cfg.class_name(i) for i in range(cfg.semantic_nc)]
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for k in range(n):
        path = folder / f"example_{k:02d}.png"
        lab = example_label(names, size[0], size[1], cfg.dontcare_label, k)
        if label_convention(cfg) == "coco":  # written in the dataset's own ids, as a user's file is
            lab = np.where(lab == 0, 255, lab - 1)
        Image.fromarray(lab.astype(np.uint8 if cfg.semantic_nc <= 256 else np.int32)).save(path)
        files.append(path)
    return files


def read_mask(path: Path):
    import numpy as np
    from PIL import Image

    from ..errors import DataError

    try:
        with Image.open(path) as img:
            img.load()
            arr = np.asarray(img.convert("L"))
    except FileNotFoundError:
        raise DataError(f"{path}: mask file not found") from None
    except Exception as e:
        raise DataError(f"{path}: cannot read mask image: {e}") from None
    return arr != 0


def resolve_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        from ..config import ConfigError

        raise ConfigError(f"--device {name!r}: not a device (auto, cpu, cuda, cuda:1 ...)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        from ..config import ConfigError

        raise ConfigError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    return dev


def _save_png(arr, path: Path) -> None:
    from PIL import Image

    Image.fromarray(arr).save(path)


def _grid(tiles, pad: int = 2):
    import numpy as np

    h, w = tiles[0].shape[:2]
    out = np.full((h, len(tiles) * (w + pad) - pad, 3), 255, dtype=np.uint8)
    for i, t in enumerate(tiles):
        out[:, i * (w + pad): i * (w + pad) + w] = t
    return out


def run(args: argparse.Namespace) -> int:
    from .. import synthesis as S
    from ..errors import OASISError
    from ..loading.pretrained import from_pretrained

    if args.samples < 1:
        raise S.SynthesisError("--samples must be at least 1")
    if args.batch_size is not None and args.batch_size < 1:
        raise S.SynthesisError("--batch-size must be at least 1")
    if args.interpolate is not None and args.interpolate < 2:
        raise S.SynthesisError("--interpolate needs at least 2 frames")
    device = resolve_device(args.device)
    model = from_pretrained(args.checkpoint, device=device, discriminator=False)
    mult = model.generator.size_multiple
    train_size = (model.config.height, model.config.width)
    size = None if args.native_size else train_size
    if args.size:
        size = S.parse_size(args.size)
        if size[0] % mult or size[1] % mult:
            h, w = S.valid_size(size[0], size[1], mult)
            raise S.SynthesisError(f"--size {args.size}: sizes must be multiples of {mult} for this model, "
                                   f"e.g. --size {h}x{w}")
    if args.examples is not None:
        files = write_examples(model, Path(args.out) / "examples", args.examples, size or train_size)
    else:
        files = label_files(Path(args.labels))
    if size is None:
        print("output size: each label map's own (--native-size)", file=sys.stderr)
    else:
        what = "the model's training size" if size == train_size else "--size"
        print(f"output size: {size[0]}x{size[1]} ({what}; label maps of other sizes are resized, nearest)",
              file=sys.stderr)
        _warn_if_large(size, train_size)
    job = _Job(model, args, size)
    out = job.out
    out.mkdir(parents=True, exist_ok=True)

    bar = files
    if len(files) > 1:
        from tqdm import tqdm

        bar = tqdm(files, desc="synthesize", unit="label", file=sys.stderr)
    failed, written = [], 0
    for path in bar:
        try:
            written += job.add(path)
        except OASISError as e:
            if not args.skip_bad or len(files) == 1:
                raise
            failed.append(path)
            print(f"oasis synthesize: skipped: {e}", file=sys.stderr)
    written += job.flush()
    if job.resized:
        print(f"resized {job.resized} label map(s) from other sizes to {size[0]}x{size[1]}", file=sys.stderr)
    print(f"wrote {written} images for {len(files) - len(failed)} label map(s) to {out}")
    if failed:
        print(f"oasis synthesize: error: {len(failed)} label file(s) failed: "
              f"{', '.join(str(p) for p in failed[:5])}{' ...' if len(failed) > 5 else ''}", file=sys.stderr)
        return 2
    return 0


def _warn_if_large(size, train_size, path=None) -> None:
    """Far above the training size a generator runs for long and draws unlike its training."""
    ratio = size[0] * size[1] / (train_size[0] * train_size[1])
    if ratio > 4:
        where = f"{path}: " if path else ""
        print(f"oasis synthesize: warning: {where}{size[0]}x{size[1]} is {ratio:.0f}x the area of the training "
              f"size {train_size[0]}x{train_size[1]}: slower, and the images look unlike the model's "
              "training (drop --size/--native-size to synthesise at the training size)", file=sys.stderr)


class _Job:
    """One `oasis synthesize` run. Plain sampling batches several label maps of the same size into
    one forward pass (`--batch-size` images); resampling and interpolation go label by label."""

    def __init__(self, model, args, size):
        from .. import synthesis as S

        self.S, self.model, self.args, self.size = S, model, args, size
        cfg = model.config
        self.out = Path(args.out)
        self.zfile = S.load_noise(args.z_file, model.generator.z_dim, size) if args.z_file else None
        self.classes = (S.parse_classes(args.resample_classes, cfg.class_names, cfg.semantic_nc)
                        if args.resample_classes else None)
        self.mask_img = read_mask(Path(args.mask)) if args.mask else None
        self.regional = self.classes is not None or self.mask_img is not None
        if args.interpolate and self.zfile is not None and self.zfile.shape[0] < 2 and not self.regional:
            raise S.SynthesisError(f"{args.z_file}: --interpolate needs two noises in the file (K >= 2), "
                                   f"it holds {self.zfile.shape[0]}")
        self.k_count = self.zfile.shape[0] if self.zfile is not None else args.samples
        self.batch = args.batch_size or 8
        self.pending = []  # plain mode: (stem, ids, label_rgb) waiting for a batched forward pass
        self.resized = 0  # label maps read at another size than `size`
        self.warned_large = False

    # -- helpers -------------------------------------------------------------------------------
    def noise(self, k: int):
        """The k-th noise: from the z-file, or seed S+k."""
        if self.zfile is not None:
            if k >= self.zfile.shape[0]:
                raise self.S.SynthesisError(f"{self.args.z_file}: holds {self.zfile.shape[0]} noise(s), "
                                            f"noise {k + 1} needed")
            return self.zfile[k:k + 1]
        return self.S.sample_noise(self.model, 1, seed=self.args.seed + k)

    def write(self, stem: str, img, z, name: str) -> None:
        _save_png(self.S.to_uint8(img), self.out / f"{stem}_{name}.png")
        ext = ".npz" if z.dim() == 4 else ".npy"  # spatial maps compress to a few kB
        self.S.save_noise(self.out / f"{stem}_{name}{ext}", z[0])

    def synth(self, ids, zs):
        return self.S.synthesize(self.model, ids, z=zs, batch_size=self.batch)

    # -- per label file ------------------------------------------------------------------------
    def add(self, path: Path) -> int:
        from ..labels import colorize

        S, cfg = self.S, self.model.config
        ids = S.read_label(path, cfg)
        if self.size is not None and ids.shape != self.size:
            ids, self.resized = S.resize_label(ids, self.size), self.resized + 1
        h, w = ids.shape
        S.check_size(h, w, self.model.generator.size_multiple, path)
        if self.size is None and not self.warned_large:
            self.warned_large = True
            _warn_if_large((h, w), (cfg.height, cfg.width), path)
        z = self.zfile
        if z is not None and z.dim() == 4 and tuple(z.shape[-2:]) != (h, w):
            raise S.SynthesisError(f"{self.args.z_file}: spatial noise is {z.shape[-2]}x{z.shape[-1]}, "
                                   f"label {path} is {h}x{w}")
        label_rgb = colorize(ids, cfg.palette, cfg.semantic_nc)
        _save_png(label_rgb, self.out / f"{path.stem}_label.png")
        if self.args.interpolate:
            return self.interpolate(path, ids, label_rgb)
        if self.regional:
            return self.resample(path, ids, label_rgb)
        written = 0
        if self.pending and self.pending[0][1].shape != ids.shape:
            written += self.flush()
        self.pending.append((path.stem, ids, label_rgb))
        if len(self.pending) * self.k_count >= self.batch:
            written += self.flush()
        return written

    def flush(self) -> int:
        """Plain sampling of the pending label maps: K images each, one batched call."""
        import numpy as np
        import torch

        if not self.pending:
            return 0
        group, self.pending = self.pending, []
        k = self.k_count
        zs = torch.cat([self.noise(i) for i in range(k)])
        ids = torch.as_tensor(np.stack([g[1] for g in group])).repeat_interleave(k, 0)
        imgs = self.synth(ids, zs.repeat(len(group), *([1] * (zs.dim() - 1))))
        for j, (stem, _, label_rgb) in enumerate(group):
            part = imgs[j * k:(j + 1) * k]
            for i in range(k):
                self.write(stem, part[i], zs[i:i + 1], f"s{i:03d}")
            _save_png(_grid([label_rgb] + list(self.S.to_uint8(part[:16]))), self.out / f"{stem}_grid.png")
        return len(group) * k

    def region(self, path: Path, ids):
        import numpy as np

        h, w = ids.shape
        region = np.zeros((h, w), dtype=bool)
        if self.classes is not None:
            region |= self.model.class_mask(ids, self.classes).numpy()
        if self.mask_img is not None:
            region |= self.S.resize_label(self.mask_img.astype(np.uint8), (h, w)).astype(bool)
        if not region.any():
            print(f"oasis synthesize: warning: {path}: the resampling region is empty (none of the classes "
                  "are present / empty mask): the images equal the base image", file=sys.stderr)
        return region

    def resample(self, path: Path, ids, label_rgb) -> int:
        import torch

        S, stem, n = self.S, path.stem, self.args.samples
        region = self.region(path, ids)
        base = self.noise(0)
        zs = torch.cat([S.resample_region(base, region, seed=self.args.seed + k) for k in range(1, n + 1)])
        imgs = self.synth(ids, torch.cat([S.noise_map(base, ids.shape), zs]))
        self.write(stem, imgs[0], base, "base")
        for k in range(1, n + 1):
            self.write(stem, imgs[k], zs[k - 1:k], f"s{k:03d}")
        _save_png(_grid([label_rgb] + list(S.to_uint8(imgs[:17]))), self.out / f"{stem}_grid.png")
        return len(imgs)

    def interpolate(self, path: Path, ids, label_rgb) -> int:
        import numpy as np
        from PIL import Image

        S, stem, args = self.S, path.stem, self.args
        z0 = self.noise(0)
        if self.regional:  # only the region's noise moves
            z1 = S.resample_region(z0, self.region(path, ids), seed=args.seed + 1)
        else:
            z1 = self.noise(1)
        zs = S.interpolate_noise(z0, z1, args.interpolate, mode="slerp" if args.slerp else "linear")
        imgs = self.synth(ids, zs)
        frames = list(S.to_uint8(imgs))
        for i in range(len(zs)):
            self.write(stem, imgs[i], zs[i:i + 1], f"f{i:03d}")
        pil = [Image.fromarray(f) for f in frames]
        pil[0].save(self.out / f"{stem}_interp.gif", save_all=True, append_images=pil[1:],
                    duration=args.gif_ms, loop=0)
        pick = np.linspace(0, len(frames) - 1, min(len(frames), 8)).round().astype(int)
        _save_png(_grid([label_rgb] + [frames[i] for i in pick]), self.out / f"{stem}_grid.png")
        return len(frames)
