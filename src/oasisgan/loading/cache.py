"""Where pretrained models live on disk, and one process at a time per name.

    $OASISGAN_HOME/pretrained/archives/NAME.zip[.part]   downloads; `.part` until complete
    $OASISGAN_HOME/pretrained/models/NAME/               converted models (save_pretrained folders)
    $OASISGAN_HOME/pretrained/checksums.json             the ledger (oasisgan.loading.ledger)
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Iterator, Optional

from .hub import is_pretrained_dir
from .weights import user_cache_dir


def home() -> Path:
    """$OASISGAN_HOME, else oasisgan's folder in the platform's user cache."""
    return user_cache_dir()


def pretrained_dir() -> Path:
    return home() / "pretrained"


def model_dir(name: str) -> Path:
    return pretrained_dir() / "models" / name


def archive_path(archive: str) -> Path:
    return pretrained_dir() / "archives" / archive


def cached_model(name: str) -> Optional[Path]:
    """The converted model folder of `name`, or None when there is none (yet)."""
    d = model_dir(name)
    return d if is_pretrained_dir(d) else None


def converted_from(folder: Path) -> Optional[str]:
    """The sha256 of the archive a cached model was converted from (its source.json), if known."""
    try:
        return json.loads((folder / "source.json").read_text()).get("sha256")
    except (OSError, ValueError, AttributeError):
        return None


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    """One process at a time downloads/converts a given name (POSIX; elsewhere no lock)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    lock = pretrained_dir() / f".{name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
