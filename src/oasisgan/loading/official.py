"""Import (and export) of checkpoints of the official OASIS code (boschresearch/OASIS).

The official training saves `checkpoints/NAME/models/{best,latest,<N>}_{G,EMA,D}.pth` (plain
state dicts, old-style spectral norm keys `weight_orig/weight_u/weight_v`, SyncBatchNorm
`running_mean/running_var[/num_batches_tracked]`) and `opt.pkl` / `opt.txt` beside `models/`.
Our modules use the official module names, so the mapping is the identity up to the container
variants people meet in practice: a `module.` prefix (DataParallel/DDP), new-style
parametrised spectral norm keys, and BatchNorm files without `num_batches_tracked`.
"""
from __future__ import annotations

import argparse
import io
import pickle
import re
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch

from ..config import OFFICIAL_DATASET_MODES, OFFICIAL_OPTION_NAMES, OASISConfig, preset
from ..errors import OASISError, first_line
from ..labels import one_hot
from ..nn import Discriminator, Generator
from .checkpoint import atomic_save, read_checkpoint, save_checkpoint
from .model import load

State = Dict[str, torch.Tensor]

_NEW_SN = re.compile(r"^(.*)\.parametrizations\.weight\.(original|0\._u|0\._v)$")
_NEW_TO_OLD = {"original": "weight_orig", "0._u": "weight_u", "0._v": "weight_v"}


class OfficialCheckpointError(OASISError):
    """An official checkpoint folder or file that cannot be imported."""


def official_to_ours(state: State, reference: Optional[State] = None) -> State:
    """Map an official (or DataParallel / parametrised-spectral-norm) state dict to our keys.

    With `reference` (our module's state dict), BatchNorm `num_batches_tracked` entries missing
    from old files are filled in with zeros; other mismatches are left for load_state_dict to
    report.
    """
    out: State = {}
    for key, value in state.items():
        if key.startswith("module."):
            key = key[len("module."):]
        m = _NEW_SN.match(key)
        if m:
            key = f"{m.group(1)}.{_NEW_TO_OLD[m.group(2)]}"
        out[key] = value
    if reference is not None:
        for key, value in reference.items():
            if key.endswith("num_batches_tracked") and key not in out:
                out[key] = torch.zeros_like(value)
    return out


def ours_to_official(state: State) -> State:
    """Our state dict in the official layout (the same names: a copy, tensors on the CPU)."""
    return {k: v.detach().cpu().clone() for k, v in state.items()}


class _NamespaceOnly(pickle.Unpickler):
    """Unpickle `opt.pkl` allowing nothing but an argparse.Namespace of plain values."""

    def find_class(self, module: str, name: str):
        if (module, name) == ("argparse", "Namespace"):
            return argparse.Namespace
        raise pickle.UnpicklingError(f"opt.pkl refers to {module}.{name}, which is not allowed")


def read_official_options(run_dir: Union[str, Path]) -> Dict[str, Any]:
    """The official run's options from opt.pkl (restricted unpickling) or opt.txt."""
    run_dir = Path(run_dir)
    pkl, txt = run_dir / "opt.pkl", run_dir / "opt.txt"
    if pkl.is_file():
        try:
            return dict(vars(_NamespaceOnly(io.BytesIO(pkl.read_bytes())).load()))
        except Exception as e:
            if not txt.is_file():
                raise OfficialCheckpointError(f"cannot read {pkl}: {e}") from None
    if txt.is_file():
        opts: Dict[str, Any] = {}
        for line in txt.read_text().splitlines():
            if ":" not in line or line.startswith("-"):
                continue
            key, rest = line.split(":", 1)
            value = rest.split("\t[default:")[0].strip()
            opts[key.strip()] = _parse_txt_value(value)
        return opts
    return {}


def _parse_txt_value(text: str) -> Any:
    if text in ("True", "False"):
        return text == "True"
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def config_from_official(options: Dict[str, Any], preset_name: Optional[str] = None,
                         **overrides: Any) -> OASISConfig:
    """Our config from official options; `preset_name` (or the options' dataset_mode) gives the
    per-dataset values that the official dataloaders set at run time (classes, sizes)."""
    name = preset_name or OFFICIAL_DATASET_MODES.get(str(options.get("dataset_mode", "")))
    if name is None:
        raise OfficialCheckpointError(
            "cannot tell the dataset of this checkpoint: pass --preset (ade20k, cityscapes, coco-stuff, ...)")
    values: Dict[str, Any] = {}
    for off_name, (field_name, conv) in OFFICIAL_OPTION_NAMES.items():
        if off_name in options and field_name not in ("crop_size", "load_size", "aspect_ratio", "semantic_nc"):
            values[field_name] = conv(options[off_name])
    values.update(overrides)
    return preset(name, **values)


def find_official_files(src: Union[str, Path], which: str = "best") -> Tuple[Path, Dict[str, Path]]:
    """Locate `{which}_{G,EMA,D}.pth` under SRC (the run folder or its `models/` folder)."""
    src = Path(src)
    if not src.exists():
        raise OfficialCheckpointError(f"not found: {src}")
    models = src / "models" if (src / "models").is_dir() else src
    run_dir = models.parent if models.name == "models" else models
    files = {part: models / f"{which}_{part}.pth" for part in ("G", "EMA", "D")}
    files = {k: v for k, v in files.items() if v.is_file()}
    if "G" not in files and "EMA" not in files:
        found = sorted(p.name for p in models.glob("*_*.pth"))
        raise OfficialCheckpointError(
            f"no {which}_G.pth or {which}_EMA.pth in {models}"
            + (f" (found: {', '.join(found[:8])})" if found else " (no official .pth files there)"))
    return run_dir, files


def _load_official_file(path: Path) -> State:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise OfficialCheckpointError(f"cannot read {path}: {e.__class__.__name__}: {e}") from None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise OfficialCheckpointError(f"{path} is not a state dict of tensors")
    return state


def convert_official(src: Union[str, Path], out: Union[str, Path], which: str = "best",
                     preset_name: Optional[str] = None, **overrides: Any) -> Path:
    """Convert an official run's checkpoint to our format (see `oasis convert-official`)."""
    run_dir, files = find_official_files(src, which)
    options = read_official_options(run_dir)
    cfg = config_from_official(options, preset_name, **overrides)

    def load_into(module: torch.nn.Module, part: str) -> torch.nn.Module:
        state = official_to_ours(_load_official_file(files[part]), module.state_dict())
        try:
            module.load_state_dict(state)
        except RuntimeError as e:
            raise OfficialCheckpointError(
                f"{files[part]} does not fit the {cfg.preset} architecture (channels_G={cfg.channels_G}, "
                f"classes={cfg.semantic_nc}): {first_line(e)}; check --preset and overrides") from None
        return module

    ema = load_into(Generator.from_config(cfg, init=False), "EMA") if "EMA" in files else None
    gen = load_into(Generator.from_config(cfg, init=False), "G") if "G" in files else None
    disc = load_into(Discriminator.from_config(cfg, init=False), "D") if "D" in files else None
    if ema is None:
        cfg = cfg.replace(ema=False)
    return save_checkpoint(out, config=cfg, ema=ema, generator=gen, discriminator=disc,
                           meta={"converted_from": str(Path(src).resolve()), "which": which,
                                 "official_files": sorted(p.name for p in files.values())})


def export_official(model_ckpt: Union[str, Path], out_dir: Union[str, Path], which: str = "latest") -> Dict[str, Path]:
    """Write our checkpoint as official `models/{which}_{G,EMA,D}.pth` files (the other way)."""
    ckpt = read_checkpoint(model_ckpt)
    models = Path(out_dir) / "models"
    models.mkdir(parents=True, exist_ok=True)
    written = {}
    for part, key in (("G", "generator"), ("EMA", "ema"), ("D", "discriminator")):
        if ckpt.get(key) is not None:
            path = models / f"{which}_{part}.pth"
            atomic_save(ours_to_official(ckpt[key]), path)
            written[part] = path
    return written


@torch.no_grad()
def verify_conversion(src: Union[str, Path], converted: Union[str, Path], which: str = "best",
                      seed: int = 0) -> float:
    """Relative max difference between networks built straight from the official files and the
    converted checkpoint loaded with `oasisgan.load`, in eval mode on one random label map + z."""
    model = load(converted)
    cfg = model.config
    _, files = find_official_files(src, which)
    g = torch.Generator().manual_seed(seed)
    h, w = cfg.height, cfg.width
    label = one_hot(torch.randint(0, cfg.semantic_nc, (1, h, w), generator=g), cfg.semantic_nc)
    z = torch.randn(1, cfg.z_dim, generator=g)
    worst = 0.0
    part = "EMA" if "EMA" in files and cfg.ema else "G"
    ref_g = Generator.from_config(cfg, init=False)
    ref_g.load_state_dict(official_to_ours(_load_official_file(files[part]), ref_g.state_dict()))
    ref_g.eval()
    a, b = ref_g(label, z), model.generator(label, z)
    worst = max(worst, float((a - b).abs().max() / a.abs().max().clamp_min(1e-12)))
    if "D" in files and model.discriminator is not None:
        ref_d = Discriminator.from_config(cfg, init=False)
        ref_d.load_state_dict(official_to_ours(_load_official_file(files["D"]), ref_d.state_dict()))
        ref_d.eval()
        a, b = ref_d(a), model.discriminator(a)
        worst = max(worst, float((a - b).abs().max() / a.abs().max().clamp_min(1e-12)))
    return worst
