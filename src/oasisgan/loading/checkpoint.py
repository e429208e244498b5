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

import glob
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Dict, Optional, Union

import torch

from .. import __version__
from ..errors import OASISError, first_line, is_write_error, os_error_in

FORMAT, VERSION = "oasisgan", 1


class CheckpointError(OASISError, RuntimeError):
    """A checkpoint that cannot be read; the message names the file."""


class CheckpointWriteError(CheckpointError):
    """A save that failed for want of room or rights (disk full, read-only, no permission); the
    file it would have replaced is untouched. `reason`: the system's words for it."""

    def __init__(self, path: Union[str, Path], reason: str, kept: Optional[str] = None):
        path = Path(path)
        self.path, self.reason = path, reason
        if kept is None:
            kept = f"the previous {path.name} there is kept" if path.is_file() else "nothing was written"
        super().__init__(f"cannot write {path.name} to {path.parent}: {reason}; {kept}")


def atomic_save(obj: Any, path: Union[str, Path]) -> None:
    """torch.save through `atomic_write`."""
    atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write(path: Union[str, Path], write: Callable[[IO], None], text: bool = False) -> None:
    """`write(f)` to a temporary file in the same folder, fsync, then rename over `path`.

    A crash or SIGKILL at any moment leaves either the previous file or the new one, never a
    truncated one. The one way oasisgan writes checkpoints, configs and records. Leftover
    temporaries of earlier writes of the same file, whose process is gone, are removed first.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path.parent, prefix=path.name)  # only this file's: the folder may be the user's
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=TMP_SUFFIX, dir=path.parent)
    except OSError as e:
        if is_write_error(e):
            raise CheckpointWriteError(path, e.strerror or str(e)) from None
        raise
    try:
        with os.fdopen(fd, "w" if text else "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if is_write_error(e):  # torch raises "unexpected pos" from the OSError of the write: one line
            raise CheckpointWriteError(path, os_error_in(e).strerror or str(os_error_in(e))) from None
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def write_json(path: Union[str, Path], data: Any) -> None:
    """`data` as indented JSON (keys sorted) through `atomic_write`."""
    atomic_write(path, lambda f: f.write(json.dumps(data, indent=2, sort_keys=True) + "\n"), text=True)


TMP_SUFFIX = ".tmp"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(folder: Union[str, Path], prefix: Optional[str] = None) -> int:
    """Delete the temporaries of saves that were killed mid-write (``.<name>.<pid>.<rand>.tmp``
    whose process is gone; older names without a pid too): files of a checkpoint save, folders of
    a save_pretrained or an import. Each is a whole model's size. `prefix`: only those of the
    output `<prefix>` (in a folder that is not all ours). Returns how many were removed."""
    removed = 0
    for p in Path(folder).glob(f".{glob.escape(prefix)}.*{TMP_SUFFIX}" if prefix else ".*" + TMP_SUFFIX):
        parts = p.name[1:-len(TMP_SUFFIX)].split(".")
        if len(parts) < 3:  # not ours: ours are .<file name with extension>[.<pid>].<random>.tmp
            continue
        pid = next((int(x) for x in reversed(parts[:-1]) if x.isdigit()), None)
        if pid is not None and (pid == os.getpid() or _pid_alive(pid)):  # a save in progress
            continue
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed += 1
        except OSError:
            pass
    return removed


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

    return {
        "format": FORMAT,
        "version": VERSION,
        # the model, data and training parts; the runtime switches are not part of a model
        "config": config.to_parts("model", "data", "train") if hasattr(config, "to_parts") else dict(config),
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
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): an interrupted save, copy or download")
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


ALLOW_NONFINITE_ENV = "OASISGAN_ALLOW_NONFINITE"


def check_finite(state: Optional[Dict[str, Any]], path, what: str, allow: Optional[bool] = None) -> None:
    """Refuse weights with NaN/Inf (a diverged run, a bad conversion): they give black images
    without a word. `allow` (default: the OASISGAN_ALLOW_NONFINITE environment variable) loads
    them anyway, for experts who want to look inside."""
    if allow is None:
        allow = os.environ.get(ALLOW_NONFINITE_ENV, "").strip().lower() in ("1", "true", "yes", "on")
    if allow or not state:
        return
    for name, t in state.items():
        if torch.is_tensor(t) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise CheckpointError(f"{path}: the {what} weights hold non-finite values ({bad} NaN/Inf in "
                                  f"'{name}', the first bad tensor): the run that wrote it had diverged. "
                                  f"Load an earlier checkpoint, or set {ALLOW_NONFINITE_ENV}=1 to load it anyway")


def load_weights(module: torch.nn.Module, state: Dict[str, Any], path, what: str) -> None:
    """Load weights, refusing any whose kind of number is not the network's: load_state_dict
    would silently cast int64 weights to float (a model that draws black images)."""
    own = module.state_dict()
    for name, t in state.items():
        ref = own.get(name)
        if torch.is_tensor(t) and torch.is_tensor(ref) and t.is_floating_point() != ref.is_floating_point():
            raise CheckpointError(f"{path}: the {what} weight '{name}' is stored as {str(t.dtype)[6:]}, not "
                                  f"{'floating point' if ref.is_floating_point() else str(ref.dtype)[6:]}: "
                                  "not a model oasisgan wrote, or a broken conversion")
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: the {what} weights do not fit the config: "
                              f"{first_line(e)} ...") from None
