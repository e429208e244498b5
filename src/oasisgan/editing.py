"""Edit real photos: invert an image into OASIS's 3D noise, then change its label map.

OASIS draws its image from a label map and a noise of one `z_dim` vector per pixel. Given a
photo and its label map, `invert` looks for the noise with which the generator reproduces the
photo. The edits then keep that noise where the label map keeps its classes, so unchanged
regions keep their look, and give repainted regions noise of the photo's own classes::

    import oasisgan
    from oasisgan.editing import read_image

    m = oasisgan.load("model.ckpt")
    photo = read_image("photo.png", size=(m.config.height, m.config.width))
    label = m.read_label("labels.png")
    inv = m.invert(photo, label, steps=200, seed=0)         # Inversion: z, reconstruction, psnr
    new = label.copy(); new[40:, :20] = 3                   # repaint a region with class 3
    out = m.edit(inv, new, paste_back=True)                 # Edit: image, z, changed, composite
    sky_b = m.transfer(inv_b, inv, "sky")                   # image B with the sky of this photo

How the noise is found (stages, run in order, `steps` split between them):

- ``"global"``: one vector per image, as in training (the "best global noise" baseline);
- ``"class"``: one vector per class present: the noise the model knows (piecewise constant),
  enough to match each region's overall appearance;
- ``"spatial"``: a per-pixel correction on top, for detail inside regions.

The loss is pixel L1 plus LPIPS where its weights are present (else a note says it is off),
optionally the distance between the discriminator's per-pixel class logits of the photo and of
the reconstruction (the D is a U-Net segmenter: its output is a dense semantic feature), plus a
prior that keeps the noise in distribution: each pixel's vector keeps the mean 0 and variance 1
of a standard normal vector, and neighbouring pixels of one class keep similar vectors. Without
it the noise fits the photo better but leaves the distribution the model was trained on (the
measurements are in docs/editing.md).
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from .data.photos import read_photo
from .data.transforms import BICUBIC
from .errors import DataError, OASISError
from .loading.checkpoint import atomic_save
from .loading.weights import WeightsError, cache_dir
from .metrics.diversity import BACKBONE_FILES, load_lpips
from .synthesis import (_as_noise, _generator, _ids, generator_input, noise_map, parse_classes, read_label,
                        resize_label, sample_noise, synthesize)

__all__ = ["EditingError", "Inversion", "Edit", "InversionOptions", "read_image", "read_pair", "invert", "edit_noise", "edit",
           "move_region", "transfer", "feather_mask", "psnr", "random_psnr", "find_lpips", "EditingMixin"]

STAGES = ("global", "class", "spatial")


class EditingError(OASISError, ValueError):
    """A bad photo or argument for inversion and editing; the message names the file."""


# ------------------------------------------------------------------------------------------------
# photos
# ------------------------------------------------------------------------------------------------
def read_image(path: Union[str, Path], size: Optional[Tuple[int, int]] = None) -> torch.Tensor:
    """A photo file -> float32 (3, H, W) in [-1, 1] (the generator's range); `size` (H, W):
    bicubic resize, as the datasets resize their images. EditingError naming the file otherwise."""
    try:
        rgb = read_photo(path)  # every mode, 16-bit and float scaled (not clipped to white)
    except DataError as e:
        raise EditingError(str(e)) from None
    if size is not None and rgb.size != (size[1], size[0]):
        rgb = rgb.resize((size[1], size[0]), BICUBIC)
    return image_tensor(np.asarray(rgb))


def read_pair(model, image_path: Union[str, Path], label_path: Union[str, Path],
              size: Optional[Tuple[int, int]] = None) -> Tuple[torch.Tensor, np.ndarray]:
    """A photo and its label file -> ((3, H, W) in [-1, 1], (H, W) model ids) at `size`
    (default: the model's resolution; image bicubic, label nearest). The two files must have one
    size; errors name the file."""
    image = read_image(image_path)
    label = read_label(label_path, model.config)
    if tuple(image.shape[-2:]) != tuple(label.shape):
        raise EditingError(f"{image_path}: the photo is {image.shape[-1]}x{image.shape[-2]} but its label map "
                           f"{label_path} is {label.shape[1]}x{label.shape[0]} (width x height); they must match")
    size = tuple(size) if size is not None else (int(model.config.height), int(model.config.width))
    if tuple(image.shape[-2:]) != size:
        image = read_image(image_path, size)
        label = resize_label(label, size)
    return image, label


def image_tensor(arr: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.array(arr, dtype=np.uint8)).permute(2, 0, 1).float() / 127.5 - 1.0


def _images(image, name=None) -> torch.Tensor:
    """(3, H, W) / (B, 3, H, W) tensor or uint8 (H, W, 3) array -> float (B, 3, H, W) in [-1, 1]."""
    if isinstance(image, (str, Path)):
        return read_image(image)[None]
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3:
        image = image_tensor(image)
    t = torch.as_tensor(image).float()
    if t.dim() == 3:
        t = t[None]
    if t.dim() != 4 or t.shape[1] != 3:
        raise EditingError(f"{name + ': ' if name else ''}expected an RGB image (3, H, W) or (B, 3, H, W) "
                           f"in [-1, 1], got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all() or t.min() < -1.001 or t.max() > 1.001:
        raise EditingError(f"{name + ': ' if name else ''}image values must lie in [-1, 1] (the generator's "
                           "range); use oasisgan.editing.read_image for files")
    return t


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of images in [-1, 1] (on the [0, 1] scale)."""
    mse = ((a.float() - b.float()) / 2).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def random_psnr(model, image, label, seed: Optional[int] = 0) -> float:
    """PSNR of the image that the start noise of `invert` (seed `seed`) gives: the baseline."""
    target = _images(image)
    return float(psnr(synthesize(model, label, z=sample_noise(model, target.shape[0], seed=seed)), target).mean())


# ------------------------------------------------------------------------------------------------
# LPIPS, where its weights are present
# ------------------------------------------------------------------------------------------------
def find_lpips(lpips="auto", backbone=None, weights=None, device="cpu"):
    """(LPIPS module or None, note). "auto" uses LPIPS (alex, v0.1) only when both weight files
    are local (the cache, or the given paths): an inversion never waits on a download. False: off."""
    if lpips is False or lpips is None:
        return None, "LPIPS off"
    if isinstance(lpips, torch.nn.Module):
        return lpips.eval().to(device), ""
    fname = BACKBONE_FILES["alex"][0]
    backbone = backbone or (cache_dir() / fname)
    weights = weights or (cache_dir() / "lpips" / "v0.1" / "alex.pth")
    missing = [str(p) for p in (backbone, weights) if not Path(p).is_file()]
    if missing:
        return None, (f"LPIPS weights not found ({', '.join(missing)}): the reconstruction loss is "
                      "pixel L1 only and no LPIPS is reported")
    try:
        return load_lpips("alex", "0.1", backbone, weights, device), ""
    except WeightsError as e:
        return None, f"LPIPS unavailable ({e}): the loss is pixel L1 only"


# ------------------------------------------------------------------------------------------------
# inversion
# ------------------------------------------------------------------------------------------------
@dataclass
class Inversion:
    """The noise found for photos: `z` (B, z_dim, H, W) reproduces `reconstruction` from `label`.

    `class_z` (B, N, z_dim) holds each present class's mean noise (zeros where `present` is
    False): what an edit gives a region repainted with that class, and what `transfer` moves.
    """

    z: torch.Tensor
    label: torch.Tensor               # (B, H, W) int64 model ids
    image: torch.Tensor               # (B, 3, H, W) the photos, in [-1, 1]
    reconstruction: torch.Tensor      # (B, 3, H, W) G(label, z)
    psnr: float                       # mean over the batch, dB
    lpips: Optional[float] = None     # mean over the batch, when LPIPS weights are present
    seconds: float = 0.0
    stages: Tuple[str, ...] = ()
    history: List[Tuple[str, int, float]] = field(default_factory=list)   # (stage, step, loss)
    notes: List[str] = field(default_factory=list)
    class_z: Optional[torch.Tensor] = None
    present: Optional[torch.Tensor] = None

    def __post_init__(self):
        if self.class_z is None:
            self.class_z, self.present = class_means(self.z, self.label, int(self.num_classes_hint()))

    def num_classes_hint(self) -> int:
        return int(self.label.max()) + 1

    def class_noise(self, cls: int, index: int = 0) -> torch.Tensor:
        """(z_dim,) mean inverted noise of class `cls` in image `index` (EditingError when absent)."""
        if cls >= self.class_z.shape[1] or not bool(self.present[index, cls]):
            raise EditingError(f"class {cls} is not in the inverted photo")
        return self.class_z[index, cls]

    def save(self, path: Union[str, Path]) -> Path:
        """A `.pt` dict of tensors and numbers; `oasis synthesize --z-file` reads its 'z'."""
        path = Path(path)
        atomic_save({"z": self.z.cpu(), "label": self.label.cpu(), "image": self.image.cpu(),
                    "reconstruction": self.reconstruction.cpu(), "psnr": float(self.psnr),
                    "lpips": self.lpips, "seconds": float(self.seconds), "stages": list(self.stages),
                    "class_z": self.class_z.cpu(), "present": self.present.cpu()}, path)
        return path

    @classmethod
    def load(cls, path: Union[str, Path]) -> "Inversion":
        path = Path(path)
        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
            return cls(z=d["z"], label=d["label"], image=d["image"], reconstruction=d["reconstruction"],
                       psnr=d["psnr"], lpips=d["lpips"], seconds=d["seconds"], stages=tuple(d["stages"]),
                       class_z=d["class_z"], present=d["present"])
        except FileNotFoundError:
            raise EditingError(f"{path}: inversion file not found") from None
        except Exception as e:
            raise EditingError(f"{path}: not an inversion written by `oasis invert` ({type(e).__name__})") from None


def class_means(z: torch.Tensor, label: torch.Tensor, num_classes: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per image and class, the mean noise vector over the class's pixels: (B, N, z_dim), (B, N)."""
    oh = F.one_hot(label.long(), num_classes).permute(0, 3, 1, 2).float()           # (B, N, H, W)
    count = oh.sum((2, 3))                                                           # (B, N)
    total = torch.einsum("bnhw,bzhw->bnz", oh, z.float())
    return total / count.clamp_min(1)[..., None], count > 0


def _prior(z: torch.Tensor, same_x: torch.Tensor, same_y: torch.Tensor, smooth: float) -> torch.Tensor:
    """Per-pixel vectors keep a standard normal's mean 0 and variance 1; neighbours within a
    class keep similar vectors (the model was trained on region-constant noise)."""
    stats = (z.mean(1).pow(2) + (z.var(1, unbiased=False) - 1).pow(2)).mean()
    if not smooth:
        return stats
    dx = (z[..., :, 1:] - z[..., :, :-1]).pow(2).mean(1)
    dy = (z[..., 1:, :] - z[..., :-1, :]).pow(2).mean(1)
    tv = (dx * same_x).sum() / same_x.sum().clamp_min(1) + (dy * same_y).sum() / same_y.sum().clamp_min(1)
    return stats + smooth * tv


def _split_steps(steps, stages: Sequence[str]) -> List[int]:
    if isinstance(steps, (int, np.integer)):
        if steps < 0:
            raise EditingError("steps must be >= 0")
        base = [int(steps) // len(stages)] * len(stages)
        base[-1] += int(steps) - sum(base)
        return base
    out = [int(s) for s in steps]
    if len(out) != len(stages) or min(out) < 0:
        raise EditingError(f"steps: give one count per stage {tuple(stages)}, got {steps!r}")
    return out


class _Adam:
    """Adam (Kingma & Ba) for one tensor. torch.optim's first use imports torch._dynamo, which
    takes 5 s on a small CPU: longer than a whole toy inversion."""

    def __init__(self, param: torch.Tensor, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.param, self.lr, self.betas, self.eps, self.t = param, lr, betas, eps, 0
        self.m, self.v = torch.zeros_like(param), torch.zeros_like(param)

    @torch.no_grad()
    def step(self) -> None:
        b1, b2 = self.betas
        g = self.param.grad
        self.t += 1
        self.m.mul_(b1).add_(g, alpha=1 - b1)
        self.v.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (self.v / (1 - b2 ** self.t)).sqrt_().add_(self.eps)
        self.param.addcdiv_(self.m, denom, value=-self.lr / (1 - b1 ** self.t))
        self.param.grad = None


@dataclass
class InversionOptions:
    """How `invert` searches. `steps`: Adam steps in all (split evenly over `stages`) or one
    count per stage. The start is `sample_noise(seed)`, so a seed gives the same result on a
    CPU. `lpips`: "auto" (used when its weights are local), False, or an `LPIPS` module;
    `d_weight` > 0 adds the discriminator's logits as a feature loss (needs
    `model.discriminator`). `prior_weight` weighs the in-distribution prior, `smooth_weight` its
    neighbour term in the spatial stage. `callback(stage, step, total_steps, loss)` after each step."""

    steps: Union[int, Sequence[int]] = 200
    stages: Sequence[str] = ("class", "spatial")
    lr: float = 0.1
    seed: Optional[int] = 0
    lpips: Any = "auto"
    lpips_weight: float = 1.0
    lpips_backbone: Optional[Union[str, Path]] = None
    lpips_weights: Optional[Union[str, Path]] = None
    d_weight: float = 0.0
    prior_weight: float = 0.01
    smooth_weight: float = 2.0
    progress: bool = True
    callback: Optional[Callable[[str, int, int, float], None]] = None


@dataclass
class _Layout:
    """The label map as the stages see it: ids (B, H, W), each pixel's row for a per-class
    table, and where horizontal / vertical neighbours share a class."""

    ids: torch.Tensor
    num_classes: int

    def __post_init__(self):
        ids = self.ids
        self.rows = torch.arange(ids.shape[0], device=ids.device)[:, None, None]
        self.same_x = (ids[..., :, 1:] == ids[..., :, :-1]).float()
        self.same_y = (ids[..., 1:, :] == ids[..., :-1, :]).float()


class _GlobalStage:
    """One vector per image, as in training (the "best global noise" baseline)."""

    lr_scale = 1.0

    def __init__(self, z: torch.Tensor, layout: _Layout, smooth: float):
        self.shape = z.shape
        self.param = z.mean((2, 3)).clone().requires_grad_(True)                  # (B, z_dim)

    def noise(self) -> torch.Tensor:
        b, _, h, w = self.shape
        return self.param[:, :, None, None].expand(b, self.param.shape[1], h, w)

    def prior(self, z: torch.Tensor) -> torch.Tensor:
        return _prior(self.param[:, :, None, None], None, None, 0)


class _ClassStage:
    """One vector per class present, started at the class means of the noise so far."""

    lr_scale = 1.0

    def __init__(self, z: torch.Tensor, layout: _Layout, smooth: float):
        self.layout = layout
        means, _ = class_means(z, layout.ids, layout.num_classes)
        self.param = means.clone().requires_grad_(True)                            # (B, N, z_dim)

    def noise(self) -> torch.Tensor:
        return self.param[self.layout.rows, self.layout.ids].permute(0, 3, 1, 2)

    def prior(self, z: torch.Tensor) -> torch.Tensor:
        return _prior(z, self.layout.same_x, self.layout.same_y, 0)


class _SpatialStage:
    """A per-pixel correction on top of the noise so far, kept smooth within classes."""

    lr_scale = 0.5

    def __init__(self, z: torch.Tensor, layout: _Layout, smooth: float):
        self.layout, self.smooth = layout, smooth
        self.base = z.detach()
        self.param = torch.zeros_like(self.base).requires_grad_(True)

    def noise(self) -> torch.Tensor:
        return self.base + self.param

    def prior(self, z: torch.Tensor) -> torch.Tensor:
        return _prior(z, self.layout.same_x, self.layout.same_y, self.smooth)


STAGE_TYPES = {"global": _GlobalStage, "class": _ClassStage, "spatial": _SpatialStage}


def _reconstruction_loss(gen, ids, target, lp, lpips_weight, disc, d_target, d_weight):
    """G(ids, z) and its distance to the photos: L1 [+ LPIPS] [+ D logits]."""
    def loss_of(z):
        out = gen(ids, z)
        loss = (out - target).abs().mean()
        if lp is not None and lpips_weight:
            loss = loss + lpips_weight * lp(out, target).mean()
        if d_target is not None:
            loss = loss + d_weight * (disc(out) - d_target).pow(2).mean()
        return out, loss
    return loss_of


def invert(model, image, label, options: Optional[InversionOptions] = None, *,
           image_name: Optional[str] = None, label_name: Optional[str] = None, **settings: Any) -> Inversion:
    """Find the noise that makes the generator reproduce `image` from `label`.

    `image`: (3, H, W) / (B, 3, H, W) in [-1, 1] (`read_image`) or uint8 (H, W, 3); `label`:
    model ids (H, W) / (B, H, W) of the same size (`model.read_label`). How: `options` (an
    `InversionOptions`), or its fields as keywords (`steps=100, seed=1`), which win over it.
    """
    if options is not None and not isinstance(options, InversionOptions):  # invert(m, image, label, 200)
        options, settings = None, dict(settings, steps=options)
    try:
        opts = dataclasses.replace(options or InversionOptions(), **settings)
    except TypeError:
        unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(InversionOptions)})
        raise TypeError(f"invert() got unknown option(s) {', '.join(unknown)}") from None
    gen = _generator(model)
    dev = next(gen.parameters()).device
    t0 = time.perf_counter()
    target = _images(image, image_name).to(dev)
    ids = _ids(label, label_name)
    if tuple(ids.shape[-2:]) != tuple(target.shape[-2:]):
        raise EditingError(f"{image_name or 'image'} is {target.shape[-1]}x{target.shape[-2]} but "
                           f"{label_name or 'its label map'} is {ids.shape[-1]}x{ids.shape[-2]} (width x "
                           "height): give the photo and the label map of one size")
    ids = generator_input(model, ids, label_name)                       # checks ids and size
    if ids.shape[0] != target.shape[0]:
        raise EditingError(f"{target.shape[0]} images but {ids.shape[0]} label maps")
    stages = tuple(opts.stages)
    if not stages or any(s not in STAGES for s in stages):
        raise EditingError(f"stages must be a sequence of {', '.join(STAGES)}; got {stages!r}")
    if not gen.noise_3d:
        raise EditingError("this model was trained without 3D noise: there is no noise to invert")
    counts = _split_steps(opts.steps, stages)
    (b, h, w), n = ids.shape, gen.semantic_nc
    notes: List[str] = []
    lp, note = find_lpips(opts.lpips, opts.lpips_backbone, opts.lpips_weights, dev)
    if note and opts.lpips is not False and opts.lpips is not None:
        notes.append(note)
        warnings.warn(note, stacklevel=2)
    disc = getattr(model, "discriminator", None) if opts.d_weight else None
    if opts.d_weight and disc is None:
        notes.append("no discriminator in this checkpoint: the D feature loss is off")
        warnings.warn(notes[-1], stacklevel=2)
    with torch.no_grad():
        d_target = disc(target) if disc is not None else None
    loss_of = _reconstruction_loss(gen, ids, target, lp, opts.lpips_weight, disc, d_target, opts.d_weight)
    layout = _Layout(ids, n)

    z = noise_map(sample_noise(model, b, seed=opts.seed).to(dev), (h, w)).to(dev)
    history: List[Tuple[str, int, float]] = []
    total, done = sum(counts), 0
    bar = None
    if opts.progress and total:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="invert", unit="step", leave=False, dynamic_ncols=True)
    try:
        for name, count in zip(stages, counts):
            stage = STAGE_TYPES[name](z, layout, opts.smooth_weight)
            adam = _Adam(stage.param, lr=opts.lr * stage.lr_scale)
            for i in range(count):
                zz = stage.noise()
                _, loss = loss_of(zz)
                (loss + opts.prior_weight * stage.prior(zz)).backward()
                adam.step()
                done += 1
                value = float(loss.detach())
                history.append((name, i, value))
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(stage=name, loss=f"{value:.4f}", refresh=False)
                if opts.callback is not None:
                    opts.callback(name, done, total, value)
            z = stage.noise().detach()
    finally:
        if bar is not None:
            bar.close()
    with torch.no_grad():
        recon = gen(ids, z).float()
        p = float(psnr(recon, target).mean())
        lv = float(lp(recon, target).mean()) if lp is not None else None
    cz, present = class_means(z.cpu(), ids.cpu(), n)
    return Inversion(z=z.cpu().contiguous(), label=ids.cpu(), image=target.cpu(), reconstruction=recon.cpu(),
                     psnr=p, lpips=lv, seconds=time.perf_counter() - t0, stages=stages, history=history,
                     notes=notes, class_z=cz, present=present)


# ------------------------------------------------------------------------------------------------
# editing
# ------------------------------------------------------------------------------------------------
@dataclass
class Edit:
    """An edited photo: `image` = G(new label, `z`); `changed` (B, H, W) the pixels whose class
    changed (or whose noise was replaced); `composite` the photo outside the feathered region."""

    image: torch.Tensor
    z: torch.Tensor
    label: torch.Tensor
    changed: torch.Tensor
    composite: Optional[torch.Tensor] = None
    mask: Optional[torch.Tensor] = None      # (B, 1, H, W) soft paste mask (1 = edited)

    @property
    def result(self) -> torch.Tensor:
        """The composite where one was made, else the generated image."""
        return self.composite if self.composite is not None else self.image


def _fresh(b: int, z_dim: int, seed: Optional[int]) -> torch.Tensor:
    return sample_noise(z_dim, b, seed=seed)


def edit_noise(inv: Inversion, new_label, new_noise: str = "class", seed: Optional[int] = 0) -> torch.Tensor:
    """The noise for an edited label map: the inverted noise where the class is unchanged; where
    it changed, the photo's mean noise of the new class (`new_noise="class"`; classes the photo
    lacks get fresh noise) or fresh noise (`"fresh"`, one vector from `seed` per image)."""
    new = _ids(new_label).to(inv.label.device)
    if new.shape[0] == 1 and inv.label.shape[0] > 1:
        new = new.expand_as(inv.label)
    if tuple(new.shape) != tuple(inv.label.shape):
        raise EditingError(f"the edited label map is {tuple(new.shape[-2:])}, the inverted one "
                           f"{tuple(inv.label.shape[-2:])}")
    if new_noise not in ("class", "fresh"):
        raise EditingError(f"new_noise must be 'class' or 'fresh', got {new_noise!r}")
    b, zd = inv.z.shape[:2]
    changed = new != inv.label
    fill = _fresh(b, zd, seed)[:, :, None, None].expand_as(inv.z).clone()      # (B, z_dim, H, W)
    if new_noise == "class":
        n = inv.class_z.shape[1]
        known = new.clamp_max(n - 1)
        have = torch.gather(inv.present, 1, known.flatten(1)).view_as(new) & (new < n)
        vecs = inv.class_z[torch.arange(b)[:, None, None], known]                  # (B, H, W, z_dim)
        fill = torch.where(have[:, None], vecs.permute(0, 3, 1, 2), fill)
    return torch.where(changed[:, None], fill, inv.z)


def feather_mask(mask, radius: float = 3.0, grow: int = 0) -> torch.Tensor:
    """A soft (B, 1, H, W) mask: 1 on `mask` grown by `grow` px, falling to 0 over about
    `2 * radius` px outside it (dilate, then box blur: the mask itself stays exactly 1)."""
    m = torch.as_tensor(np.asarray(mask) if not torch.is_tensor(mask) else mask).float()
    while m.dim() < 4:
        m = m[None] if m.dim() < 3 else m[:, None]
    r = max(0, int(round(radius)))
    k = r + int(grow)
    if k:
        m = F.max_pool2d(m, 2 * k + 1, stride=1, padding=k)
    if r:
        m = F.avg_pool2d(m, 2 * r + 1, stride=1, padding=r, count_include_pad=False)
    return m.clamp(0, 1)


def _finish(model, label, z, changed, photo, paste_back, feather, grow) -> Edit:
    image = synthesize(model, label, z=z)
    composite = soft = None
    if paste_back:
        soft = feather_mask(changed, feather, grow)
        composite = photo * (1 - soft) + image * soft
    return Edit(image=image, z=z, label=_ids(label).cpu(), changed=changed.cpu(), composite=composite, mask=soft)


def edit(model, inv: Inversion, new_label, z=None, new_noise: str = "class", seed: Optional[int] = 0,
         paste_back: bool = False, feather: float = 3.0, grow: int = 2) -> Edit:
    """Synthesise the photo with an edited label map and its inverted noise (`edit_noise`, or a
    given `z`, e.g. from `move_region`). `paste_back`: keep the photo's own pixels outside the
    changed region grown by `grow` px, blended over ~2 `feather` px (the generator's receptive
    field changes a little around an edit; this hides that and the reconstruction error)."""
    new = _ids(new_label).cpu()
    if new.shape[0] == 1 and inv.label.shape[0] > 1:
        new = new.expand_as(inv.label)
    zz = edit_noise(inv, new, new_noise, seed) if z is None else _as_noise(z)
    changed = (new != inv.label) | (zz != inv.z).any(1) if zz.shape == inv.z.shape else (new != inv.label)
    return _finish(model, new, zz, changed, inv.image, paste_back, feather, grow)


def move_region(inv: Inversion, mask, dy: int, dx: int, fill: Optional[int] = None,
                index: int = 0) -> Tuple[np.ndarray, torch.Tensor]:
    """Move an object: the label and the noise inside `mask` shift by (dy, dx) pixels (clipped at
    the border). The uncovered pixels get class `fill` (default: the most common class around the
    object) with the photo's noise of that class. Returns (label (H, W), z (1, z_dim, H, W)) for
    `edit(model, inv, label, z=z)`."""
    lab = inv.label[index].numpy().copy()
    z = inv.z[index:index + 1].clone()
    m = np.asarray(mask.cpu() if torch.is_tensor(mask) else mask).astype(bool)
    if m.shape != lab.shape:
        raise EditingError(f"the mask is {m.shape}, the label map {lab.shape}")
    if not m.any():
        raise EditingError("the mask to move is empty")
    if fill is None:
        from scipy import ndimage

        ring = ndimage.binary_dilation(m, iterations=2) & ~m
        vals = lab[ring] if ring.any() else lab[~m]
        fill = int(np.bincount(vals).argmax()) if vals.size else int(lab[m][0])
    new = lab.copy()
    new[m] = fill
    zf = inv.class_z[index, fill] if fill < inv.class_z.shape[1] and inv.present[index, fill] \
        else _fresh(1, z.shape[1], 0)[0]
    znew = z.clone()
    znew[0][:, torch.from_numpy(m)] = zf[:, None]
    ys, xs = np.nonzero(m)
    ty, tx = ys + int(dy), xs + int(dx)
    ok = (ty >= 0) & (ty < lab.shape[0]) & (tx >= 0) & (tx < lab.shape[1])
    new[ty[ok], tx[ok]] = lab[ys[ok], xs[ok]]
    znew[0][:, ty[ok], tx[ok]] = z[0][:, ys[ok], xs[ok]]
    return new, znew


def transfer(model, inv_b: Inversion, inv_a: Inversion, classes, paste_back: bool = False,
             feather: float = 3.0, grow: int = 2, index_a: int = 0) -> Edit:
    """Appearance transfer: image B (`inv_b`) with the look of `classes` taken from photo A
    (`inv_a`): B's pixels of those classes get A's mean noise of the class."""
    cfg = getattr(model, "config", None)
    ids = parse_classes(classes, getattr(cfg, "class_names", None), inv_b.class_z.shape[1])
    z = inv_b.z.clone()
    moved = torch.zeros_like(inv_b.label, dtype=torch.bool)
    for c in ids:
        if c >= inv_a.class_z.shape[1] or not bool(inv_a.present[index_a, c]):
            name = cfg.class_name(c) if cfg is not None else str(c)
            raise EditingError(f"photo A has no pixels of class {name!r}: nothing to transfer")
        m = inv_b.label == c
        z = torch.where(m[:, None], inv_a.class_z[index_a, c][None, :, None, None], z)
        moved |= m
    if not moved.any():
        raise EditingError("image B has no pixels of the classes to transfer")
    return _finish(model, inv_b.label, z, moved, inv_b.image, paste_back, feather, grow)


# ------------------------------------------------------------------------------------------------
# the methods of OASISModel
# ------------------------------------------------------------------------------------------------
class EditingMixin:
    """Editing methods of `OASISModel`: `invert`, `edit`, `transfer` (see `oasisgan.editing`)."""

    def invert(self, image, label, options: Optional[InversionOptions] = None, **settings) -> Inversion:
        """Noise that reproduces a photo; see `oasisgan.editing.invert` and `InversionOptions`."""
        return invert(self, image, label, options, **settings)

    def edit(self, inv: Inversion, new_label, **options) -> Edit:
        """The photo with an edited label map; see `oasisgan.editing.edit`."""
        return edit(self, inv, new_label, **options)

    def transfer(self, inv_b: Inversion, inv_a: Inversion, classes, **options) -> Edit:
        """Image B with classes' appearance from photo A; see `oasisgan.editing.transfer`."""
        return transfer(self, inv_b, inv_a, classes, **options)
