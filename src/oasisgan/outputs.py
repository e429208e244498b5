"""Where commands write: nothing is deleted or overwritten that oasisgan did not write.

An output the user names (`--out`) is checked before anything is written: an existing file is
replaced only with `force` (and a folder never replaces a file), an existing folder that holds
anything is written into only with `force`, and then only the files oasisgan writes there are
replaced. A write that fails (disk full, read-only, no permission) becomes one line naming the
folder and what was kept (docs/reliability.md lists every delete and rename with its guard).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence, Union

from .errors import OutputError, first_line, os_error_in


def check_output_file(path: Union[str, Path], force: bool = False) -> Path:
    """`path` may receive a file: it is new, or an existing file and `force` is given."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name for the output")
    if path.exists() and not force:
        raise OutputError(f"{path} exists; choose another name, or give --force to replace it")
    return path


def check_output_dir(path: Union[str, Path], ours: Sequence[str], force: bool = False) -> Path:
    """`path` may receive a folder of the files `ours`: it is new or empty, or it is a folder and
    `force` is given (then only `ours` are replaced there). A file is never replaced by a folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path} exists and is not a folder; choose a new folder name")
    if path.is_dir() and not force:
        present = sorted(p.name for p in path.iterdir())
        if present:
            shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "")
            raise OutputError(f"{path} is a folder that is not empty ({shown}); choose a new folder, or give "
                              f"--force to replace only the files oasisgan writes ({', '.join(ours)})")
    return path


def write_failed(e: BaseException, folder: Union[str, Path], kept: str) -> OutputError:
    """One line for a save that failed in `folder` (disk full, read-only...): why, and what is kept."""
    err = os_error_in(e) or e
    why = getattr(err, "strerror", None) or first_line(err)
    return OutputError(f"cannot write to {os.fspath(folder)}: {why}; {kept}")
