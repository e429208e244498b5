"""`oasis pretrained`: list, download, import and remove pretrained models (`oasisgan.loading.pretrained`)."""
from __future__ import annotations

import argparse
import json

from .common import add_command_group, config_overrides


def register(sub) -> None:
    actions = add_command_group(
        sub, "pretrained", help="pretrained models: list, download, import an archive, remove",
        description="The official OASIS checkpoints (ade20k, cityscapes, coco-stuff) and your own, by "
                    "name: downloaded once into the cache ($OASISGAN_HOME, default the user cache folder), "
                    "converted, and then usable as `--checkpoint NAME` by every command and as "
                    "oasisgan.from_pretrained(NAME).", dest="action", metavar="ACTION")

    p = actions.add_parser("list", help="registry names, where they come from, what is cached")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=run_list)

    p = actions.add_parser("download", help="download and convert a registry model now (once)",
                           description="Downloads (resumable, with a progress bar), verifies and converts "
                                       "NAME into the cache. Later uses make no request.")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--sha256", default=None, help="the archive's expected sha256 (pins it)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_download)

    p = actions.add_parser("import", help="convert a manually downloaded official archive into the cache",
                           description="Takes oasis_<dataset>_pretrained.zip (or its unzipped folder) through "
                                       "the same checksum check, conversion and cache as a download. The name "
                                       "comes from the archive's file name (oasis_coco_pretrained.zip -> "
                                       "coco-stuff) unless --name is given.")
    p.add_argument("archive", metavar="ARCHIVE", help="the .zip file, or the unzipped official run folder")
    p.add_argument("--name", default=None, help="the name to use with --checkpoint / from_pretrained")
    p.add_argument("--sha256", default=None, help="the archive's expected sha256 (pins it)")
    p.add_argument("--preset", default=None, help="preset of a model that is not in the registry")
    p.add_argument("--which", default=None, help="official checkpoint inside: best (default), latest, N")
    p.add_argument("--set", metavar="FIELD=VALUE", action="append", default=[],
                   help="override a config field of the conversion (repeatable)")
    p.set_defaults(func=run_import)

    p = actions.add_parser("remove", help="delete a model's cached files (converted model, partial download)")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=run_remove)


def run_list(args: argparse.Namespace) -> int:
    from ..loading.pretrained import list_models, pretrained_dir, registry_file

    rows = list_models()
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"cache: {pretrained_dir()}   user registry: {registry_file()}")
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        if r["kind"] == "path":
            state = "local" if r["cached"] else "missing"
        else:
            state = "cached" if r["cached"] else ("partial download" if r["partial_download"] else "not downloaded")
        sha = f"sha256 {r['sha256'][:12]}..." if r["sha256"] else "sha256 not yet recorded" \
            if r["kind"] == "archive" else ""
        print(f"  {r['name']:<{width}}  {state:<16} {r['description'] or r['kind']}")
        print(f"  {'':<{width}}  {r['source']}" + (f"  ({sha})" if sha else ""))
    return 0


def run_download(args: argparse.Namespace) -> int:
    from ..loading.pretrained import resolve

    path = resolve(args.name, sha256=args.sha256, progress=not args.no_progress)
    print(f"{args.name}: {path}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from ..loading.pretrained import import_archive

    path = import_archive(args.archive, name=args.name, sha256=args.sha256, preset=args.preset,
                          overrides=config_overrides(args), which=args.which)
    print(f"imported {args.archive} as {path.name}: {path}")
    print(f"  use it as --checkpoint {path.name} or oasisgan.from_pretrained({path.name!r})")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from ..loading.pretrained import remove

    removed = remove(args.name)
    print("\n".join(f"removed {p}" for p in removed) if removed else f"nothing cached for {args.name!r}")
    return 0
