"""Models as a folder in the Hugging Face Hub convention: `config.json` + `model.safetensors`.

A folder written by `save_pretrained` holds:

    config.json                the model config (`model_config_dict`) + format fields
    model.safetensors          the generator (the EMA weights when the model has them)
    discriminator.safetensors  optional: the discriminator, for fine-tuning or inspection
    README.md                  a short model card

It is read back by `read_pretrained_dir` (through `oasisgan.load` or `oasisgan.from_pretrained`) without unpickling
anything, so a downloaded folder cannot run code. A Hub repo id is fetched with
`huggingface_hub.snapshot_download` (the optional `hub` extra) and read the same way.
Training checkpoints (`oasisgan.loading.checkpoint`) are unchanged: this is the format for sharing.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import torch

from .. import __version__
from ..config import FIELD_PART, PRESETS, OASISConfig, flat_fields
from ..errors import OASISError, is_write_error
from ..outputs import check_output_dir, write_failed
from .checkpoint import TMP_SUFFIX, check_finite, remove_stale_temporaries

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
DISCRIMINATOR_NAME = "discriminator.safetensors"
CARD_NAME = "README.md"
MODEL_TYPE = "oasis"
FORMAT_VERSION = 1

class PretrainedFormatError(OASISError):
    """A pretrained-model folder (config.json + safetensors) that cannot be read."""


def model_config_dict(config) -> Dict[str, Any]:
    """What config.json stores: the model part of the config (`oasisgan.config.ModelConfig`:
    what rebuilds the networks, class names, palette and resolution)."""
    return config.to_parts("model")["model"]


def config_from_model_dict(data: Mapping[str, Any]):
    """Inverse of `model_config_dict`: the preset's values for the fields config.json does not
    store (so a model resumed for training gets its preset's settings), then the stored ones."""
    values: Dict[str, Any] = dict(PRESETS.get(str(data.get("preset")), {}))
    values.update({k: v for k, v in flat_fields(data).items() if k in FIELD_PART})
    return OASISConfig(**values).validate()


def is_pretrained_dir(path: Union[str, Path]) -> bool:
    path = Path(path)
    return (path / CONFIG_NAME).is_file() and (path / WEIGHTS_NAME).is_file()


def _save_safetensors(state: Dict[str, torch.Tensor], path: Path, what: str) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items() if torch.is_tensor(v)}
    save_file(tensors, str(path), metadata={"format": "pt", "oasisgan": what})


def _card(model, extra: Mapping[str, Any]) -> str:
    c = model.config
    lines = [f"# OASIS model: {c.preset}", "",
             "Semantic image synthesis with OASIS (Sushko et al., ICLR 2021), saved by oasisgan.", "",
             "```python", "import oasisgan", f"model = oasisgan.from_pretrained({extra.get('name', 'PATH')!r})",
             "images = model.synthesize(label_map, seed=0)  # label_map: (H, W) class ids", "```", "",
             "| | |", "|---|---|",
             f"| preset | {c.preset} (dataset layout `{c.dataset}`) |",
             f"| classes | {c.semantic_nc} label ids"
             + (f", don't care = {c.dontcare_label}" if c.dontcare_label is not None else "") + " |",
             f"| resolution | {c.height} x {c.width} (H x W), sizes must be multiples of {c.size_multiple} |",
             f"| generator | channels_G {c.channels_G}, {c.num_res_blocks} blocks, z_dim {c.z_dim}"
             + (", EMA weights" if c.ema else "") + " |",
             f"| palette | {'in config.json (`palette`)' if c.palette else 'none stored (the official colormap is used)'} |"]
    if extra.get("iterations") is not None:
        lines.append(f"| training iterations | {extra['iterations']} |")
    if extra.get("source"):
        lines.append(f"| source | {extra['source']} |")
    metrics = extra.get("metrics") or {}
    if metrics:
        lines += ["", "Evaluation" + (f" ({extra['metrics_source']})" if extra.get("metrics_source") else "") + ":", "",
                  "| metric | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in metrics.items()]
    if c.class_names:
        shown = ", ".join(c.class_names[:12]) + (", ..." if len(c.class_names) > 12 else "")
        lines += ["", f"Classes: {shown} (all {c.semantic_nc} in config.json)."]
    if extra.get("license"):
        lines += ["", f"License of the weights: {extra['license']}"]
    return "\n".join(lines) + "\n"


SAVED_FILES = (CONFIG_NAME, WEIGHTS_NAME, DISCRIMINATOR_NAME, CARD_NAME)  # all save_pretrained writes
_TMP = "oasisgan-save"  # temporaries: .<folder name or _TMP>.<pid>.<random>.tmp


def save_pretrained(model, out_dir: Union[str, Path], discriminator: bool = True,
                    card: Optional[Mapping[str, Any]] = None, force: bool = False) -> Path:
    """Write `model` (an OASISModel) to `out_dir` as config.json + model.safetensors
    [+ discriminator.safetensors] + README.md.

    A new folder is assembled beside `out_dir` and renamed into place, so a crash never leaves a
    half-written model where one is expected. An existing folder must be empty unless `force`;
    then only the files listed in `SAVED_FILES` are replaced there (each by a rename), and
    nothing else in it is touched (oasisgan.outputs). An existing file is never replaced.

    `card`: extra facts for the model card (`name`, `iterations`, `metrics`, `metrics_source`,
    `source`, `license`); iterations default to the checkpoint's `meta["iteration"]`.
    """
    out_dir = check_output_dir(out_dir, SAVED_FILES, force)
    extra = dict(card or {})
    meta = model.meta
    extra.setdefault("iterations", meta.get("iteration"))
    into = out_dir.is_dir()  # write file by file into the existing (empty, or --force) folder
    tmp: Optional[Path] = None
    replaced = []
    try:
        if into:
            remove_stale_temporaries(out_dir, prefix=_TMP)
            tmp = Path(tempfile.mkdtemp(prefix=f".{_TMP}.{os.getpid()}.", suffix=TMP_SUFFIX, dir=out_dir))
        else:
            name = out_dir.name or _TMP
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(out_dir.parent, prefix=name)
            tmp = Path(tempfile.mkdtemp(prefix=f".{name}.{os.getpid()}.", suffix=TMP_SUFFIX, dir=out_dir.parent))
        config = dict(model_type=MODEL_TYPE, format_version=FORMAT_VERSION, oasisgan_version=__version__,
                      **model_config_dict(model.config))
        _save_safetensors(model.generator.state_dict(), tmp / WEIGHTS_NAME,
                          "ema_generator" if model.config.ema else "generator")
        if discriminator and model.discriminator is not None:
            _save_safetensors(model.discriminator.state_dict(), tmp / DISCRIMINATOR_NAME, "discriminator")
        (tmp / CARD_NAME).write_text(_card(model, extra))
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
        if into:
            written = [f for f in SAVED_FILES if (tmp / f).is_file()]
            for f in written:
                os.replace(tmp / f, out_dir / f)
                replaced.append(f)
            stale = out_dir / DISCRIMINATOR_NAME  # of an earlier save: it would not match this model
            if DISCRIMINATOR_NAME not in written and stale.is_file():
                stale.unlink()
            tmp.rmdir()
        else:
            os.replace(tmp, out_dir)
    except BaseException as e:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if is_write_error(e):
            kept = (f"{', '.join(replaced)} had been replaced already" if replaced else
                    "nothing there was changed")
            raise write_failed(e, out_dir, kept) from None
        raise
    return out_dir


def _load_safetensors(path: Path) -> Dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise PretrainedFormatError(f"cannot read {path}: {e}") from None


def read_config(path: Union[str, Path]):
    """The OASISConfig stored in a pretrained folder's config.json."""
    cfg_path = Path(path) / CONFIG_NAME
    try:
        data = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as e:
        raise PretrainedFormatError(f"cannot read {cfg_path}: {e}") from None
    if not isinstance(data, dict) or data.get("model_type", MODEL_TYPE) != MODEL_TYPE:
        raise PretrainedFormatError(f"{cfg_path} is not an OASIS model config (model_type "
                                    f"{data.get('model_type') if isinstance(data, dict) else None!r})")
    if int(data.get("format_version", 1)) > FORMAT_VERSION:
        raise PretrainedFormatError(f"{cfg_path} was written by a newer oasisgan (format_version "
                                    f"{data['format_version']} > {FORMAT_VERSION}); upgrade oasisgan")
    try:
        return config_from_model_dict(data)
    except Exception as e:
        raise PretrainedFormatError(f"{cfg_path}: invalid config: {e}") from None


def read_pretrained_dir(path: Union[str, Path], discriminator: bool = True,
                        allow_nonfinite: Optional[bool] = None) -> Tuple[OASISConfig, Dict[str, torch.Tensor],
                                                                         Optional[Dict[str, torch.Tensor]]]:
    """(config, generator weights, discriminator weights or None) of a `save_pretrained` folder,
    the weights checked finite (`oasisgan.load` builds the model from them)."""
    path = Path(path)
    if not (path / WEIGHTS_NAME).is_file():
        raise PretrainedFormatError(f"{path} has no {WEIGHTS_NAME} (a save_pretrained folder holds "
                                    f"{CONFIG_NAME} and {WEIGHTS_NAME})")
    config = read_config(path)
    state = _load_safetensors(path / WEIGHTS_NAME)
    check_finite(state, path / WEIGHTS_NAME, "generator", allow_nonfinite)
    dstate = None
    if discriminator and (path / DISCRIMINATOR_NAME).is_file():
        dstate = _load_safetensors(path / DISCRIMINATOR_NAME)
        check_finite(dstate, path / DISCRIMINATOR_NAME, "discriminator", allow_nonfinite)
    return config, state, dstate


def hub_download(repo_id: str, revision: Optional[str] = None, discriminator: bool = True) -> Path:
    """Fetch a Hub repo's config, weights and card (huggingface_hub caches and resumes)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise OASISError(f"{repo_id!r} is not a file, a folder or a registry name (oasis pretrained list); "
                         "as a Hugging Face Hub id it needs huggingface_hub: pip install 'oasisgan[hub]'") from None
    patterns = [CONFIG_NAME, WEIGHTS_NAME, CARD_NAME] + ([DISCRIMINATOR_NAME] if discriminator else [])
    try:
        local = snapshot_download(repo_id=repo_id, revision=revision, allow_patterns=patterns)
    except Exception as e:  # offline, unknown repo, gated: huggingface_hub's own message says which
        raise OASISError(f"cannot fetch {repo_id!r} from the Hugging Face Hub: "
                         f"{e.__class__.__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}") from None
    if not is_pretrained_dir(local):
        raise PretrainedFormatError(f"the Hub repo {repo_id!r} has no {CONFIG_NAME} + {WEIGHTS_NAME} "
                                    "(written by oasisgan's save_pretrained)")
    return Path(local)
