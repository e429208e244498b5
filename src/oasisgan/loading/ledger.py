"""The checksum ledger: which sha256 an archive must have, and the sums recorded on first success.

The official archives' sums are not published, so none can be built in. A sum is taken from, in
this order: the `sha256=` argument (`--sha256`), the user's registry file, the built-in registry,
the sum recorded by an earlier successful download (`pretrained/checksums.json`). When none
exists, the first download that converts successfully records its sum; every later download or
import of that file is checked against it.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from ..errors import PretrainedError
from .checkpoint import write_json
from .cache import pretrained_dir
from .registry import Entry, registry_file


def checksums_path() -> Path:
    return pretrained_dir() / "checksums.json"


def recorded_checksums() -> Dict[str, Dict[str, Any]]:
    path = checksums_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise PretrainedError(f"cannot read {path}: {e} (delete it to record the checksums again)") from None
    return data if isinstance(data, dict) else {}


def record_checksum(archive: str, sha: str, url: Optional[str]) -> None:
    data = recorded_checksums()
    data[archive] = {"sha256": sha, "url": url, "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_json(checksums_path(), data)


def check_sum_text(text: str) -> str:
    """A sha256 as the user typed it -> 64 lowercase hex digits, or a one-line error."""
    text = text.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise PretrainedError(f"sha256 must be 64 hexadecimal digits, got {text!r}")
    return text


def expected_checksum(entry: Entry, sha256: Optional[str] = None) -> Tuple[Optional[str], str]:
    """(sum, where it comes from) for an entry's archive; (None, "") when nothing is known."""
    if sha256:
        return check_sum_text(sha256), "given with --sha256"
    if entry.sha256:
        where = f"pinned in {registry_file()}" if entry.origin == "user registry" else "built-in registry"
        return check_sum_text(entry.sha256), where
    rec = recorded_checksums().get(entry.archive or "", {}).get("sha256") if entry.archive else None
    if rec:
        return rec, f"recorded by the first download, in {checksums_path()}"
    return None, ""
