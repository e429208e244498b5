"""Pretrained registry, download cache and `from_pretrained`, against a real HTTP server on
127.0.0.1 that serves an archive in the official layout (`oasis_<name>_pretrained/models/
best_{G,EMA,D}.pth` + opt.pkl), built from a randomly initialised small official-format model.
The server honours Range requests and can cut a response short. Nothing leaves this machine.
"""
from __future__ import annotations

import argparse
import hashlib
import http.server
import io
import json
import pickle
import socket
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import oasisgan
from oasisgan.cli import main as cli_main
from oasisgan.labels import one_hot
from oasisgan.loading.official import ours_to_official
from oasisgan.loading.pretrained import (ChecksumError, DownloadError, PretrainedError, download, from_pretrained,
                                 list_models, model_dir, pretrained_dir)
from test_official import CH, N, ZD, official_generator_state, ref_generator, rel

ARCHIVE = "oasis_tiny_pretrained.zip"
OVERRIDES = {"semantic_nc": N, "crop_size": 64, "load_size": 64, "channels_D": 2}


def build_archive(seed: int = 0):
    """Bytes of a zip in the official layout, and the official G state it holds."""
    g = torch.Generator().manual_seed(seed)
    gsd = official_generator_state(g)
    torch.manual_seed(seed)
    cfg = oasisgan.preset("ade20k", channels_G=CH, z_dim=ZD, **OVERRIDES)
    dsd = ours_to_official(oasisgan.Discriminator.from_config(cfg).state_dict())
    opt = argparse.Namespace(dataset_mode="ade20k", channels_G=CH, z_dim=ZD, no_3dnoise=False, EMA_decay=0.9999,
                             num_res_blocks=6, param_free_norm="syncbatch", no_spectral_norm=False,
                             name="oasis_tiny_pretrained", gpu_ids="0")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for part, state in (("G", gsd), ("EMA", gsd), ("D", dsd)):
            b = io.BytesIO()
            torch.save(state, b)
            zf.writestr(f"oasis_tiny_pretrained/models/best_{part}.pth", b.getvalue())
        zf.writestr("oasis_tiny_pretrained/opt.pkl", pickle.dumps(opt))
        zf.writestr("oasis_tiny_pretrained/best_iter.txt", "1234\n")
    return buf.getvalue(), gsd


class Server:
    """http.server in a thread: serves `files`, answers `Range: bytes=N-` with 206, and cuts the
    next `cut` responses after half of their body (the connection closes mid-way)."""

    def __init__(self):
        self.files, self.requests, self.cut, self.ignore_range = {}, [], 0, False
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append((self.path, self.headers.get("Range")))
                data = outer.files.get(self.path.split("?")[0].lstrip("/"))
                if data is None:
                    self.send_error(404)
                    return
                start, status = 0, 200
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes=") and not outer.ignore_range:
                    start, status = int(rng[6:].split("-")[0]), 206
                    if start >= len(data):
                        self.send_error(416)
                        return
                body = data[start:]
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if outer.cut > 0:
                    outer.cut -= 1
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def archive():
    return build_archive()


@pytest.fixture(scope="module")
def server(archive):
    s = Server()
    s.files[ARCHIVE] = archive[0]
    yield s
    s.close()


@pytest.fixture
def home(tmp_path, monkeypatch, server, archive):
    h = tmp_path / "home"
    monkeypatch.setenv("OASISGAN_HOME", str(h))
    monkeypatch.delenv("OASISGAN_REGISTRY", raising=False)
    server.requests.clear()
    server.cut, server.ignore_range = 0, False
    server.files[ARCHIVE] = archive[0]
    return h


def write_registry(home: Path, **entries):
    home.mkdir(parents=True, exist_ok=True)
    (home / "registry.json").write_text(json.dumps(entries))


def tiny_entry(server, **extra):
    return dict({"url": server.url(ARCHIVE), "preset": "ade20k", "overrides": OVERRIDES}, **extra)


def closed_port_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/oasis_ade20k_pretrained.zip"


def same_weights(model, gsd):
    state = model.generator.state_dict()
    return all(torch.equal(state[k], v) for k, v in gsd.items())


def check_reproduces(model, gsd):
    """The converted model computes the official generator's function (at 32x32: seconds count)."""
    g = torch.Generator().manual_seed(3)
    label = one_hot(torch.randint(0, N, (1, 32, 32), generator=g), N)
    z = torch.randn(1, ZD, generator=g)
    with torch.no_grad():
        assert rel(ref_generator(gsd, label, z), model.generator(label, z)) < 1e-5


def test_download_converts_records_checksum_and_caches(home, server, archive, capsys):
    write_registry(home, tiny=tiny_entry(server))
    model = from_pretrained("tiny", progress=False)
    assert isinstance(model, oasisgan.OASISModel) and model.discriminator is not None
    assert model.config.semantic_nc == N and model.config.channels_G == CH and model.config.z_dim == ZD
    check_reproduces(model, archive[1])
    sha = hashlib.sha256(archive[0]).hexdigest()
    assert f"recorded sha256 {sha}" in capsys.readouterr().err
    assert json.loads((pretrained_dir() / "checksums.json").read_text())[ARCHIVE]["sha256"] == sha
    folder = model_dir("tiny")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "discriminator.safetensors",
                                                        "model.safetensors", "source.json"]
    card = (folder / "README.md").read_text()
    assert "training iterations | 1234" in card and "ade20k" in card
    assert not list((pretrained_dir() / "archives").iterdir())  # archive and .part gone: the model is kept
    assert len(server.requests) == 1 and server.requests[0][1] is None
    # second call: the cache, no request
    again = from_pretrained("tiny", discriminator=False)
    assert len(server.requests) == 1 and again.discriminator is None
    assert same_weights(again, archive[1])
    row = next(r for r in list_models() if r["name"] == "tiny")
    assert row["cached"] and row["sha256"] == sha and row["origin"] == "user registry"


def test_resume_after_broken_connection(home, server, archive):
    write_registry(home, tiny=tiny_entry(server))
    server.cut = 1  # the first response stops half-way
    model = from_pretrained("tiny", progress=False)
    assert same_weights(model, archive[1])
    assert len(server.requests) == 2
    assert server.requests[0][1] is None and server.requests[1][1] == f"bytes={len(archive[0]) // 2}-"


def test_partial_download_is_kept_and_resumed_by_the_next_call(home, server, archive):
    dest = home / "x.zip"
    server.cut = 1
    with pytest.raises(DownloadError, match="connection closed after"):
        download(server.url(ARCHIVE), dest, progress=False, max_resumes=0)
    part = dest.with_name("x.zip.part")
    assert not dest.exists() and part.stat().st_size == len(archive[0]) // 2
    download(server.url(ARCHIVE), dest, progress=False)
    assert dest.read_bytes() == archive[0] and not part.exists()
    assert server.requests[-1][1] == f"bytes={len(archive[0]) // 2}-"


def test_server_without_range_support_restarts_the_download(home, server, archive):
    dest = home / "x.zip"
    server.cut = 1
    with pytest.raises(DownloadError):
        download(server.url(ARCHIVE), dest, progress=False, max_resumes=0)
    server.ignore_range = True  # answers 200 with the whole file: the part is rewritten, not appended to
    download(server.url(ARCHIVE), dest, progress=False)
    assert dest.read_bytes() == archive[0]


def test_archive_that_does_not_convert_is_not_kept_or_trusted(home, server):
    write_registry(home, tiny={"url": server.url(ARCHIVE), "preset": "cityscapes"})  # wrong architecture
    with pytest.raises(oasisgan.loading.official.OfficialCheckpointError, match="does not fit"):
        from_pretrained("tiny", progress=False)
    assert not model_dir("tiny").exists() and not (pretrained_dir() / "checksums.json").exists()
    assert not list((pretrained_dir() / "archives").iterdir())
    assert not list((pretrained_dir() / "tmp").iterdir())
    assert not (pretrained_dir() / "models").exists() or not list((pretrained_dir() / "models").iterdir())


def test_list_and_download_cli(home, server, capsys):
    write_registry(home, tiny=tiny_entry(server, description="a tiny test model"))
    assert cli_main(["pretrained", "list"]) == 0
    out = capsys.readouterr().out
    assert "ade20k" in out and "coco-stuff" in out and "a tiny test model" in out and "not downloaded" in out
    assert cli_main(["pretrained", "download", "tiny", "--no-progress"]) == 0
    assert str(model_dir("tiny")) in capsys.readouterr().out
    assert cli_main(["pretrained", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["tiny"]["cached"] and rows["tiny"]["sha256"] and not rows["ade20k"]["cached"]
    assert rows["coco-stuff"]["source"].endswith("oasis_coco_pretrained.zip?dl=1")
    assert cli_main(["pretrained", "remove", "tiny"]) == 0 and not model_dir("tiny").exists()


def test_wrong_checksum_is_refused_and_nothing_is_cached(home, server, archive):
    write_registry(home, tiny=tiny_entry(server, sha256="0" * 64))
    with pytest.raises(ChecksumError) as e:
        from_pretrained("tiny", progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "expected " + "0" * 64 in msg and ARCHIVE in msg
    assert "oasis pretrained import" in msg and "the download was deleted" in msg
    assert not model_dir("tiny").exists() and not (pretrained_dir() / "checksums.json").exists()
    assert not list((pretrained_dir() / "archives").iterdir())  # no archive, no .part
    # the right sum, given explicitly, pins it and works
    sha = hashlib.sha256(archive[0]).hexdigest()
    assert same_weights(from_pretrained("tiny", sha256=sha, progress=False), archive[1])


def test_recorded_checksum_guards_later_downloads(home, server, archive, capsys):
    write_registry(home, tiny=tiny_entry(server))
    from_pretrained("tiny", progress=False)
    assert cli_main(["pretrained", "remove", "tiny"]) == 0
    server.files[ARCHIVE] = build_archive(seed=1)[0]  # the address now serves another file
    with pytest.raises(ChecksumError, match="recorded by the first download"):
        from_pretrained("tiny", progress=False)
    assert not model_dir("tiny").exists()


def test_offline_gives_one_clear_message(home, capsys):
    url = closed_port_url()
    write_registry(home, ade20k={"url": url})  # the built-in entry, unreachable
    with pytest.raises(DownloadError) as e:
        from_pretrained("ade20k", progress=False)
    msg = str(e.value)
    assert "\n" not in msg and url in msg and "refused" in msg.lower()
    assert "oasis pretrained import oasis_ade20k_pretrained.zip" in msg and "dropbox.com/sh/" in msg
    assert cli_main(["synthesize", "--checkpoint", "ade20k", "--labels", ".", "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "oasis pretrained import oasis_ade20k_pretrained.zip" in err
    assert not model_dir("ade20k").exists() and not (pretrained_dir() / "checksums.json").exists()


def test_import_archive_cli_then_synthesize_by_name(home, server, archive, tmp_path, capsys):
    zpath = tmp_path / ARCHIVE
    zpath.write_bytes(archive[0])
    sets = [x for k, v in OVERRIDES.items() for x in ("--set", f"{k}={v}")]
    # a wrong pinned sum: refused, the user's file stays
    assert cli_main(["pretrained", "import", str(zpath), "--sha256", "1" * 64] + sets) == 2
    assert "expected " + "1" * 64 in capsys.readouterr().err and zpath.exists()
    assert cli_main(["pretrained", "import", str(zpath)] + sets) == 0  # no registry entry: name from the file
    assert "imported" in capsys.readouterr().out and zpath.exists()
    assert server.requests == []
    assert same_weights(from_pretrained("tiny"), archive[1])
    assert next(r for r in list_models() if r["name"] == "tiny")["origin"] == "imported"
    label = np.random.default_rng(0).integers(0, N, (64, 64)).astype(np.uint8)
    (tmp_path / "labels").mkdir()
    Image.fromarray(label).save(tmp_path / "labels" / "a.png")
    out = tmp_path / "out"
    assert cli_main(["synthesize", "--checkpoint", "tiny", "--labels", str(tmp_path / "labels"),
                     "--out", str(out), "--samples", "2"]) == 0
    assert (out / "a_s000.png").is_file() and (out / "a_s001.png").is_file()
    assert cli_main(["info", "--checkpoint", "tiny", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["classes"] == N
    assert server.requests == []


def test_registry_entry_import_uses_its_overrides_and_recorded_sum(home, server, archive, tmp_path):
    write_registry(home, tiny=tiny_entry(server))
    zpath = tmp_path / ARCHIVE
    zpath.write_bytes(archive[0])
    assert cli_main(["pretrained", "import", str(zpath)]) == 0  # overrides come from the registry entry
    assert model_dir("tiny").is_dir() and server.requests == []
    assert cli_main(["pretrained", "remove", "tiny"]) == 0
    other = tmp_path / "other" / ARCHIVE
    other.parent.mkdir()
    other.write_bytes(build_archive(seed=2)[0])
    with pytest.raises(ChecksumError, match="recorded"):  # the sum recorded by the first import
        oasisgan.loading.pretrained.import_archive(other)


def test_resolve_errors(home, tmp_path, monkeypatch):
    from oasisgan.loading.checkpoint import CheckpointError

    with pytest.raises(PretrainedError, match="unknown model 'nope'.*ade20k, camvid, cityscapes, coco-stuff"):
        from_pretrained("nope")
    with pytest.raises(CheckpointError, match="checkpoint not found: missing.ckpt"):
        from_pretrained("missing.ckpt")
    write_registry(home, **{"bad": {"colour": "red"}})
    with pytest.raises(PretrainedError, match="unknown field.*colour"):
        from_pretrained("bad")
    (home / "registry.json").write_text("{")
    with pytest.raises(PretrainedError, match="cannot read the registry file"):
        from_pretrained("ade20k")
    # a dataset folder named like a registry entry does not shadow it
    (home / "registry.json").write_text(json.dumps({"ade20k": {"url": closed_port_url()}}))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ade20k").mkdir()
    with pytest.raises(DownloadError):
        from_pretrained("ade20k", progress=False)


def test_official_entries_and_class_names():
    from oasisgan.loading.pretrained import BUILTIN, _with_class_names

    assert {n: e.archive for n, e in BUILTIN.items()} == {
        "ade20k": "oasis_ade20k_pretrained.zip", "cityscapes": "oasis_cityscapes_pretrained.zip", "camvid": None,
        "coco-stuff": "oasis_coco_pretrained.zip"}
    for name, entry in BUILTIN.items():
        cfg = _with_class_names(oasisgan.preset(entry.preset))
        assert len(cfg.class_names) == len(cfg.palette) == cfg.semantic_nc  # the painter shows names
    small = oasisgan.preset("ade20k", semantic_nc=N)
    assert _with_class_names(small).class_names is None  # not the dataset's classes: left alone


def test_archive_path_as_checkpoint_converts_once(home, archive, tmp_path):
    zpath = tmp_path / "downloads" / ARCHIVE
    zpath.parent.mkdir()
    zpath.write_bytes(archive[0])
    write_registry(home, tiny={"archive": ARCHIVE, "url": "http://127.0.0.1:9/unused.zip",
                               "preset": "ade20k", "overrides": OVERRIDES})
    assert same_weights(from_pretrained(zpath), archive[1])
    stamp = (model_dir("tiny") / "model.safetensors").stat().st_mtime_ns
    assert same_weights(from_pretrained(str(zpath)), archive[1])  # the cache: not converted again
    assert (model_dir("tiny") / "model.safetensors").stat().st_mtime_ns == stamp
    # an unzipped official folder, imported under a registry name, keeps that entry's settings
    folder = tmp_path / "oasis_tiny_pretrained"
    with zipfile.ZipFile(zpath) as zf:
        zf.extractall(tmp_path)
    assert oasisgan.loading.pretrained.import_archive(folder).name == "tiny"
    assert oasisgan.load(model_dir("tiny")).config.channels_D == 2  # from the entry's overrides


# --- hostile and careless use (issue 24) -------------------------------------------------------
@pytest.mark.parametrize("name", ["", ".", "..", "../victim", "../../victim", "/abs/victim", "a/b", "~"])
def test_remove_takes_a_model_name_never_a_path(home, tmp_path, capsys, monkeypatch, name):
    """`remove ../x` or `remove /abs` deleted folders outside the cache, `remove ""` the whole cache."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.tex").write_text("mine")
    keep = model_dir("kept")
    keep.mkdir(parents=True)
    (keep / "config.json").write_text("{}")
    monkeypatch.chdir(keep)  # relative names resolve next to the cache's models
    name = name.replace("/abs/victim", str(victim))
    assert cli_main(["pretrained", "remove", name]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a model name" in err[0] and "not a path" in err[0]
    assert (victim / "thesis.tex").read_text() == "mine" and (keep / "config.json").is_file()


def test_remove_of_a_linked_model_removes_the_link_only(home, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "model.safetensors").write_text("x")
    model_dir("linked").parent.mkdir(parents=True)
    model_dir("linked").symlink_to(elsewhere, target_is_directory=True)
    assert cli_main(["pretrained", "remove", "linked"]) == 0
    assert not model_dir("linked").exists() and (elsewhere / "model.safetensors").is_file()


def _damaged(data: bytes) -> bytes:
    """The archive with one byte of the G weights flipped: its CRC no longer matches."""
    zf = zipfile.ZipFile(io.BytesIO(data))
    info = zf.getinfo("oasis_tiny_pretrained/models/best_G.pth")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    pos = start + info.compress_size // 2
    return data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1:]


def test_import_of_a_damaged_zip_is_one_line_exit_2(home, archive, tmp_path, capsys):
    zpath = tmp_path / ARCHIVE
    zpath.write_bytes(_damaged(archive[0]))
    sets = [x for k, v in OVERRIDES.items() for x in ("--set", f"{k}={v}")]
    assert cli_main(["pretrained", "import", str(zpath)] + sets) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is damaged" in err[0] and "best_G.pth" in err[0]
    assert not model_dir("tiny").exists() and zpath.exists()
    assert list((pretrained_dir() / "tmp").iterdir()) == []


def test_temporaries_of_a_killed_import_are_removed_at_the_next_import(home, archive, tmp_path):
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    tmp_root = pretrained_dir() / "tmp"
    stale = tmp_root / f".tiny.{dead.pid}.abcd1234.tmp"
    live = tmp_root / ".tiny.1.efgh5678.tmp"  # pid 1 is alive: an import in progress
    for d in (stale, live):
        (d / "run" / "models").mkdir(parents=True)
        (d / "run" / "models" / "best_G.pth").write_bytes(b"0" * 1000)
    zpath = tmp_path / ARCHIVE
    zpath.write_bytes(archive[0])
    oasisgan.loading.pretrained.import_archive(zpath, overrides=OVERRIDES)
    assert not stale.exists() and live.is_dir()
    assert sorted(p.name for p in tmp_root.iterdir()) == [live.name]
