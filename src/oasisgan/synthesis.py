"""Synthesis and noise control: many images from one label map, local and class-wise resampling,
interpolation.

OASIS feeds the generator a 3D noise tensor: a z_dim vector per pixel, concatenated to the one-hot
label map. During training one vector per image is broadcast over the whole image, so every
image-level noise is a (B, z_dim) tensor; a *spatial* noise (B, z_dim, H, W) may hold a different
vector in different regions, which is how regions are changed locally: keep the noise outside a
mask, put a new vector inside it (`resample_region`). The official code ignores any noise it is
given and can do neither.

Everything here works with an `OASISModel` (`oasisgan.load(path)`), and most functions are bound
to it as methods::

    import oasisgan
    m = oasisgan.load("model.ckpt")
    label = oasisgan.synthesis.read_label("labels/0001.png", m.config)   # (H, W) model ids
    z = m.sample_noise(4, seed=0)                        # (4, z_dim), drawn on the CPU
    imgs = m.synthesize(label, z=z)                      # (4, 3, H, W) in [-1, 1], on the CPU
    zs = m.resample_classes(label, z, ["sky"], seed=1)   # new noise only where the label is sky
    imgs2 = m.synthesize(label, z=zs)                    # same images except the sky

Noise is always drawn on a CPU `torch.Generator`, so a seed gives the same noise, and (up to
floating-point differences between kernels) the same images, on every device.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .data import read_label_file
from .errors import LabelError, OASISError
from .labels import one_hot, to_uint8_image

__all__ = [
    "SynthesisError", "synthesize", "prepare_label", "generator_input", "read_label", "resize_label",
    "valid_size", "parse_size", "sample_noise", "noise_map", "mix_noise", "resample_region", "class_mask",
    "parse_classes", "interpolate_noise", "to_uint8", "to_pil", "save_noise", "load_noise",
    "SynthesisMixin",
]

Size = Tuple[int, int]


class SynthesisError(OASISError, ValueError):
    """A bad argument to synthesis (noise of the wrong shape, unknown class...): a user error."""


# ------------------------------------------------------------------------------------------------
# model access: an OASISModel or a bare Generator
# ------------------------------------------------------------------------------------------------
def _generator(model) -> torch.nn.Module:
    return model if isinstance(model, torch.nn.Module) else model.generator


def _config(model):
    return None if isinstance(model, torch.nn.Module) else model.config


def _device(model) -> torch.device:
    return next(_generator(model).parameters()).device


def _where(name) -> str:
    return f"{name}: " if name else ""


# ------------------------------------------------------------------------------------------------
# label maps
# ------------------------------------------------------------------------------------------------
def valid_size(height: int, width: int, multiple: int) -> Size:
    """The nearest size (at least `multiple`) whose sides are multiples of `multiple`."""
    def r(x: int) -> int:
        return max(multiple, int(round(x / multiple)) * multiple)
    return r(height), r(width)


def parse_size(text: str) -> Size:
    """'256x512' (height x width) or '256' (square) -> (256, 512)."""
    t = str(text).lower().replace(" ", "")
    parts = t.split("x") if "x" in t else [t, t]
    try:
        h, w = (int(p) for p in parts)
        if h <= 0 or w <= 0:
            raise ValueError
    except ValueError:
        raise SynthesisError(f"cannot read size {text!r}: expected HxW, e.g. 256x512") from None
    return h, w


def resize_label(label, size: Size):
    """Nearest-neighbour resize of an integer label map (H, W) or (B, H, W), numpy or tensor."""
    h, w = size
    is_np = not torch.is_tensor(label)
    t = torch.as_tensor(np.asarray(label)) if is_np else label
    squeeze = t.dim() == 2
    t3 = t[None] if squeeze else t
    if tuple(t3.shape[-2:]) != (h, w):
        t3 = torch.nn.functional.interpolate(t3[:, None].double(), size=(h, w), mode="nearest")[:, 0]
        t3 = t3.round().to(t.dtype if not t.is_floating_point() else torch.int64)
    out = t3[0] if squeeze else t3
    return out.numpy() if is_np else out


def _ids(label, name=None) -> torch.Tensor:
    """Any integer-valued label map -> int64 (B, H, W) CPU/device tensor."""
    t = label if torch.is_tensor(label) else torch.as_tensor(np.asarray(label))
    if t.dim() == 4 and t.shape[1] == 1:
        t = t[:, 0]
    if t.dim() == 2:
        t = t[None]
    if t.dim() != 3:
        raise LabelError(f"{_where(name)}expected a label map (H, W) or (B, H, W) of class ids, or a "
                         f"one-hot (B, N, H, W) tensor; got shape {tuple(t.shape)}")
    if t.dtype == torch.bool or t.is_complex():
        raise LabelError(f"{_where(name)}label ids must be integers, got {t.dtype}")
    if t.is_floating_point():
        if not torch.equal(t, t.round()):
            raise LabelError(f"{_where(name)}label map holds non-integer values; give integer class "
                             "ids (H, W)/(B, H, W) or a one-hot (B, N, H, W) tensor")
    return t.long()


def check_ids(ids: torch.Tensor, num_classes: int, name=None) -> None:
    """LabelError naming `name` when an id lies outside 0..num_classes-1."""
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= num_classes:
        bad = torch.unique(ids[(ids < 0) | (ids >= num_classes)]).tolist()
        shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
        raise LabelError(f"{_where(name)}label ids {shown} are outside this model's classes "
                         f"0..{num_classes - 1} ({num_classes} classes). Is this label map from "
                         "another dataset, or a colour PNG saved in a palette the model does not use?")


def check_size(height: int, width: int, multiple: int, name=None) -> None:
    """LabelError naming `name` when the size is not a multiple of the model's size multiple."""
    if height % multiple or width % multiple:
        h, w = valid_size(height, width, multiple)
        raise LabelError(f"{_where(name)}label map is {height}x{width}, but this model needs heights "
                         f"and widths that are multiples of {multiple}: resize it (nearest), e.g. "
                         f"with `--size {h}x{w}` or oasisgan.synthesis.resize_label(label, ({h}, {w}))")


def generator_input(model, label, name=None) -> torch.Tensor:
    """Check a label and turn it into the generator's input on the model's device: class ids
    (B, H, W) int64, or a float (B, N, H, W) map as given (one-hot or soft).

    `label`: integer class ids (H, W), (B, H, W) or (B, 1, H, W), numpy or tensor, in *model* ids
    (use `read_label` for files in a dataset's own convention), or a float one-hot (B, N, H, W)
    tensor (soft labels are passed through). `name` (e.g. the file) prefixes every error.
    """
    gen = _generator(model)
    n, m = gen.semantic_nc, gen.size_multiple
    dev = _device(model)
    if isinstance(label, np.ndarray) and label.ndim == 4 and label.dtype.kind == "f":
        label = torch.from_numpy(label)  # a one-hot numpy array
    if torch.is_tensor(label) and label.is_floating_point() and label.dim() == 4 and label.shape[1] == n:
        out = label.to(dev, torch.float32)
    else:
        if torch.is_tensor(label) and label.dim() == 4 and label.shape[1] not in (1, n):
            raise LabelError(f"{_where(name)}a one-hot label needs {n} channels for this model, got "
                             f"shape {tuple(label.shape)}")
        out = _ids(label, name)
        check_ids(out, n, name)
        out = out.to(dev)
    check_size(out.shape[-2], out.shape[-1], m, name)
    return out


def prepare_label(model, label, name=None) -> torch.Tensor:
    """Check a label and turn it into a float one-hot (B, N, H, W) on the model's device (see
    `generator_input`, which the generator takes without the one-hot)."""
    out = generator_input(model, label, name)
    return out if out.is_floating_point() else one_hot(out, _generator(model).semantic_nc)


def read_label(path: Union[str, Path], config, size: Optional[Size] = None) -> np.ndarray:
    """Read a label PNG into model ids (H, W) int64, through the dataset's id convention.

    Index PNGs are in the dataset's own ids (e.g. COCO-Stuff 255 -> don't care 0, others + 1),
    colour PNGs go through `config.palette`. Uses `oasisgan.data.read_label_file` (the data
    module's reader) and checks the ids against the model's classes. `size` (H, W): nearest resize.
    Raises LabelError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise LabelError(f"{path}: label file not found")
    ids = np.asarray(read_label_file(path, config)).astype(np.int64)
    if size is not None:
        ids = resize_label(ids, size)
    check_ids(torch.from_numpy(ids), config.semantic_nc, path)
    return ids


# ------------------------------------------------------------------------------------------------
# noise
# ------------------------------------------------------------------------------------------------
def _cpu_generator(seed: Optional[int], generator: Optional[torch.Generator]) -> Optional[torch.Generator]:
    if generator is not None:
        return generator
    if seed is None:
        return None  # the global CPU RNG
    g = torch.Generator(device="cpu")
    g.manual_seed(int(seed))
    return g


def sample_noise(model, batch: int = 1, seed: Union[None, int, Sequence[int]] = None,
                 size: Optional[Size] = None, generator: Optional[torch.Generator] = None,
                 per_pixel: bool = False) -> torch.Tensor:
    """Standard normal noise for `model`, drawn on the CPU (same seed -> same noise everywhere).

    Returns (batch, z_dim), one vector per image as in training, or with `size=(H, W)` a spatial
    (batch, z_dim, H, W) map holding each image's vector at every pixel (ready for
    `resample_region`). `seed`: an int for the whole batch, or one int per image (then
    `batch = len(seed)`, and row k equals `sample_noise(model, 1, seed=seed[k])`). `generator`: a
    torch.Generator to draw from instead (a CUDA one draws on its device; the result is moved to the
    CPU). `per_pixel=True` draws an independent vector per pixel (not what the model was trained on).
    The result is always a float32 CPU tensor.
    """
    z_dim = _generator(model).z_dim if not isinstance(model, int) else int(model)
    if seed is not None and not isinstance(seed, (int, np.integer)):
        seeds = [int(s) for s in seed]
        return torch.cat([sample_noise(model, 1, s, size, None, per_pixel) for s in seeds])
    g = _cpu_generator(seed, generator)
    dev = g.device if g is not None else torch.device("cpu")
    if size is not None and per_pixel:
        return torch.randn(batch, z_dim, *size, generator=g, device=dev).cpu()
    z = torch.randn(batch, z_dim, generator=g, device=dev).cpu()
    return z if size is None else noise_map(z, size)


def noise_map(z, size: Size) -> torch.Tensor:
    """(B, z_dim) or (z_dim,) -> (B, z_dim, H, W) with each vector at every pixel (a copy);
    a spatial (B, z_dim, H, W) of that size is returned unchanged."""
    z = _as_noise(z)
    if z.dim() == 2:
        return z[:, :, None, None].expand(*z.shape, *size).contiguous()
    if tuple(z.shape[-2:]) != tuple(size):
        raise SynthesisError(f"spatial noise is {z.shape[-2]}x{z.shape[-1]}, expected {size[0]}x{size[1]}")
    return z


def _as_noise(z) -> torch.Tensor:
    """Tensor/array -> float32 tensor (B, z_dim) or (B, z_dim, H, W) (a missing batch dim is added)."""
    t = z if torch.is_tensor(z) else torch.as_tensor(np.asarray(z))
    if not t.is_floating_point():
        raise SynthesisError(f"noise must be floating point, got {t.dtype}")
    t = t.float()
    if t.dim() in (1, 3):
        t = t[None]
    if t.dim() not in (2, 4):
        raise SynthesisError(f"noise must be (z_dim,), (B, z_dim), (z_dim, H, W) or (B, z_dim, H, W); "
                             f"got shape {tuple(t.shape)}")
    return t


def _mask(mask, size: Optional[Size] = None) -> torch.Tensor:
    """Mask (H, W), (B, H, W) or (B, 1, H, W), bool or numbers (non-zero = inside) -> bool (B|1, 1, H, W)."""
    m = mask if torch.is_tensor(mask) else torch.as_tensor(np.asarray(mask))
    if m.dim() == 2:
        m = m[None]
    if m.dim() == 3:
        m = m[:, None]
    if m.dim() != 4 or m.shape[1] != 1:
        raise SynthesisError(f"mask must be (H, W), (B, H, W) or (B, 1, H, W); got {tuple(m.shape)}")
    m = m != 0
    if size is not None and tuple(m.shape[-2:]) != tuple(size):
        raise SynthesisError(f"mask is {m.shape[-2]}x{m.shape[-1]}, the noise/label is {size[0]}x{size[1]}")
    return m


def mix_noise(z_a, z_b, mask) -> torch.Tensor:
    """Spatial noise that is `z_b` inside `mask` and `z_a` outside, (B, z_dim, H, W).

    `z_a`, `z_b`: (B, z_dim) vectors or (B, z_dim, H, W) maps (a batch of 1 broadcasts); `mask`:
    (H, W) or (B, H, W), bool or 0/1 (numpy or tensor), at the image size.
    """
    m = _mask(mask)
    size = tuple(m.shape[-2:])
    a, b = noise_map(z_a, size), noise_map(z_b, size)
    if a.shape[1] != b.shape[1]:
        raise SynthesisError(f"cannot mix noises with z_dim {a.shape[1]} and {b.shape[1]}")
    b = b.to(a.device)
    return torch.where(m.to(a.device), b, a)


def resample_region(z, mask, seed: Optional[int] = None,
                    generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """New noise inside `mask`, the same noise elsewhere: (B, z_dim, H, W).

    `z`: (B, z_dim) or spatial (B, z_dim, H, W); `mask`: (H, W) or (B, H, W), non-zero = resample.
    Each image gets one new vector (from `seed` on a CPU generator), placed at every masked pixel,
    so the region looks like the model's training noise. The image then changes in the masked
    region (and, through the receptive field, slightly around it).
    """
    z = _as_noise(z)
    new = torch.randn(z.shape[0], z.shape[1], generator=_cpu_generator(seed, generator),
                      device=(generator.device if generator is not None else "cpu")).cpu()
    return mix_noise(z, new.to(z.device), mask)


def parse_classes(classes, class_names: Optional[Sequence[str]] = None,
                  num_classes: Optional[int] = None) -> List[int]:
    """Class ids from ids, names, or a comma-separated string of either ('sky,tree,3')."""
    if isinstance(classes, (int, np.integer)):
        items: List = [int(classes)]
    elif isinstance(classes, str):
        items = [c.strip() for c in classes.split(",") if c.strip()]
    else:
        items = list(classes)
    if not items:
        raise SynthesisError("no classes given")
    lower = {n.lower(): i for i, n in enumerate(class_names or [])}
    out: List[int] = []
    for it in items:
        if isinstance(it, str) and not it.lstrip("-").isdigit():
            key = it.strip().lower()
            if key not in lower:
                hint = difflib.get_close_matches(key, list(lower), n=3)
                if not class_names:
                    raise SynthesisError(f"class {it!r}: this model has no class names; give class ids")
                raise SynthesisError(f"unknown class {it!r}" + (f"; did you mean {', '.join(hint)}?" if hint
                                                                else f"; classes are: {', '.join(class_names[:20])}"
                                                                + (" ..." if len(class_names) > 20 else "")))
            out.append(lower[key])
        else:
            i = int(it)
            if i < 0 or (num_classes is not None and i >= num_classes):
                raise SynthesisError(f"class id {i} is outside this model's classes 0..{num_classes - 1}"
                                     if num_classes else f"class id {i} is negative")
            out.append(i)
    return out


def class_mask(label, classes, class_names: Optional[Sequence[str]] = None,
               num_classes: Optional[int] = None) -> torch.Tensor:
    """Bool mask of the pixels whose class is in `classes`, shaped like the label ids.

    `label`: ids (H, W)/(B, H, W) or one-hot (B, N, H, W); `classes`: an id, a name, a list of
    them or 'sky,tree'; names are looked up (case-insensitively) in `class_names` (the model's
    `config.class_names`; `OASISModel.class_mask(label, classes)` passes them).
    """
    if torch.is_tensor(label) and label.is_floating_point() and label.dim() == 4 and label.shape[1] > 1:
        ids = label.argmax(1)
        num_classes = num_classes or label.shape[1]
    else:
        t = label if torch.is_tensor(label) else torch.as_tensor(np.asarray(label))
        ids = t.long()
    wanted = torch.tensor(parse_classes(classes, class_names, num_classes), device=ids.device)
    return torch.isin(ids, wanted)


def interpolate_noise(z0, z1, n: int, mode: str = "linear") -> torch.Tensor:
    """`n` noises from `z0` to `z1` (both included): (n, z_dim) or (n, z_dim, H, W).

    `z0`, `z1`: one noise each, (z_dim,)/(1, z_dim) or (z_dim, H, W)/(1, z_dim, H, W); a vector and a
    map mix (the vector is broadcast). `mode`: "linear" or "slerp" (spherical, per pixel vector).
    The first and last frames are exactly `z0` and `z1`.
    """
    a, b = _as_noise(z0), _as_noise(z1)
    if a.shape[0] != 1 or b.shape[0] != 1:
        raise SynthesisError("interpolate_noise takes one noise at each end (batch of 1)")
    if a.dim() != b.dim():
        size = tuple((a if a.dim() == 4 else b).shape[-2:])
        a, b = noise_map(a, size), noise_map(b, size)
    if a.shape != b.shape:
        raise SynthesisError(f"cannot interpolate noises of shapes {tuple(a.shape)} and {tuple(b.shape)}")
    if n < 1:
        raise SynthesisError("interpolate_noise needs n >= 1")
    b = b.to(a.device)
    t = torch.linspace(0.0, 1.0, n, device=a.device).view(n, *([1] * (a.dim() - 1)))
    if mode == "linear":
        out = a + t * (b - a)
    elif mode == "slerp":
        na, nb = a.norm(dim=1, keepdim=True), b.norm(dim=1, keepdim=True)
        cos = ((a / na.clamp_min(1e-12)) * (b / nb.clamp_min(1e-12))).sum(1, keepdim=True).clamp(-1, 1)
        omega = torch.acos(cos)
        so = torch.sin(omega)
        lin = so.abs() < 1e-6
        wa = torch.where(lin, 1 - t, torch.sin((1 - t) * omega) / torch.where(lin, 1.0, so))
        wb = torch.where(lin, t, torch.sin(t * omega) / torch.where(lin, 1.0, so))
        out = wa * a + wb * b
    else:
        raise SynthesisError(f"unknown interpolation mode {mode!r}: use linear or slerp")
    out = torch.where(a == b, a, out)  # noise shared by both ends stays exactly (local interpolation)
    out[0], out[-1] = a[0], b[0]
    return out


# ------------------------------------------------------------------------------------------------
# synthesis
# ------------------------------------------------------------------------------------------------
@torch.no_grad()
def synthesize(model, label, z=None, seed: Union[None, int, Sequence[int]] = None,
               generator: Optional[torch.Generator] = None,
               batch_size: Optional[int] = None) -> torch.Tensor:
    """Images for a label map: float32 (B, 3, H, W) in [-1, 1], on the CPU.

    `model`: an `OASISModel` (or a bare Generator in eval mode). `label`: model ids (H, W) or
    (B, H, W) (numpy or tensor) or a one-hot (B, N, H, W) tensor. `z`: (B, z_dim) or spatial
    (B, z_dim, H, W) noise (numpy or tensor, any device); a label batch of 1 with K noises gives K
    images of that label, and one noise is shared by a batch of labels. Without `z`, noise is drawn
    with `sample_noise(model, B, seed, generator=generator)`. `batch_size` splits the forward pass
    into chunks (same images: the generator is in eval mode).
    """
    label = generator_input(model, label)
    gen = _generator(model)
    b, h, w = label.shape[0], label.shape[-2], label.shape[-1]
    if z is None:
        z = sample_noise(model, b, seed=seed, generator=generator)  # a list of seeds sets the batch
    elif seed is not None or generator is not None:
        raise SynthesisError("give either z or seed/generator, not both")
    z = _as_noise(z)
    if z.shape[1] != gen.z_dim:
        raise SynthesisError(f"noise has z_dim {z.shape[1]} (shape {tuple(z.shape)}), this model "
                             f"uses z_dim {gen.z_dim}")
    if z.dim() == 4 and tuple(z.shape[-2:]) != (h, w):
        raise SynthesisError(f"spatial noise is {z.shape[-2]}x{z.shape[-1]}, the label map is {h}x{w}")
    nb = max(label.shape[0], z.shape[0])
    for what, k in (("label", label.shape[0]), ("noise", z.shape[0])):
        if k not in (1, nb):
            raise SynthesisError(f"batch sizes differ: {label.shape[0]} label maps, {z.shape[0]} noises "
                                 "(one of them may be 1)")
    if label.shape[0] != nb:
        label = label.expand(nb, *label.shape[1:])
    if z.shape[0] != nb:
        z = z.expand(nb, *z.shape[1:])
    dev = _device(model)
    step = nb if not batch_size or batch_size <= 0 else int(batch_size)
    out = []
    for i in range(0, nb, step):
        out.append(gen(label[i:i + step].contiguous(), z[i:i + step].to(dev).contiguous()).float().cpu())
    return torch.cat(out)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Images in [-1, 1], (3, H, W) or (B, 3, H, W) -> uint8 (..., H, W, 3)."""
    return to_uint8_image(images)


def to_pil(images: torch.Tensor) -> list:
    """Images in [-1, 1], (B, 3, H, W) -> a list of PIL images."""
    from PIL import Image

    arr = to_uint8(images if images.dim() == 4 else images[None])
    return [Image.fromarray(a) for a in arr]


# ------------------------------------------------------------------------------------------------
# the methods of OASISModel
# ------------------------------------------------------------------------------------------------
class SynthesisMixin:
    """Synthesis methods of `OASISModel` (self has `.generator` and `.config`)."""

    def synthesize(self, label, z=None, seed=None, generator=None, batch_size=None) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] on the CPU; see `oasisgan.synthesis.synthesize`."""
        return synthesize(self, label, z=z, seed=seed, generator=generator, batch_size=batch_size)

    def sample_noise(self, batch: int = 1, seed=None, size=None, generator=None,
                     per_pixel: bool = False) -> torch.Tensor:
        """(batch, z_dim) or (batch, z_dim, H, W) CPU noise; see `oasisgan.synthesis.sample_noise`."""
        return sample_noise(self, batch, seed=seed, size=size, generator=generator, per_pixel=per_pixel)

    def class_mask(self, label, classes) -> torch.Tensor:
        """Bool mask of the pixels of `classes` (ids or names of this model's classes)."""
        return class_mask(label, classes, self.config.class_names, self.config.semantic_nc)

    def resample_classes(self, label, z, classes, seed=None, generator=None) -> torch.Tensor:
        """Noise `z` with new noise where `label` has one of `classes`: (B, z_dim, H, W)."""
        return resample_region(z, self.class_mask(label, classes), seed=seed, generator=generator)

    def prepare_label(self, label, name=None) -> torch.Tensor:
        """Checked one-hot (B, N, H, W) on the model's device; see `oasisgan.synthesis.prepare_label`."""
        return prepare_label(self, label, name)

    def read_label(self, path, size=None) -> np.ndarray:
        """A label PNG (dataset ids or palette colours) -> model ids (H, W)."""
        return read_label(path, self.config, size)

    resample_region = staticmethod(resample_region)
    mix_noise = staticmethod(mix_noise)
    interpolate_noise = staticmethod(interpolate_noise)
    noise_map = staticmethod(noise_map)


# ------------------------------------------------------------------------------------------------
# noise files
# ------------------------------------------------------------------------------------------------
def save_noise(path: Union[str, Path], z) -> Path:
    """Save one noise or a batch: `.npy` (plain), `.npz` (compressed, key 'z': spatial maps of a few
    pieces compress to almost nothing) or `.pt` (a tensor). Returns the path."""
    path = Path(path)
    arr = (z.detach().float().cpu() if torch.is_tensor(z) else torch.as_tensor(np.asarray(z)).float())
    if path.suffix == ".pt":
        torch.save(arr.clone(), path)
    elif path.suffix == ".npz":
        np.savez_compressed(path, z=arr.numpy())
    else:
        np.save(path, arr.numpy())
    return path


def load_noise(path: Union[str, Path], z_dim: Optional[int] = None,
               size: Optional[Size] = None) -> torch.Tensor:
    """Read noise saved by `save_noise`/`oasis synthesize` (or any .npy/.npz/.pt array):
    (K, z_dim) or (K, z_dim, H, W) float32 (a single noise gets K = 1). Checks z_dim and, for
    spatial noise, the size; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise SynthesisError(f"{path}: noise file not found")
    try:
        if path.suffix == ".pt":
            obj = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(obj, dict):
                obj = obj.get("z", next(iter(obj.values()), None))
            arr = obj
        else:
            obj = np.load(path, allow_pickle=False)
            if isinstance(obj, np.lib.npyio.NpzFile):
                keys = list(obj.keys())
                arr = obj["z"] if "z" in keys else obj[keys[0]]
            else:
                arr = obj
    except Exception as e:
        raise SynthesisError(f"{path}: cannot read noise file ({e.__class__.__name__}: {e}); expected a "
                             ".npy, .npz or .pt array") from None
    try:
        z = _as_noise(arr)
    except SynthesisError as e:
        raise SynthesisError(f"{path}: {e}") from None
    if z_dim is not None and z.shape[1] != z_dim:
        raise SynthesisError(f"{path}: noise has shape {tuple(z.shape)}, but this model uses z_dim "
                             f"{z_dim}: expected ({z_dim},), (K, {z_dim}), ({z_dim}, H, W) or "
                             f"(K, {z_dim}, H, W)")
    if size is not None and z.dim() == 4 and tuple(z.shape[-2:]) != tuple(size):
        raise SynthesisError(f"{path}: spatial noise is {z.shape[-2]}x{z.shape[-1]}, the label map is "
                             f"{size[0]}x{size[1]}")
    if not torch.isfinite(z).all():
        raise SynthesisError(f"{path}: noise holds NaN or inf values")
    return z
