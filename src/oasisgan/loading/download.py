"""Resumable HTTP download to a file that appears only when complete."""
from __future__ import annotations

import http.client
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from .. import __version__
from ..errors import DownloadError


def download(url: str, dest: Path, progress: bool = True, timeout: float = 60.0, max_resumes: int = 5) -> Path:
    """Download `url` to `dest` through `dest.part`, resuming an existing `.part` with an HTTP
    Range request, and again (up to `max_resumes` times) when the connection breaks mid-way.
    `dest` appears (by rename) only when complete; checking it is the caller's job."""
    from tqdm import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    resumes = 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": f"oasisgan/{__version__}"}
        if have:
            headers["Range"] = f"bytes={have}-"
        received = 0
        try:
            try:
                response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
            except urllib.error.HTTPError as e:
                if e.code == 416 and have:  # nothing left to send: the part is whole
                    break
                raise
            with response:
                if have and response.status != 206:  # the server ignored Range: start again
                    have = 0
                length = response.headers.get("Content-Length")
                total = int(length) + have if length is not None else None
                with open(part, "ab" if have else "wb") as f, \
                        tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                             desc=dest.name, disable=not progress, file=sys.stderr, dynamic_ncols=True) as bar:
                    while True:
                        block = response.read(1 << 20)
                        if not block:
                            break
                        f.write(block)
                        received += len(block)
                        bar.update(len(block))
                size = part.stat().st_size
                if total is not None and size < total:
                    raise ConnectionError(f"connection closed after {size} of {total} bytes")
            break
        except (OSError, http.client.HTTPException) as e:  # URLError, timeouts, resets are OSErrors
            # Retry only after progress: a refused or unreachable address fails at once.
            if received > 0 and resumes < max_resumes:
                resumes += 1
                continue
            raise DownloadError(f"{e.__class__.__name__}: {getattr(e, 'reason', None) or e}") from None
    os.replace(part, dest)
    return dest
