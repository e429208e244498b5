"""The official OASIS archives: find and extract the run inside a zip, safely."""
from __future__ import annotations

import re
import shutil
import zipfile
import zlib
from pathlib import Path
from typing import Dict, Optional, Tuple

from ..errors import PretrainedError

_MEMBER = re.compile(r"^(?P<prefix>(?:.*/)?)models/(?P<which>[^/]+)_(?P<part>G|EMA|D)\.pth$")
_RUN_FILES = ("opt.pkl", "opt.txt", "best_iter.txt", "latest_iter.txt")


def extract_official(archive: Path, out: Path, which: str) -> Tuple[Path, str]:
    """Extract the official run inside `archive` (only the files the import reads, written under
    names of ours, so no member path can escape `out`). Returns (run folder, which)."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise PretrainedError(f"{archive} is not a zip archive ({e})") from None
    with zf:
        found: Dict[Tuple[str, str], Dict[str, str]] = {}
        for name in zf.namelist():
            m = _MEMBER.match(name)
            if m:
                found.setdefault((m["prefix"], m["which"]), {})[m["part"]] = name
        if not found:
            raise PretrainedError(f"{archive} holds no official checkpoint (no models/<which>_G.pth or "
                                  f"_EMA.pth; members: {', '.join(zf.namelist()[:6])} ...)")
        usable = {k: v for k, v in found.items() if "G" in v or "EMA" in v}
        order = [which, "best", "latest"]
        key = next((k for w in order for k in usable if k[1] == w), None) or sorted(usable)[-1]
        prefix, which = key
        run = out / "run"
        (run / "models").mkdir(parents=True)
        names = set(zf.namelist())
        members = [(m, run / "models" / f"{which}_{part}.pth") for part, m in found[key].items()]
        members += [(prefix + f, run / f) for f in _RUN_FILES if prefix + f in names]
        for member, dest in members:
            try:
                with zf.open(member) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:  # bad CRC, cut off
                raise PretrainedError(f"{archive} is damaged: member {member}: {e} (download it again)") from None
    return run, which


def iterations(run: Path, which: str) -> Optional[int]:
    """The training iteration of checkpoint `which` of an official run, when the run says it."""
    if which.isdigit():
        return int(which)
    f = run / f"{which}_iter.txt"
    try:
        return int(f.read_text().strip())
    except (OSError, ValueError):
        return None
