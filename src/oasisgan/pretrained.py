"""Pretrained models in one line: a registry, a download cache, and `from_pretrained`.

`from_pretrained(name_or_path)` accepts
  - a registry name: the official OASIS checkpoints (`ade20k`, `cityscapes`, `coco-stuff`) or a
    name from the user's registry file; downloaded once (resumable, with a progress bar),
    converted with the official import (`oasisgan.official`) and cached as a `save_pretrained`
    folder, so every later call reads safetensors from the cache and makes no request;
  - a model imported by hand (`oasis pretrained import ARCHIVE`), by its name;
  - a local path: an oasisgan checkpoint (.ckpt), a `save_pretrained` folder, an official archive;
  - a Hugging Face Hub id `owner/name` (with the optional `hub` extra).
It returns the OASISModel that `oasisgan.load` returns. Every `--checkpoint` of the CLI goes
through it.

Cache (`$OASISGAN_HOME`, default the platform's user cache folder, e.g. ~/.cache/oasisgan):

    pretrained/archives/NAME.zip[.part]   downloads; `.part` until complete and verified
    pretrained/models/NAME/               converted models (config.json, *.safetensors, card)
    pretrained/checksums.json             sha256 of each archive, recorded on first success
    registry.json                         the user's registry (optional, see below)

Checksums: the official archives' sums are not published, so none can be built in. A sum is
taken from, in this order: the `sha256=` argument (`--sha256`), the user's registry file, the
built-in registry, the sum recorded by an earlier successful download. When none exists, the
first download that converts successfully records its sum (and prints it); every later
download or import of that file is verified against it. A file that fails its check is
deleted (or, for a user's own file, left alone) and never converted, so the cache is not
poisoned.

User registry (`$OASISGAN_HOME/registry.json`, or the file named by $OASISGAN_REGISTRY), a JSON
object of name -> fields, merged over the built-in entries:

    {"ade20k":   {"sha256": "<pinned sum>"},
     "mine":     {"path": "/models/my-oasis"},
     "street":   {"hub": "me/oasis-street", "revision": "main"},
     "lab-zip":  {"url": "https://example.org/x.zip", "archive": "x.zip", "preset": "cityscapes",
                  "overrides": {"channels_G": 32}, "sha256": "..."}}
"""
from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

from .checkpoint import atomic_write
from .errors import OASISError

OFFICIAL_PAGE = "https://www.dropbox.com/sh/nf6of02pyk84zjg/AAC8hnnj0T_MAiPx3tzdAyiWa?dl=0"
# A file of the shared folder by its path in it, as a direct download. Not verifiable from here:
# when it stops working, set "url" in the user registry or download by hand and `import`.
_OFFICIAL_FILE = "https://www.dropbox.com/sh/nf6of02pyk84zjg/AAC8hnnj0T_MAiPx3tzdAyiWa/{}?dl=1"
_PAPER = "reported in the OASIS paper (ICLR 2021, Table 2); not re-measured by oasisgan"
_OFFICIAL_LICENSE = "as published with boschresearch/OASIS (its repository is AGPL-3.0); check before use"

CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pth", ".zip", ".safetensors", ".json")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class PretrainedError(OASISError):
    """An unknown name, a bad registry file, an archive that cannot be converted."""


class DownloadError(PretrainedError):
    """A download that failed (offline, refused, HTTP error, cut short too often)."""


class ChecksumError(PretrainedError):
    """A file whose sha256 is not the expected one."""


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
# from the archive's opt.pkl. No sha256 is published: see the module docstring.
BUILTIN: Dict[str, Entry] = {e.name: e for e in (
    _official("ade20k", "oasis_ade20k_pretrained", "ade20k", "official OASIS, ADE20K, 256x256, 151 classes",
              28.3, 48.8),
    _official("cityscapes", "oasis_cityscapes_pretrained", "cityscapes",
              "official OASIS, Cityscapes, 256x512, 35 classes", 47.7, 69.3),
    _official("coco-stuff", "oasis_coco_pretrained", "coco-stuff",
              "official OASIS, COCO-Stuff, 256x256, 183 classes", 17.0, 44.1),
)}

# Models that ship inside the package (`oasisgan/zoo/NAME/`, save_pretrained folders): no download.
ZOO = Path(__file__).resolve().parent / "zoo"
_CAMVID_LICENSE = ("trained on CamVid (CC BY-NC 4.0): the weights are for non-commercial research use; "
                   "oasisgan's code is MIT")
BUILTIN["camvid"] = Entry(name="camvid", description="oasisgan, CamVid street scenes, 96x128, 12 classes "
                          "(trained on 2 CPU cores; shipped in the package)", path=str(ZOO / "camvid"),
                          preset="camvid", license=_CAMVID_LICENSE, origin="built-in (shipped)")

REGISTRY_ENV = "OASISGAN_REGISTRY"


# --- places ---------------------------------------------------------------------------------
def home() -> Path:
    """$OASISGAN_HOME, else oasisgan's folder in the platform's user cache."""
    from .weights import user_cache_dir

    return user_cache_dir()


def pretrained_dir() -> Path:
    return home() / "pretrained"


def registry_file() -> Path:
    return Path(os.environ[REGISTRY_ENV]).expanduser() if os.environ.get(REGISTRY_ENV) else home() / "registry.json"


def model_dir(name: str) -> Path:
    return pretrained_dir() / "models" / name


def _archive_path(archive: str) -> Path:
    return pretrained_dir() / "archives" / archive


# --- registry -------------------------------------------------------------------------------
_ENTRY_FIELDS = {f.name for f in dataclasses.fields(Entry)} - {"name", "origin"}


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
        if not _NAME.match(str(name)) or not isinstance(fields_, dict):
            raise PretrainedError(f"registry file {path}: entry {name!r} must be a name (letters, digits, "
                                  "'.', '_', '-') mapped to an object of fields")
        unknown = sorted(set(fields_) - _ENTRY_FIELDS)
        if unknown:
            raise PretrainedError(f"registry file {path}: entry {name!r} has unknown field(s) "
                                  f"{', '.join(unknown)} (known: {', '.join(sorted(_ENTRY_FIELDS))})")
        base = entries.get(name, Entry(name=name))
        values = dict(fields_)
        if "url" in values and "archive" not in values and base.archive is None:
            values["archive"] = Path(urllib.request.urlparse(values["url"]).path).name or f"{name}.zip"
        entries[name] = dataclasses.replace(base, origin="user registry", **values)
    return entries


def _entry_for_archive(filename: str) -> Optional[Entry]:
    for e in registry().values():
        if e.archive == filename:
            return e
    return None


# --- checksums ------------------------------------------------------------------------------
def _checksums_path() -> Path:
    return pretrained_dir() / "checksums.json"


def recorded_checksums() -> Dict[str, Dict[str, Any]]:
    path = _checksums_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise PretrainedError(f"cannot read {path}: {e} (delete it to record the checksums again)") from None
    return data if isinstance(data, dict) else {}


def _write_json_atomic(path: Path, data: Any) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(data, indent=2, sort_keys=True) + "\n"), text=True)


def _record_checksum(archive: str, sha: str, url: Optional[str]) -> None:
    data = recorded_checksums()
    data[archive] = {"sha256": sha, "url": url, "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    _write_json_atomic(_checksums_path(), data)


def expected_checksum(entry: Entry, sha256: Optional[str] = None) -> Tuple[Optional[str], str]:
    """(sum, where it comes from) for an entry's archive; (None, "") when nothing is known."""
    if sha256:
        return _check_sum_text(sha256), "given with --sha256"
    if entry.sha256:
        where = f"pinned in {registry_file()}" if entry.origin == "user registry" else "built-in registry"
        return _check_sum_text(entry.sha256), where
    rec = recorded_checksums().get(entry.archive or "", {}).get("sha256") if entry.archive else None
    if rec:
        return rec, f"recorded by the first download, in {_checksums_path()}"
    return None, ""


def _check_sum_text(text: str) -> str:
    text = text.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise PretrainedError(f"sha256 must be 64 hexadecimal digits, got {text!r}")
    return text


# --- download -------------------------------------------------------------------------------
def _manual_hint(entry: Entry) -> str:
    name_arg = "" if _entry_for_archive(entry.archive or "") == entry else f" --name {entry.name}"
    return (f"download {entry.archive} by hand from {entry.page or entry.url} and run: "
            f"oasis pretrained import {entry.archive}{name_arg}")


def download(url: str, dest: Path, progress: bool = True, timeout: float = 60.0, max_resumes: int = 5) -> Path:
    """Download `url` to `dest` through `dest.part`, resuming an existing `.part` with an HTTP
    Range request, and again (up to `max_resumes` times) when the connection breaks mid-way.
    `dest` appears (by rename) only when complete; checking it is the caller's job."""
    from tqdm import tqdm

    from . import __version__

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


# --- conversion -----------------------------------------------------------------------------
_MEMBER = re.compile(r"^(?P<prefix>(?:.*/)?)models/(?P<which>[^/]+)_(?P<part>G|EMA|D)\.pth$")
_RUN_FILES = ("opt.pkl", "opt.txt", "best_iter.txt", "latest_iter.txt")


def _extract_official(archive: Path, out: Path, which: str) -> Tuple[Path, str]:
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


def _iterations(run: Path, which: str) -> Optional[int]:
    if which.isdigit():
        return int(which)
    f = run / f"{which}_iter.txt"
    try:
        return int(f.read_text().strip())
    except (OSError, ValueError):
        return None


def _convert_into_cache(entry: Entry, source: Path, archive_sha: Optional[str],
                        preset: Optional[str] = None, overrides: Optional[Dict[str, Any]] = None,
                        which: Optional[str] = None) -> Path:
    """Official archive (or extracted run folder) -> models/NAME as a save_pretrained folder."""
    from .model import load
    from .official import convert_official

    from .checkpoint import TMP_SUFFIX, remove_stale_temporaries

    tmp_root = pretrained_dir() / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(tmp_root)  # of imports killed mid-way (their process is gone)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.{os.getpid()}.", suffix=TMP_SUFFIX, dir=tmp_root))
    try:
        if source.is_dir():
            run, which_used = source, which or entry.which
        else:
            run, which_used = _extract_official(source, tmp, which or entry.which)
        opts = dict(entry.overrides)
        opts.update(overrides or {})
        ckpt = convert_official(run, tmp / "model.ckpt", which=which_used, preset_name=preset or entry.preset, **opts)
        model = load(ckpt, discriminator=True)
        model.config = _with_class_names(model.config)
        card = {"name": entry.name, "iterations": _iterations(run, which_used), "metrics": entry.metrics,
                "metrics_source": entry.metrics_source, "license": entry.license,
                "source": f"{entry.archive or source.name} ({which_used}_{'EMA' if model.config.ema else 'G'}.pth"
                          + (f", sha256 {archive_sha}" if archive_sha else "") + ")"}
        out = model.save_pretrained(model_dir(entry.name), discriminator=True, card=card, force=True)
        _write_json_atomic(out / "source.json", {"name": entry.name, "archive": entry.archive or source.name,
                                                 "sha256": archive_sha, "url": entry.url, "which": which_used})
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _with_class_names(cfg):
    """Benchmark models get their dataset's class names and palette (the painter shows them)."""
    from .config import DATA_DEFINED_PRESETS

    if cfg.class_names is not None or cfg.preset in DATA_DEFINED_PRESETS:
        return cfg
    from .data import config_for_root

    ref = config_for_root(cfg.preset)
    if ref.semantic_nc != cfg.semantic_nc:
        return cfg
    return cfg.replace(class_names=ref.class_names, palette=cfg.palette or ref.palette)


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
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


def _cached(name: str, sha256: Optional[str] = None) -> Optional[Path]:
    from .hub import is_pretrained_dir

    d = model_dir(name)
    if not is_pretrained_dir(d):
        return None
    if sha256:
        try:
            made_from = json.loads((d / "source.json").read_text()).get("sha256")
        except (OSError, ValueError):
            made_from = None
        if made_from and made_from != _check_sum_text(sha256):
            raise ChecksumError(f"the cached model {d} was converted from an archive with sha256 {made_from}, "
                                f"not the pinned {sha256}; remove it with: oasis pretrained remove {name}")
    return d


def fetch(entry: Entry, sha256: Optional[str] = None, progress: bool = True) -> Path:
    """The cached model folder of a registry entry with an archive: download, verify, convert
    once; later calls return the cached folder without any request."""
    if not entry.url or not entry.archive:
        raise PretrainedError(f"registry entry {entry.name!r} has no url (and no path or hub id)")
    with _locked(entry.name):
        hit = _cached(entry.name, sha256)
        if hit is not None:
            return hit
        expected, where = expected_checksum(entry, sha256)
        archive = _archive_path(entry.archive)
        if not archive.is_file():
            try:
                download(entry.url, archive, progress=progress)
            except DownloadError as e:
                raise DownloadError(f"cannot download {entry.name!r} from {entry.url} ({e}); offline? "
                                    + _manual_hint(entry)) from None
        return _verify_and_convert(entry, archive, expected, where, own_file=True)


def _verify_and_convert(entry: Entry, archive: Path, expected: Optional[str], where: str, own_file: bool,
                        **convert_kw: Any) -> Path:
    from .weights import sha256_of

    actual = sha256_of(archive)
    if expected and actual != expected:
        if own_file:
            archive.unlink()
        raise ChecksumError(f"{archive.name} has sha256 {actual}, expected {expected} ({where})"
                            + ("; the download was deleted" if own_file else "")
                            + "; if the published file changed, pin the new sum with --sha256 or in "
                            + f"{registry_file()}, or " + _manual_hint(entry) + " --sha256 SUM")
    try:
        out = _convert_into_cache(entry, archive, actual, **convert_kw)
    except BaseException:
        if own_file and not expected:  # an unverified download that does not convert is not kept
            archive.unlink(missing_ok=True)
        raise
    if own_file:
        archive.unlink(missing_ok=True)  # the converted model is what is kept
    if entry.archive:
        known = recorded_checksums().get(entry.archive, {}).get("sha256")
        if known != actual:
            _record_checksum(entry.archive, actual, entry.url)
        if not expected:
            print(f"oasisgan: recorded sha256 {actual} of {entry.archive} in {_checksums_path()}; later "
                  f"downloads are checked against it (pin it with --sha256 or in {registry_file()})",
                  file=sys.stderr)
    return out


def _import_entry(path: Path, name: Optional[str] = None) -> Entry:
    """The registry entry an archive (or unzipped folder) is imported as: --name, else the entry
    whose archive has this file name, else `oasis_<name>_pretrained` or the file's stem."""
    entries = registry()
    entry = entries.get(name) if name else \
        _entry_for_archive(path.name) or _entry_for_archive(path.name + ".zip")
    if entry is None and not name:
        stem = path.name[:-4] if path.name.endswith(".zip") else path.name
        m = re.fullmatch(r"oasis_(.+)_pretrained", stem)
        name = m.group(1) if m else stem
        entry = entries.get(name)
    if entry is None:
        if not _NAME.match(name or ""):
            raise PretrainedError(f"cannot derive a model name from {path.name}: pass --name NAME")
        return Entry(name=name, archive=path.name if path.is_file() else None, origin="imported")
    if entry.kind != "archive":
        raise PretrainedError(f"{entry.name!r} names a {entry.kind} in the registry, not an archive: "
                              "choose another --name")
    return entry  # its archive name (and so its pinned or recorded sum) stays, whatever the file is called


def import_archive(path: Union[str, Path], name: Optional[str] = None, sha256: Optional[str] = None,
                   preset: Optional[str] = None, overrides: Optional[Dict[str, Any]] = None,
                   which: Optional[str] = None) -> Path:
    """A manually downloaded official archive (or its unzipped run folder) through the same
    checks, conversion and cache as a download. Returns the cached model folder."""
    path = Path(path).expanduser()
    if not path.exists():
        raise PretrainedError(f"not found: {path}")
    entry = _import_entry(path, name)
    with _locked(entry.name):
        if path.is_dir():
            return _convert_into_cache(entry, path, None, preset=preset, overrides=overrides, which=which)
        expected, where = expected_checksum(entry, sha256)
        return _verify_and_convert(entry, path, expected, where, own_file=False, preset=preset,
                                   overrides=overrides, which=which)


def _archive_on_disk(path: Path, sha256: Optional[str]) -> Path:
    """`--checkpoint some/oasis_ade20k_pretrained.zip`: converted on first use, then the cached
    model for as long as the file is the one it was converted from."""
    from .weights import sha256_of

    entry = _import_entry(path)
    hit = _cached(entry.name, sha256)
    if hit is not None:
        try:
            made_from = json.loads((hit / "source.json").read_text()).get("sha256")
        except (OSError, ValueError):
            made_from = None
        if made_from and made_from == sha256_of(path):
            return hit
    return import_archive(path, sha256=sha256)


# --- resolving any name -----------------------------------------------------------------------
def resolve(name_or_path: Union[str, Path], sha256: Optional[str] = None, progress: bool = True,
            discriminator: bool = True, revision: Optional[str] = None) -> Path:
    """A local file or folder that `oasisgan.load` reads, for anything `from_pretrained` takes."""
    from .checkpoint import CheckpointError
    from .hub import hub_download, is_pretrained_dir

    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.is_file():
        return _archive_on_disk(path, sha256) if path.suffix == ".zip" else path
    if path.is_dir() and is_pretrained_dir(path):
        return path
    if path.is_dir() and (path / "models").is_dir():
        raise PretrainedError(f"{path} is an official OASIS run folder: convert it with "
                              f"`oasis pretrained import {path} --name NAME` (or `oasis convert-official`)")
    # A registry name wins over an unrelated folder of the same name (e.g. a dataset `ade20k/`).
    if _NAME.match(text) and (text in registry() or _cached(text) is not None):
        entries = registry()
        entry = entries.get(text)
        if entry is None:
            hit = _cached(text, sha256)
            if hit is not None:  # imported under a name of its own
                return hit
        elif entry.kind == "path":
            if not Path(entry.path).expanduser().exists():
                raise PretrainedError(f"registry entry {text!r} names {entry.path}, which does not exist "
                                      f"(registry file {registry_file()})")
            return resolve(entry.path, sha256=sha256, progress=progress)
        elif entry.kind == "hub":
            return hub_download(entry.hub, revision or entry.revision, discriminator=discriminator)
        else:
            return fetch(entry, sha256=sha256, progress=progress)
    if path.is_dir():
        return path  # `load` says what a model folder must hold
    if path.suffix.lower() in CHECKPOINT_SUFFIXES or text.startswith((".", "~", os.sep)) or text.count("/") > 1:
        raise CheckpointError(f"checkpoint not found: {text}")
    if _HUB_ID.match(text):
        return hub_download(text, revision, discriminator=discriminator)
    raise PretrainedError(f"unknown model {text!r}: not a file or folder, and not a registry name "
                          f"({', '.join(sorted(registry()))}); see `oasis pretrained list`")


def from_pretrained(name_or_path: Union[str, Path], device: Any = "cpu", discriminator: bool = True,
                    sha256: Optional[str] = None, progress: bool = True, revision: Optional[str] = None,
                    allow_nonfinite: Optional[bool] = None):
    """An OASISModel (as `oasisgan.load` returns) from a registry name, a local checkpoint or
    folder, or a Hub id; official checkpoints are downloaded and converted once, then cached.

    >>> model = oasisgan.from_pretrained("ade20k")          # doctest: +SKIP
    >>> images = model.synthesize(label_map, seed=0)        # doctest: +SKIP
    """
    from .model import load

    local = resolve(name_or_path, sha256=sha256, progress=progress, discriminator=discriminator,
                    revision=revision)
    return load(local, device=device, discriminator=discriminator, allow_nonfinite=allow_nonfinite)


def remove(name: str) -> List[Path]:
    """Delete a name's cached model and any partial download; returns what was removed. `name`
    must be a registry name or a model in the cache (`list_models`), never a path: nothing
    outside the cache is ever deleted."""
    entry = registry().get(name) if _NAME.match(name or "") else None
    if entry is None and not (_NAME.match(name or "") and model_dir(name).is_dir()):
        known = ", ".join(r["name"] for r in list_models())
        raise PretrainedError(f"{name!r} is not a model name of the registry or the cache ({known}); "
                              "`oasis pretrained remove` takes a name from `oasis pretrained list`, not a path")
    removed = []
    targets = [model_dir(name)]
    if entry is not None and entry.archive:
        a = _archive_path(entry.archive)
        targets += [a, a.with_name(a.name + ".part")]
    for t in targets:
        if t.is_dir() and not t.is_symlink():
            shutil.rmtree(t)
            removed.append(t)
        elif t.exists() or t.is_symlink():  # a link is removed, never what it points to
            t.unlink()
            removed.append(t)
    return removed


def list_models() -> List[Dict[str, Any]]:
    """Registry entries and imported models, with what is cached."""
    rows = []
    entries = registry()
    recorded = recorded_checksums()
    models = pretrained_dir() / "models"
    imported = sorted(p.name for p in models.iterdir() if p.is_dir() and _NAME.match(p.name)
                      and p.name not in entries) if models.is_dir() else []  # (not temporaries: .NAME.*)
    for name in list(entries) + imported:
        e = entries.get(name) or Entry(name=name, description="imported", origin="imported")
        expected = None
        if e.kind == "archive" and e.archive:
            expected = e.sha256 or recorded.get(e.archive, {}).get("sha256")
        part = _archive_path(e.archive).with_name(e.archive + ".part") if e.archive else None
        rows.append({
            "name": name, "kind": e.kind, "origin": e.origin, "description": e.description,
            "source": e.path or e.hub or e.url or "", "preset": e.preset,
            "cached": (model_dir(name).is_dir() and (model_dir(name) / "config.json").is_file())
            or (e.kind == "path" and (Path(e.path).expanduser() / "config.json").is_file()),
            "partial_download": bool(part and part.exists()),
            "sha256": expected, "path": str(model_dir(name)),
        })
    return rows
