"""The names `from_pretrained` knows: the built-in entries, with the user's registry file over them.

User registry (`$OASISGAN_HOME/registry.json`, or the file named by $OASISGAN_REGISTRY), a JSON
object of name -> fields, merged over the built-in entries:

    {"ade20k":   {"sha256": "<pinned sum>"},
     "mine":     {"path": "/models/my-oasis"},
     "street":   {"hub": "me/oasis-street", "revision": "main"},
     "lab-zip":  {"url": "https://example.org/x.zip", "archive": "x.zip", "preset": "cityscapes",
                  "overrides": {"channels_G": 32}, "sha256": "..."}}
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

from ..errors import PretrainedError
from .cache import home

OFFICIAL_PAGE = "https://www.dropbox.com/sh/nf6of02pyk84zjg/AAC8hnnj0T_MAiPx3tzdAyiWa?dl=0"
# A file of the shared folder by its path in it, as a direct download. Not verifiable from here:
# when it stops working, set "url" in the user registry or download by hand and `import`.
_OFFICIAL_FILE = "https://www.dropbox.com/sh/nf6of02pyk84zjg/AAC8hnnj0T_MAiPx3tzdAyiWa/{}?dl=1"
_PAPER = "reported in the OASIS paper (ICLR 2021, Table 2); not re-measured by oasisgan"
_OFFICIAL_LICENSE = "as published with boschresearch/OASIS (its repository is AGPL-3.0); check before use"

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
REGISTRY_ENV = "OASISGAN_REGISTRY"


@dataclass(frozen=True)
class Entry:
    """One registry name: an archive in the official layout (url/archive), a local folder
    (path) or a Hub repo (hub)."""

    name: str
    description: str = ""
    url: Optional[str] = None  # direct download of the archive
    archive: Optional[str] = None  # its file name (also how `import` recognises it)
    page: Optional[str] = None  # where a person downloads it by hand
    preset: Optional[str] = None
    overrides: Dict[str, Any] = field(default_factory=dict)
    which: str = "best"  # official checkpoint inside: best, latest or an iteration
    sha256: Optional[str] = None
    path: Optional[str] = None
    hub: Optional[str] = None
    revision: Optional[str] = None
    metrics: Dict[str, float] = field(default_factory=dict)
    metrics_source: Optional[str] = None
    license: Optional[str] = None
    origin: str = "built-in"  # built-in | user registry

    @property
    def kind(self) -> str:
        return "path" if self.path else "hub" if self.hub else "archive"


def _official(name: str, folder: str, preset: str, description: str, fid: float, miou: float) -> Entry:
    archive = f"{folder}.zip"
    return Entry(name=name, description=description, url=_OFFICIAL_FILE.format(archive), archive=archive,
                 page=OFFICIAL_PAGE, preset=preset, which="best", metrics={"FID": fid, "mIoU": miou},
                 metrics_source=_PAPER, license=_OFFICIAL_LICENSE)


# The official checkpoints (boschresearch/OASIS README, "Pretrained models"): one zip per
# dataset in a shared folder, each holding `oasis_<dataset>_pretrained/` with
# `models/best_{G,D,EMA}.pth` and the run's `opt.pkl`/`opt.txt`. Their classes and sizes are
# the presets' (the official dataloaders set them at run time); the architecture options come
# from the archive's opt.pkl. No sha256 is published: see oasisgan.loading.ledger.
BUILTIN: Dict[str, Entry] = {e.name: e for e in (
    _official("ade20k", "oasis_ade20k_pretrained", "ade20k", "official OASIS, ADE20K, 256x256, 151 classes",
              28.3, 48.8),
    _official("cityscapes", "oasis_cityscapes_pretrained", "cityscapes",
              "official OASIS, Cityscapes, 256x512, 35 classes", 47.7, 69.3),
    _official("coco-stuff", "oasis_coco_pretrained", "coco-stuff",
              "official OASIS, COCO-Stuff, 256x256, 183 classes", 17.0, 44.1),
)}

# Models that ship inside the package (`oasisgan/zoo/NAME/`, save_pretrained folders): no download.
ZOO = Path(__file__).resolve().parent.parent / "zoo"
_CAMVID_LICENSE = ("trained on CamVid (CC BY-NC 4.0): the weights are for non-commercial research use; "
                   "oasisgan's code is MIT")
BUILTIN["camvid"] = Entry(name="camvid", description="oasisgan, CamVid street scenes, 96x128, 12 classes "
                          "(trained on 2 CPU cores; shipped in the package)", path=str(ZOO / "camvid"),
                          preset="camvid", license=_CAMVID_LICENSE, origin="built-in (shipped)")

_ENTRY_FIELDS = {f.name for f in dataclasses.fields(Entry)} - {"name", "origin"}


def registry_file() -> Path:
    return Path(os.environ[REGISTRY_ENV]).expanduser() if os.environ.get(REGISTRY_ENV) else home() / "registry.json"


def registry() -> Dict[str, Entry]:
    """The built-in entries with the user's registry file merged over them."""
    entries = dict(BUILTIN)
    path = registry_file()
    if not path.is_file():
        return entries
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise PretrainedError(f"cannot read the registry file {path}: {e}") from None
    if not isinstance(data, dict):
        raise PretrainedError(f"registry file {path}: expected a JSON object of name -> fields")
    for name, fields_ in data.items():
        if not NAME.match(str(name)) or not isinstance(fields_, dict):
            raise PretrainedError(f"registry file {path}: entry {name!r} must be a name (letters, digits, "
                                  "'.', '_', '-') mapped to an object of fields")
        unknown = sorted(set(fields_) - _ENTRY_FIELDS)
        if unknown:
            raise PretrainedError(f"registry file {path}: entry {name!r} has unknown field(s) "
                                  f"{', '.join(unknown)} (known: {', '.join(sorted(_ENTRY_FIELDS))})")
        base = entries.get(name, Entry(name=name))
        values = dict(fields_)
        if "url" in values and "archive" not in values and base.archive is None:
            values["archive"] = Path(urllib.parse.urlparse(values["url"]).path).name or f"{name}.zip"
        entries[name] = dataclasses.replace(base, origin="user registry", **values)
    return entries


def entry_for_archive(filename: str) -> Optional[Entry]:
    """The registry entry whose archive has this file name, if any."""
    for e in registry().values():
        if e.archive == filename:
            return e
    return None
