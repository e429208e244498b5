"""Pretrained models in one line: a registry, a download cache, and `from_pretrained`.

`from_pretrained(name_or_path)` accepts
  - a registry name: the official OASIS checkpoints (`ade20k`, `cityscapes`, `coco-stuff`) or a
    name from the user's registry file; downloaded once (resumable, with a progress bar),
    converted with the official import (`oasisgan.loading.official`) and cached as a `save_pretrained`
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

Its parts, one concern each: `registry` (the names), `cache` (where models live on disk),
`ledger` (checksums), `download` (resumable HTTP), `archive` (the official zips); this module
puts them together: download or import, verify, convert once, cache.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from ..config import DATA_DEFINED_PRESETS
from ..data import config_for_root
from ..errors import ChecksumError, DownloadError, PretrainedError
from .archive import extract_official, iterations
from .cache import archive_path, cached_model, converted_from, locked, model_dir, pretrained_dir
from .checkpoint import TMP_SUFFIX, CheckpointError, remove_stale_temporaries, write_json
from .download import download
from .hub import hub_download, is_pretrained_dir
from .ledger import check_sum_text, checksums_path, expected_checksum, record_checksum, recorded_checksums
from .model import load
from .official import convert_official
from .registry import BUILTIN, HUB_ID, NAME, ZOO, Entry, entry_for_archive, registry, registry_file
from .weights import sha256_of

__all__ = ["from_pretrained", "resolve", "fetch", "import_archive", "remove", "list_models", "download",
           "registry", "registry_file", "model_dir", "pretrained_dir", "Entry", "BUILTIN", "ZOO",
           "PretrainedError", "DownloadError", "ChecksumError"]

CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pth", ".zip", ".safetensors", ".json")


def _manual_hint(entry: Entry) -> str:
    name_arg = "" if entry_for_archive(entry.archive or "") == entry else f" --name {entry.name}"
    return (f"download {entry.archive} by hand from {entry.page or entry.url} and run: "
            f"oasis pretrained import {entry.archive}{name_arg}")


def _convert_into_cache(entry: Entry, source: Path, archive_sha: Optional[str],
                        preset: Optional[str] = None, overrides: Optional[Dict[str, Any]] = None,
                        which: Optional[str] = None) -> Path:
    """Official archive (or extracted run folder) -> models/NAME as a save_pretrained folder."""
    tmp_root = pretrained_dir() / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(tmp_root)  # of imports killed mid-way (their process is gone)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.{os.getpid()}.", suffix=TMP_SUFFIX, dir=tmp_root))
    try:
        if source.is_dir():
            run, which_used = source, which or entry.which
        else:
            run, which_used = extract_official(source, tmp, which or entry.which)
        opts = dict(entry.overrides)
        opts.update(overrides or {})
        ckpt = convert_official(run, tmp / "model.ckpt", which=which_used, preset_name=preset or entry.preset, **opts)
        model = load(ckpt, discriminator=True)
        model.config = _with_class_names(model.config)
        card = {"name": entry.name, "iterations": iterations(run, which_used), "metrics": entry.metrics,
                "metrics_source": entry.metrics_source, "license": entry.license,
                "source": f"{entry.archive or source.name} ({which_used}_{'EMA' if model.config.ema else 'G'}.pth"
                          + (f", sha256 {archive_sha}" if archive_sha else "") + ")"}
        out = model.save_pretrained(model_dir(entry.name), discriminator=True, card=card, force=True)
        write_json(out / "source.json", {"name": entry.name, "archive": entry.archive or source.name,
                                         "sha256": archive_sha, "url": entry.url, "which": which_used})
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _with_class_names(cfg):
    """Benchmark models get their dataset's class names and palette (the painter shows them)."""
    if cfg.class_names is not None or cfg.preset in DATA_DEFINED_PRESETS:
        return cfg
    ref = config_for_root(cfg.preset)
    if ref.semantic_nc != cfg.semantic_nc:
        return cfg
    return cfg.replace(class_names=ref.class_names, palette=cfg.palette or ref.palette)


def _cached(name: str, sha256: Optional[str] = None) -> Optional[Path]:
    """The cached model of `name`, refused when it was converted from another archive than the pinned one."""
    d = cached_model(name)
    if d is not None and sha256:
        made_from = converted_from(d)
        if made_from and made_from != check_sum_text(sha256):
            raise ChecksumError(f"the cached model {d} was converted from an archive with sha256 {made_from}, "
                                f"not the pinned {sha256}; remove it with: oasis pretrained remove {name}")
    return d


def fetch(entry: Entry, sha256: Optional[str] = None, progress: bool = True) -> Path:
    """The cached model folder of a registry entry with an archive: download, verify, convert
    once; later calls return the cached folder without any request."""
    if not entry.url or not entry.archive:
        raise PretrainedError(f"registry entry {entry.name!r} has no url (and no path or hub id)")
    with locked(entry.name):
        hit = _cached(entry.name, sha256)
        if hit is not None:
            return hit
        expected, where = expected_checksum(entry, sha256)
        archive = archive_path(entry.archive)
        if not archive.is_file():
            try:
                download(entry.url, archive, progress=progress)
            except DownloadError as e:
                raise DownloadError(f"cannot download {entry.name!r} from {entry.url} ({e}); offline? "
                                    + _manual_hint(entry)) from None
        return _verify_and_convert(entry, archive, expected, where, own_file=True)


def _verify_and_convert(entry: Entry, archive: Path, expected: Optional[str], where: str, own_file: bool,
                        **convert_kw: Any) -> Path:
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
            record_checksum(entry.archive, actual, entry.url)
        if not expected:
            print(f"oasisgan: recorded sha256 {actual} of {entry.archive} in {checksums_path()}; later "
                  f"downloads are checked against it (pin it with --sha256 or in {registry_file()})",
                  file=sys.stderr)
    return out


def _import_entry(path: Path, name: Optional[str] = None) -> Entry:
    """The registry entry an archive (or unzipped folder) is imported as: --name, else the entry
    whose archive has this file name, else `oasis_<name>_pretrained` or the file's stem."""
    entries = registry()
    entry = entries.get(name) if name else \
        entry_for_archive(path.name) or entry_for_archive(path.name + ".zip")
    if entry is None and not name:
        stem = path.name[:-4] if path.name.endswith(".zip") else path.name
        m = re.fullmatch(r"oasis_(.+)_pretrained", stem)
        name = m.group(1) if m else stem
        entry = entries.get(name)
    if entry is None:
        if not NAME.match(name or ""):
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
    with locked(entry.name):
        if path.is_dir():
            return _convert_into_cache(entry, path, None, preset=preset, overrides=overrides, which=which)
        expected, where = expected_checksum(entry, sha256)
        return _verify_and_convert(entry, path, expected, where, own_file=False, preset=preset,
                                   overrides=overrides, which=which)


def _archive_on_disk(path: Path, sha256: Optional[str]) -> Path:
    """`--checkpoint some/oasis_ade20k_pretrained.zip`: converted on first use, then the cached
    model for as long as the file is the one it was converted from."""
    entry = _import_entry(path)
    hit = _cached(entry.name, sha256)
    if hit is not None:
        made_from = converted_from(hit)
        if made_from and made_from == sha256_of(path):
            return hit
    return import_archive(path, sha256=sha256)


# --- resolving any name -----------------------------------------------------------------------
def resolve(name_or_path: Union[str, Path], sha256: Optional[str] = None, progress: bool = True,
            discriminator: bool = True, revision: Optional[str] = None) -> Path:
    """A local file or folder that `oasisgan.load` reads, for anything `from_pretrained` takes."""
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
    if NAME.match(text) and (text in registry() or _cached(text) is not None):
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
    if HUB_ID.match(text):
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
    local = resolve(name_or_path, sha256=sha256, progress=progress, discriminator=discriminator,
                    revision=revision)
    return load(local, device=device, discriminator=discriminator, allow_nonfinite=allow_nonfinite)


def remove(name: str) -> List[Path]:
    """Delete a name's cached model and any partial download; returns what was removed. `name`
    must be a registry name or a model in the cache (`list_models`), never a path: nothing
    outside the cache is ever deleted."""
    entry = registry().get(name) if NAME.match(name or "") else None
    if entry is None and not (NAME.match(name or "") and model_dir(name).is_dir()):
        known = ", ".join(r["name"] for r in list_models())
        raise PretrainedError(f"{name!r} is not a model name of the registry or the cache ({known}); "
                              "`oasis pretrained remove` takes a name from `oasis pretrained list`, not a path")
    removed = []
    targets = [model_dir(name)]
    if entry is not None and entry.archive:
        a = archive_path(entry.archive)
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
    imported = sorted(p.name for p in models.iterdir() if p.is_dir() and NAME.match(p.name)
                      and p.name not in entries) if models.is_dir() else []  # (not temporaries: .NAME.*)
    for name in list(entries) + imported:
        e = entries.get(name) or Entry(name=name, description="imported", origin="imported")
        expected = None
        if e.kind == "archive" and e.archive:
            expected = e.sha256 or recorded.get(e.archive, {}).get("sha256")
        part = archive_path(e.archive).with_name(e.archive + ".part") if e.archive else None
        rows.append({
            "name": name, "kind": e.kind, "origin": e.origin, "description": e.description,
            "source": e.path or e.hub or e.url or "", "preset": e.preset,
            "cached": (model_dir(name).is_dir() and (model_dir(name) / "config.json").is_file())
            or (e.kind == "path" and (Path(e.path).expanduser() / "config.json").is_file()),
            "partial_download": bool(part and part.exists()),
            "sha256": expected, "path": str(model_dir(name)),
        })
    return rows
