"""Typed configuration and the per-dataset presets of the paper.

A configuration has four parts, one dataclass each: the model (what rebuilds the networks and
reads label maps for them; what a model checkpoint carries), the data, training (losses,
optimisation, schedule) and the runtime (speed and memory switches, not part of a model).
`OASISConfig` holds them and gives flat access, because the official options are flat too: every
field maps one-to-one to an official option (see ``OFFICIAL_OPTION_NAMES``) or is an addition of
ours with a default that keeps the official behaviour. YAML files and `--set` use the flat names.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple, Union

from .allocator import MODES as MALLOC_MODES
from .errors import OASISError


class ConfigError(OASISError, ValueError):
    """A configuration value that cannot work; the message names the field."""


PREPROCESS_MODES = ("resize_and_crop", "scale_shortside_and_crop")


def size_error(height: int, width: int, num_res_blocks: int, training: bool = True) -> str:
    """The one line for a generated size the networks cannot take, with the nearest that work:
    for training both networks' (2**blocks), else the generator's (2**(blocks-1))."""
    m = 2 ** num_res_blocks if training else 2 ** (num_res_blocks - 1)

    def near(v: int):
        lo = max(m, v // m * m)
        return sorted({lo, lo + m} if v % m else {v})

    sizes = [f"{h}x{w}" for h in near(height) for w in near(width)]
    coarser = ""
    if num_res_blocks > 2:
        m2 = m // 2
        if height % m2 == 0 and width % m2 == 0:
            coarser = f"; or num_res_blocks={num_res_blocks - 1}, which takes multiples of {m2}"
    why = (f"the discriminator's U-Net pools {num_res_blocks} times, the generator upsamples "
           f"{num_res_blocks - 1} times" if training else f"the generator upsamples {num_res_blocks - 1} times")
    return (f"the generated size {height}x{width} (HxW, from crop_size={width} and aspect_ratio) does not "
            f"fit the {'networks' if training else 'generator'}: with num_res_blocks={num_res_blocks} both "
            f"sides must be multiples of {m} ({why}); nearest sizes that work: {', '.join(sizes)}{coarser}")


@dataclass
class ModelConfig:
    """What rebuilds the networks and reads label maps for them: what a model checkpoint carries."""

    preset: str = "ade20k"
    dataset: str = "ade20k"  # label layout: ade20k | ade20k-outdoor | cityscapes | coco-stuff | camvid | lvis | custom
    semantic_nc: int = 151  # number of label channels, don't-care included
    dontcare_label: Optional[int] = 0  # label id ignored by the losses (None: every id counts)
    class_names: Optional[List[str]] = None
    palette: Optional[List[List[int]]] = None  # RGB per class id, for colour labels and display
    crop_size: int = 256  # width of the generated image
    aspect_ratio: float = 1.0  # width / height
    # --- generator ---
    channels_G: int = 64
    num_res_blocks: int = 6
    z_dim: int = 64
    noise_3d: bool = True  # official: not --no_3dnoise
    spade_ks: int = 3
    spade_hidden: int = 128
    param_free_norm: str = "syncbatch"  # batch | syncbatch | instance
    spectral_norm: bool = True
    # How G doubles its resolution between blocks: nearest (official) or bilinear (an ablation of
    # the grid-locked checker patterns, docs/quality.md "Periodic artefacts"; no parameters change).
    upsample_G: str = "nearest"
    # Xavier gain of the spectral-normed weights at initialisation (null: 0.02, the official
    # gain of every conv). Spectral norm divides their scale out, so this sets only Adam's
    # relative step: at 0.02 the first steps turn D's weights round, its logits explode and the
    # spike stalls Adam for thousands of iterations (docs/quality.md). The toy preset uses 1.
    sn_init_gain: Optional[float] = None
    # --- discriminator ---
    channels_D: int = 64  # 64 gives the official widths 128,128,256,256,512,512 (and 64 at the end)

    @property
    def height(self) -> int:
        return int(round(self.crop_size / self.aspect_ratio))

    @property
    def width(self) -> int:
        return self.crop_size

    @property
    def size_multiple(self) -> int:
        """The generator's sizes are multiples of this (one 2x upsampling per block but the last)."""
        return 2 ** (self.num_res_blocks - 1)

    @property
    def train_size_multiple(self) -> int:
        """Training sizes are multiples of this: D's U-Net pools 2x in each of its blocks."""
        return 2 ** self.num_res_blocks

    def class_name(self, idx: int) -> str:
        return self.class_names[idx] if self.class_names is not None else f"class_{idx}"


@dataclass
class DataConfig:
    """How training images are read."""

    load_size: int = 286  # training images are resized to this (width) before the random crop
    # resize_and_crop: the official resize to load_size x load_size/aspect_ratio (distorts photos
    # of another aspect ratio); scale_shortside_and_crop: one scale factor that covers that box,
    # then the crop (SPADE's mode; evaluation takes the centre). See oasisgan.data.transforms.
    preprocess_mode: str = "resize_and_crop"
    no_flip: bool = False
    num_workers: int = 4
    # Sparse annotations (oasisgan.data.sparse, docs/sparse.md): keep this fraction of each training
    # label map's regions (or pixels); the rest becomes don't care. 1: the labels as they are.
    annotation_density: float = 1.0
    annotation_unit: str = "regions"  # regions | pixels


@dataclass
class TrainConfig:
    """Losses, optimisation and schedule."""

    class_balancing: bool = True
    # Upper bound on a class's balancing weight (null: none, the official loss). A class with a
    # handful of pixels in a batch gets weight B*H*W / (K * n_c); docs/sparse.md measures it.
    class_weight_cap: Optional[float] = None
    labelmix: bool = True
    lambda_labelmix: float = 10.0
    add_vgg_loss: bool = False
    lambda_vgg: float = 10.0
    vgg_weights: Optional[str] = None  # local path to torchvision-layout VGG19 ImageNet weights
    batch_size: int = 32
    num_epochs: int = 200
    iters: Optional[int] = None  # total iterations; overrides num_epochs when set
    lr_g: float = 1e-4
    lr_d: float = 4e-4
    beta1: float = 0.0
    beta2: float = 0.999
    ema: bool = True
    ema_decay: float = 0.9999
    bn_stats_batches: int = 50  # official: up to 51 batches through the EMA generator in train mode
    # Where the re-collection before a grid, checkpoint or evaluation writes. false: into a copy of
    # the EMA's buffers, so the trained model never depends on the output schedule. true: into the
    # training EMA itself, as the official update_EMA (whose train-mode passes also advance the
    # spectral-norm vectors, so the trained EMA then depends on freq_print/freq_save_*/freq_fid),
    # on its schedule (after iterations 1 and k * freq + 1; an extra EMA step at the end).
    bn_recollect_in_place: bool = False
    seed: int = 42
    freq_print: int = 1000  # sample grid every N iterations
    freq_save_latest: int = 10000
    freq_save_ckpt: int = 20000  # iter_<N>.ckpt
    freq_fid: int = 5000  # evaluation every N iterations (0: off)
    eval_metrics: str = "fid"
    log_every: int = 10


@dataclass
class RuntimeConfig:
    """Speed and memory switches: not part of a model, free to change on resume (opt-in unless
    mathematically identical)."""

    amp: str = "none"  # none | bf16 | fp16
    channels_last: bool = False
    compile: bool = False
    fast_spade: bool = True  # false: the training step runs every op's reference (oasisgan.ops)
    # Adam(fused=True) and the EMA as one lerp pass: the official updates up to float rounding;
    # false: the official per-tensor arithmetic, bit for bit.
    fused_updates: bool = True
    # The N+1 cross-entropy and LabelMix losses as autograd Functions that reuse one buffer for
    # their gradient: the official losses up to float rounding, with fewer logits-sized tensors.
    fused_losses: bool = True
    # The D step's fake, real and mixed batches through D in one call, each with its own
    # spectral-norm power iteration and sigma as in three calls: the same function, batched.
    # "auto": on CPUs where the D step's maps are small (B*H*W <= 16384: 64x64 at batch 4),
    # where it measured faster; "on" | "off" (true / false are read as on / off).
    batch_d_calls: str = "auto"
    # CPU (Linux/glibc) malloc: "reuse" keeps freed memory for reuse instead of new page faults
    # every iteration; "heap" also for blocks over 32 MiB (faster at large batches, more
    # resident memory); "off". No effect on results (oasisgan/allocator.py).
    tune_malloc: str = "reuse"


class Range(NamedTuple):
    """Allowed values of a numeric field: lo..hi, either end open (excluded) or None (no bound)."""

    lo: Optional[float]
    hi: Optional[float]
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, v) -> bool:
        return ((self.lo is None or (v > self.lo if self.lo_open else v >= self.lo))
                and (self.hi is None or (v < self.hi if self.hi_open else v <= self.hi)))

    def __str__(self) -> str:
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.hi is None else f"{self.hi:g}"
        return f"{'(' if self.lo_open or self.lo is None else '['}{lo}, {hi}{')' if self.hi_open or self.hi is None else ']'}"


# The range of every numeric field (its type comes from the dataclasses above): what the
# networks, the optimiser and the data pipeline can work with, generously above the paper's
# values; `validate` refuses anything else by name. Every float must also be finite.
RANGES: Dict[str, Range] = {
    "semantic_nc": Range(2, 65536), "dontcare_label": Range(0, 65535), "crop_size": Range(1, 8192),
    "aspect_ratio": Range(1 / 16, 16), "channels_G": Range(1, 1024), "num_res_blocks": Range(2, 12),
    "z_dim": Range(1, 1024), "spade_ks": Range(1, 15), "spade_hidden": Range(1, 4096),
    "sn_init_gain": Range(0, 100, lo_open=True), "channels_D": Range(1, 1024),
    "load_size": Range(1, 16384), "num_workers": Range(0, 256),
    "annotation_density": Range(0, 1, lo_open=True), "class_weight_cap": Range(0, None, lo_open=True),
    "lambda_labelmix": Range(0, 1e6), "lambda_vgg": Range(0, 1e6), "batch_size": Range(1, 65536),
    "num_epochs": Range(1, 10**6), "iters": Range(1, 10**10), "lr_g": Range(0, 1, lo_open=True),
    "lr_d": Range(0, 1, lo_open=True), "beta1": Range(0, 1, hi_open=True), "beta2": Range(0, 1, hi_open=True),
    "ema_decay": Range(0, 1, hi_open=True), "bn_stats_batches": Range(0, 10**6), "seed": Range(0, 2**32 - 1),
    "freq_print": Range(0, None), "freq_save_latest": Range(0, None), "freq_save_ckpt": Range(0, None),
    "freq_fid": Range(0, None), "log_every": Range(0, None),
}


PARTS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig, "runtime": RuntimeConfig}
# flat field name -> the part that holds it
FIELD_PART: Dict[str, str] = {f.name: part for part, cls in PARTS.items() for f in fields(cls)}
FIELD_NAMES = tuple(FIELD_PART)


class OASISConfig:
    """The four parts of a configuration, each its own dataclass (`model`, `data`, `train`,
    `runtime`), with flat access as the official options are flat: `cfg.channels_G` is
    `cfg.model.channels_G`. Build it from flat fields (`OASISConfig(channels_G=32)`) or parts."""

    __slots__ = tuple(PARTS)

    def __init__(self, **values: Any):
        unknown = sorted(set(values) - set(FIELD_PART) - set(PARTS))
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(unknown)}")
        for part, cls in PARTS.items():
            given = values.get(part)
            if isinstance(given, Mapping):
                given = cls(**given)
            flat = {k: v for k, v in values.items() if FIELD_PART.get(k) == part}
            obj = dataclasses.replace(given, **flat) if given is not None else cls(**flat)
            object.__setattr__(self, part, obj)

    def __getattr__(self, name: str) -> Any:
        if name in PARTS or name.startswith("__"):  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        part = FIELD_PART.get(name, "model" if hasattr(ModelConfig, name) else None)
        if part is None:
            raise AttributeError(f"OASISConfig has no field {name!r}")
        return getattr(object.__getattribute__(self, part), name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in PARTS:
            object.__setattr__(self, name, value)
        elif name in FIELD_PART:
            setattr(getattr(self, FIELD_PART[name]), name, value)
        else:
            raise AttributeError(f"OASISConfig has no field {name!r}")

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, OASISConfig) and all(getattr(self, p) == getattr(other, p) for p in PARTS)

    def __repr__(self) -> str:
        return "OASISConfig(" + ", ".join(f"{p}={getattr(self, p)!r}" for p in PARTS) + ")"

    def __getstate__(self):
        return {p: getattr(self, p) for p in PARTS}

    def __setstate__(self, state) -> None:
        for p in PARTS:
            object.__setattr__(self, p, state[p])

    def validate(self) -> "OASISConfig":
        def bad(name: str, why: str):
            text = repr(getattr(self, name))
            raise ConfigError(f"config field '{name}' = {text if len(text) <= 60 else text[:56] + ' ...'}: {why}")

        self.batch_d_calls = _on_off_auto(self.batch_d_calls)
        for name, t in _field_types().items():  # every field's type, then its range
            why = _type_mismatch(getattr(self, name), t)
            if why:
                bad(name, why)
            value = getattr(self, name)
            if name in RANGES and value is not None and value not in RANGES[name]:
                bad(name, f"must lie in {RANGES[name]}")
        if self.semantic_nc < 2:
            bad("semantic_nc", "needs at least 2 label channels")
        if self.dontcare_label is not None and not 0 <= self.dontcare_label < self.semantic_nc:
            bad("dontcare_label", f"must lie in 0..{self.semantic_nc - 1} or be null")
        if self.num_res_blocks < 2:
            bad("num_res_blocks", "must be at least 2")
        m = self.size_multiple
        if self.crop_size % m or self.height % m:
            raise ConfigError(size_error(self.height, self.width, self.num_res_blocks, training=False))
        if self.preprocess_mode not in PREPROCESS_MODES:
            bad("preprocess_mode", f"must be one of {', '.join(PREPROCESS_MODES)}")
        if self.annotation_unit not in ("regions", "pixels"):
            bad("annotation_unit", "must be one of regions, pixels")
        if self.annotation_density < 1 and self.dontcare_label is None:
            bad("annotation_density", "below 1 needs a don't-care id (dontcare_label is null)")
        if self.batch_d_calls not in ("auto", "on", "off"):
            bad("batch_d_calls", "must be one of auto, on, off")
        if self.tune_malloc not in MALLOC_MODES:
            bad("tune_malloc", f"must be one of {', '.join(MALLOC_MODES)}")
        if self.load_size < self.crop_size:
            bad("load_size", f"must be >= crop_size ({self.crop_size})")
        if self.param_free_norm not in ("batch", "syncbatch", "instance"):
            bad("param_free_norm", "must be one of batch, syncbatch, instance")
        if self.upsample_G not in ("nearest", "bilinear"):
            bad("upsample_G", "must be one of nearest, bilinear")
        if self.amp not in ("none", "bf16", "fp16"):
            bad("amp", "must be one of none, bf16, fp16")
        for name in ("channels_G", "channels_D", "z_dim", "batch_size", "spade_hidden"):
            if getattr(self, name) < 1:
                bad(name, "must be positive")
        if self.sn_init_gain is not None and not self.sn_init_gain > 0:
            bad("sn_init_gain", "must be positive (or null for the official 0.02)")
        if not 0.0 <= self.ema_decay < 1.0:
            bad("ema_decay", "must lie in [0, 1)")
        if self.class_names is not None and len(self.class_names) != self.semantic_nc:
            bad("class_names", f"has {len(self.class_names)} names for {self.semantic_nc} classes")
        if self.palette is not None and len(self.palette) != self.semantic_nc:
            bad("palette", f"has {len(self.palette)} colours for {self.semantic_nc} classes")
        if self.palette is not None and any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in self.palette):
            bad("palette", "every colour must be [r, g, b] with values in 0..255")
        return self

    # --- (de)serialisation ---------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        """Every field, flat (config.yaml, `--set`, the official options)."""
        out: Dict[str, Any] = {}
        for p in PARTS:
            out.update(dataclasses.asdict(getattr(self, p)))
        return out

    def to_parts(self, *parts: str) -> Dict[str, Dict[str, Any]]:
        """{"model": {...}, "data": {...}, ...} for the named parts (default: all)."""
        return {p: dataclasses.asdict(getattr(self, p)) for p in (parts or tuple(PARTS))}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], strict: bool = True) -> "OASISConfig":
        """From flat fields, parts (`to_parts`), or both; with `strict=False` unknown fields (of
        other versions) are dropped."""
        flat = flat_fields(data)
        unknown = sorted(set(flat) - set(FIELD_PART))
        if unknown and strict:
            raise ConfigError(f"unknown config field(s): {', '.join(unknown)}")
        return cls(**{k: v for k, v in flat.items() if k in FIELD_PART}).validate()

    def replace(self, **overrides: Any) -> "OASISConfig":
        unknown = sorted(set(overrides) - set(FIELD_PART))
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(unknown)}")
        return OASISConfig(**{p: getattr(self, p) for p in PARTS}, **overrides).validate()

    def class_name(self, idx: int) -> str:
        return self.model.class_name(idx)

    def check_trainable(self) -> "OASISConfig":
        """`validate`, and a generated size the discriminator takes too: training checks this before
        anything is written (a model for synthesis alone needs only the generator's multiple)."""
        self.validate()
        m = self.train_size_multiple
        if self.crop_size % m or self.height % m:
            raise ConfigError(size_error(self.height, self.width, self.num_res_blocks))
        return self


def flat_fields(data: Mapping[str, Any]) -> Dict[str, Any]:
    """A stored config as flat fields: checkpoints since the config split store parts
    ({"model": {...}, ...}), older ones and YAML files flat fields."""
    flat: Dict[str, Any] = {}
    for key, value in data.items():
        if key in PARTS and isinstance(value, Mapping):
            flat.update(value)
        else:
            flat[key] = value
    return flat


def _on_off_auto(value: Any) -> Any:
    """true/false (YAML booleans, older configs) as "on"/"off"; anything else unchanged."""
    if isinstance(value, bool):
        return "on" if value else "off"
    text = str(value).strip().lower()
    return {"true": "on", "1": "on", "yes": "on", "false": "off", "0": "off", "no": "off"}.get(text, text)


def _field_types() -> Dict[str, Any]:
    import typing

    out: Dict[str, Any] = {}
    for cls in PARTS.values():
        out.update(typing.get_type_hints(cls))
    return out


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}


def _type_mismatch(value: Any, t: Any) -> Optional[str]:
    """Why `value` is not of the declared type `t` (None when it is). Strict: the string "false"
    is not a boolean, 16.5 and true are not integers; integers are numbers."""
    import math
    import typing

    args = typing.get_args(t)
    if typing.get_origin(t) is Union and type(None) in args:
        if value is None:
            return None
        t = next(a for a in args if a is not type(None))
    if typing.get_origin(t) in (list, List):
        if not isinstance(value, list):
            return f"must be a list, not {type(value).__name__}"
        for item in value:
            why = _type_mismatch(item, typing.get_args(t)[0])
            if why:
                return f"item {item!r}: {why}"
        return None
    if t is bool:
        ok = isinstance(value, bool)
    elif t is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif t is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            return "must be a finite number"
    else:
        ok = isinstance(value, t)
    return None if ok else f"must be {_TYPE_NAMES.get(t, getattr(t, '__name__', t))}, not {type(value).__name__}"


def parse_value(name: str, text: str) -> Any:
    """Parse a command-line string for field `name` into the type its dataclass declares."""
    import typing

    types = _field_types()
    if name not in types:
        raise ConfigError(f"unknown config field '{name}'")
    t = types[name]
    low = text.strip().lower()
    args = typing.get_args(t)
    if typing.get_origin(t) is Union and type(None) in args:  # Optional[X]
        if low in ("none", "null", ""):
            return None
        t = next(a for a in args if a is not type(None))
    try:
        if t is bool:
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typing.get_origin(t) in (list, List):
            value = json.loads(text)
            if not isinstance(value, list):
                raise ValueError
            return value
        if t in (int, float):
            return t(text)
    except ValueError:
        raise ConfigError(f"config field '{name}': cannot read {text!r} as "
                          f"{getattr(t, '__name__', t)}") from None
    return text


# ----------------------------------------------------------------------------------------------
# Presets: the paper's settings (official config.py + dataloaders) and two of ours.
# ----------------------------------------------------------------------------------------------
PRESETS: Dict[str, Dict[str, Any]] = {
    "ade20k": dict(dataset="ade20k", semantic_nc=151, crop_size=256, load_size=286, aspect_ratio=1.0,
                   lr_g=1e-4, lr_d=4e-4, lambda_labelmix=10.0, ema_decay=0.9999, batch_size=32,
                   num_epochs=200, freq_fid=5000),
    "ade20k-outdoor": dict(dataset="ade20k-outdoor", semantic_nc=151, crop_size=256, load_size=286,
                           aspect_ratio=1.0, lr_g=1e-4, lr_d=4e-4, lambda_labelmix=10.0,
                           ema_decay=0.9999, batch_size=32, num_epochs=200, freq_fid=5000),
    "cityscapes": dict(dataset="cityscapes", semantic_nc=35, crop_size=512, load_size=512, aspect_ratio=2.0,
                       lr_g=4e-4, lr_d=4e-4, lambda_labelmix=5.0, ema_decay=0.999, batch_size=20,
                       num_epochs=200, freq_fid=2500),
    "coco-stuff": dict(dataset="coco-stuff", semantic_nc=183, crop_size=256, load_size=286, aspect_ratio=1.0,
                       lr_g=1e-4, lr_d=4e-4, lambda_labelmix=10.0, ema_decay=0.9999, batch_size=32,
                       num_epochs=100, freq_fid=5000),
    # Users' own data: classes, names and palette come from the dataset's `classes` file.
    "custom": dict(dataset="custom", semantic_nc=0, crop_size=256, load_size=286, aspect_ratio=1.0,
                   lr_g=1e-4, lr_d=4e-4, lambda_labelmix=10.0, ema_decay=0.9999, batch_size=32,
                   num_epochs=200, freq_fid=5000),
    # The embedded toy dataset (`oasis data toy`): sized for a laptop CPU. Each departure from the
    # paper's recipe was measured alone over seeds (docs/quality.md, "The toy recipe against the
    # paper's"): batch 4, lr 8e-4, EMA 0.99 and sn_init_gain 1 (the official 0.02 stalls D) each
    # learn measurably more in 1200 iterations; the BN pass is the official 50 batches (20 did
    # not measurably change a figure).
    "toy": dict(dataset="custom", semantic_nc=0, crop_size=64, load_size=64, aspect_ratio=1.0,
                channels_G=16, channels_D=16, num_res_blocks=4, spade_hidden=32, z_dim=16,
                sn_init_gain=1.0, lr_g=8e-4, lr_d=8e-4, lambda_labelmix=10.0, ema_decay=0.99,
                batch_size=4, num_epochs=200, iters=1200, num_workers=2, freq_print=300,
                freq_save_latest=300, freq_save_ckpt=0, freq_fid=0, bn_stats_batches=50, log_every=10),
}
# CamVid street scenes (SegNet release, 480x360 photos): the CPU recipe of docs/quality.md, chosen
# from measured speed on 2 cores (128x96 keeps the photos' 4:3; 5 blocks fit 96 = 3 x 32; bf16
# autocast 1.6x faster per iteration than float32 there) with the toy's measured optimiser settings.
PRESETS["camvid"] = dict(
    dataset="camvid", semantic_nc=12, dontcare_label=11, crop_size=128, load_size=144,
    aspect_ratio=4 / 3, preprocess_mode="scale_shortside_and_crop", channels_G=16, channels_D=16,
    num_res_blocks=5, spade_hidden=64, z_dim=64, sn_init_gain=1.0, lr_g=8e-4, lr_d=8e-4,
    lambda_labelmix=10.0, ema_decay=0.999, batch_size=4, num_epochs=200, iters=12000, amp="bf16",
    num_workers=1, freq_print=500, freq_save_latest=250, freq_save_ckpt=1000, freq_fid=0,
    bn_stats_batches=20, log_every=10)

# LVIS v1 (oasisgan.data.lvis; the IJCV extension): COCO images, so COCO-Stuff's settings; its
# classes (1203 categories + don't care) come from the annotation file.
PRESETS["lvis"] = dict(PRESETS["coco-stuff"], dataset="lvis", semantic_nc=0)

# Presets whose classes come from the data (`semantic_nc=0` until the classes file is read).
DATA_DEFINED_PRESETS = ("custom", "toy", "lvis")


def preset(name: str, **overrides: Any) -> OASISConfig:
    """The config of a preset, with field overrides applied and validated.

    For ``custom`` and ``toy`` pass ``semantic_nc`` (or use ``oasisgan.data.config_for_root``).
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    values = dict(PRESETS[name], preset=name)
    values.update(overrides)
    if values["semantic_nc"] == 0:
        raise ConfigError(f"preset {name!r} takes its classes from the dataset's classes file: "
                          "give --data-root (or semantic_nc)")
    return OASISConfig(**values).validate()


def load_config_file(path: Union[str, Path]) -> Dict[str, Any]:
    """Read a YAML or JSON file of config fields (a flat mapping)."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml") else json.loads(text)
    except Exception as e:  # yaml and json raise different types
        raise ConfigError(f"config file {path} is not valid {path.suffix[1:].upper()}: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of field: value")
    if "config" in data and isinstance(data["config"], dict):
        data = data["config"]
    unknown = sorted(set(data) - set(FIELD_PART))
    if unknown:
        raise ConfigError(f"config file {path}: unknown field(s) {', '.join(unknown)}")
    floats = {k for k, t in _field_types().items() if t in (float, Optional[float])}
    # YAML 1.1 reads 1e-4 (no dot) as a string: numbers of float fields are read as numbers
    return {k: parse_value(k, v) if k in floats and isinstance(v, str) else v for k, v in data.items()}


# Official option name -> our field (and a converter); used to read opt.pkl / opt.txt.
OFFICIAL_OPTION_NAMES: Dict[str, Tuple[str, Any]] = {
    "semantic_nc": ("semantic_nc", int),
    "crop_size": ("crop_size", int),
    "load_size": ("load_size", int),
    "aspect_ratio": ("aspect_ratio", float),
    "no_flip": ("no_flip", bool),
    "channels_G": ("channels_G", int),
    "num_res_blocks": ("num_res_blocks", int),
    "z_dim": ("z_dim", int),
    "no_3dnoise": ("noise_3d", lambda v: not v),
    "spade_ks": ("spade_ks", int),
    "param_free_norm": ("param_free_norm", str),
    "no_spectral_norm": ("spectral_norm", lambda v: not v),
    "no_balancing_inloss": ("class_balancing", lambda v: not v),
    "no_labelmix": ("labelmix", lambda v: not v),
    "lambda_labelmix": ("lambda_labelmix", float),
    "add_vgg_loss": ("add_vgg_loss", bool),
    "lambda_vgg": ("lambda_vgg", float),
    "batch_size": ("batch_size", int),
    "num_epochs": ("num_epochs", int),
    "lr_g": ("lr_g", float),
    "lr_d": ("lr_d", float),
    "beta1": ("beta1", float),
    "beta2": ("beta2", float),
    "no_EMA": ("ema", lambda v: not v),
    "EMA_decay": ("ema_decay", float),
    "seed": ("seed", int),
    "freq_print": ("freq_print", int),
    "freq_save_ckpt": ("freq_save_ckpt", int),
    "freq_save_latest": ("freq_save_latest", int),
    "freq_fid": ("freq_fid", int),
    "num_workers": ("num_workers", int),
}
OFFICIAL_DATASET_MODES = {"ade20k": "ade20k", "cityscapes": "cityscapes", "coco": "coco-stuff"}
