"""Our checkpoint format: one file that carries its config and its weights.

A checkpoint is a plain `torch.save` of a dict of tensors, numbers, strings and lists, read back
with `weights_only=True`, so loading one never executes pickled code. Keys:

    format, version         "oasisgan", 1
    config                  OASISConfig.to_dict()
    ema                     EMA generator state dict (None when EMA is off)
    generator               generator state dict (None in export-only checkpoints)
    discriminator           discriminator state dict or None
    training                optimiser/scaler/RNG/iteration state for --resume, or None
    meta                    versions and free-form information (e.g. the source of a conversion)
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch

from .errors import first_line

FORMAT, VERSION = "oasisgan", 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read; the message names the file."""


def atomic_save(obj: Any, path: Union[str, Path]) -> None:
    """torch.save to a temporary file in the same folder, fsync, then rename over `path`.

    A crash or SIGKILL at any moment leaves either the previous file or the new one, never a
    truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _cpu(state: Optional[Dict[str, torch.Tensor]]) -> Optional[Dict[str, torch.Tensor]]:
    if state is None:
        return None
    return {k: v.detach().cpu() if torch.is_tensor(v) else v for k, v in state.items()}


def make_checkpoint(config, ema=None, generator=None, discriminator=None,
                    training: Optional[Dict[str, Any]] = None,
                    meta: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Assemble a checkpoint dict from modules (or state dicts)."""
    def state(m):
        if m is None:
            return None
        m = getattr(m, "module", m)  # DDP
        m = getattr(m, "_orig_mod", m)  # torch.compile
        return _cpu(m.state_dict() if hasattr(m, "state_dict") else m)

    from . import __version__

    return {
        "format": FORMAT,
        "version": VERSION,
        "config": config.to_dict() if hasattr(config, "to_dict") else dict(config),
        "ema": state(ema),
        "generator": state(generator),
        "discriminator": state(discriminator),
        "training": training,
        "meta": dict({"oasisgan": __version__, "torch": str(torch.__version__)}, **(meta or {})),
    }


def save_checkpoint(path: Union[str, Path], **kwargs) -> Path:
    atomic_save(make_checkpoint(**kwargs), path)
    return Path(path)


def read_checkpoint(path: Union[str, Path]) -> Dict[str, Any]:
    """Read and check a checkpoint file onto the CPU, whatever device saved it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(
            f"cannot read checkpoint {path}: {e.__class__.__name__}: {first_line(e)}\n"
            "(official OASIS .pth files are converted with `oasis convert-official`)") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an oasisgan checkpoint (official OASIS checkpoints: "
                              "use `oasis convert-official`)")
    if ckpt.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} was written by a newer oasisgan (format version "
                              f"{ckpt['version']} > {VERSION}); upgrade oasisgan")
    if ckpt.get("ema") is None and ckpt.get("generator") is None:
        raise CheckpointError(f"{path} holds no generator weights")
    return ckpt
