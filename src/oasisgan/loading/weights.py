"""Pretrained weight files: local paths first, the official address when online, checksums always."""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Dict, Optional, Union

import torch

from ..errors import DownloadError, OASISError
from .download import download


class WeightsError(OASISError, RuntimeError):
    """A weight file is missing, unreadable or corrupt; the message says what to do."""


def user_cache_dir() -> Path:
    """oasisgan's folder in the platform's user cache (XDG on Linux, Library/Caches on macOS,
    LOCALAPPDATA on Windows), or $OASISGAN_HOME when set."""
    if os.environ.get("OASISGAN_HOME"):
        return Path(os.environ["OASISGAN_HOME"]).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "oasisgan"
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "oasisgan" / "Cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "oasisgan"


def cache_dir() -> Path:
    """Metric weights: $OASISGAN_CACHE, else the user cache folder."""
    if os.environ.get("OASISGAN_CACHE"):
        return Path(os.environ["OASISGAN_CACHE"]).expanduser()
    return user_cache_dir()


def sha256_of(path: Union[str, Path]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_weights(path: Optional[Union[str, Path]], *, filename: str, url: Optional[str],
                    sha256_prefix: Optional[str], what: str, option: str) -> Path:
    """Return a verified local file for `what`.

    Order: the explicit `path`; the cache (`$OASISGAN_CACHE` or ~/.cache/oasisgan); a download
    from `url`. Offline without the file, the error says where to put it and which option
    names it.
    """
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise WeightsError(f"{what}: file not found: {p} (given with {option})")
        return p
    cached = cache_dir() / filename
    if not cached.is_file():
        if url is None:
            raise WeightsError(f"{what} are needed: pass {option} PATH (no public download exists)")
        try:  # resumable, with a progress bar (the pretrained models' downloader)
            download(url, cached, timeout=30)
        except Exception as e:  # offline, refused, timed out: all say the same to the user
            reason = str(e) if isinstance(e, DownloadError) else f"{e.__class__.__name__}: {e}"
            raise WeightsError(
                f"{what} could not be downloaded from {url} ({reason}).\n"
                f"Download it on a machine that is online and either pass {option} PATH or put it "
                f"at {cached}") from None
    if sha256_prefix and not sha256_of(cached).startswith(sha256_prefix):
        raise WeightsError(f"{what}: checksum mismatch for {cached} (expected sha256 {sha256_prefix}...); "
                           "delete the file and download it again")
    return cached


def load_state_dict_file(path: Union[str, Path], what: str = "weights") -> Dict[str, torch.Tensor]:
    """Load a tensor-only state dict without executing pickled code; unwrap common containers."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{what}: file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsError(f"{what}: cannot read {path}: {e}") from None
    for key in ("state_dict", "model", "model_state"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise WeightsError(f"{what}: {path} does not hold a state dict")
    return {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}
