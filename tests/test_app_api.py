"""The painter's JSON API with the server on a thread (fast; no browser)."""
from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from test_app_helpers import (CLASS_NAMES, PALETTE, decode_image, decode_map, make_test_checkpoint,
                              map_payload, png_bytes, request)

H = W = 64


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_test_checkpoint(tmp_path_factory.mktemp("painter") / "toy.ckpt")


@pytest.fixture(scope="module")
def model(ckpt):
    import oasisgan

    return oasisgan.load(ckpt)


@pytest.fixture(scope="module")
def server(model):
    from oasisgan.app import Painter, serve_in_thread

    srv, thread = serve_in_thread(Painter(model), port=0)
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


@pytest.fixture(scope="module")
def url(server) -> str:
    return server.url.rstrip("/")


def two_class_label() -> np.ndarray:
    lab = np.full((H, W), 3, np.int64)  # grass
    lab[:24] = 1  # sky
    lab[40:56, 8:40] = 4  # water
    return lab


def synth(url, label, seeds, index=None):
    noise = {"seeds": seeds, "map": None if index is None else map_payload(index)}
    status, res, _ = request(url + "/api/synthesize", {"label": map_payload(label), "noise": noise})
    assert status == 200, res
    return decode_image(res["image"]), res


# ------------------------------------------------------------------------------------------------
def test_info_describes_the_model(url):
    status, info, _ = request(url + "/api/info")
    assert status == 200
    assert (info["height"], info["width"]) == (H, W)
    assert info["num_classes"] == len(CLASS_NAMES)
    assert [c["name"] for c in info["classes"]] == CLASS_NAMES
    assert [c["color"] for c in info["classes"]] == PALETTE
    assert info["dontcare"] == 0 and info["noise"] is True and info["encoding"] == "u8"


def test_page_and_static_files_are_served(url):
    status, page, hdrs = request(url + "/")
    assert status == 200 and hdrs["Content-Type"].startswith("text/html")
    text = page.decode()
    for asset in ("/static/app.js", "/static/style.css"):
        assert asset in text
        status, body, _ = request(url + asset)
        assert status == 200 and len(body) > 500
    assert "http://" not in text and "https://" not in text  # nothing from the internet
    js = request(url + "/static/app.js")[1].decode()
    assert "http://" not in js and "https://" not in js
    for bad in ("/static/../core.py", "/static/%2e%2e/core.py", "/static/core.py", "/static/",
                "/nope", "/api/nope"):
        status, body, _ = request(url + bad)
        assert status == 404 and "error" in body


def test_synthesis_round_trip_is_under_one_second(url):
    label = two_class_label()
    synth(url, label, [1])  # warm-up
    times = []
    for k in range(5):
        t0 = time.perf_counter()
        img, res = synth(url, label, [k])
        times.append(time.perf_counter() - t0)
        assert img.shape == (H, W, 3)
    print(f"painter round trip (toy, CPU): median {1000 * sorted(times)[2]:.0f} ms")
    assert sorted(times)[2] < 1.0


def test_images_follow_the_synthesis_api(url, model):
    from oasisgan.synthesis import resample_region, sample_noise, synthesize, to_uint8

    label = two_class_label()
    a, res = synth(url, label, [1234])
    assert res["seeds"] == [1234]
    b, _ = synth(url, label, [1234])
    c, _ = synth(url, label, [99])
    assert np.array_equal(a, b)
    assert np.abs(a - c).mean() > 1.0
    with torch.no_grad():
        ref = to_uint8(synthesize(model, label, seed=1234))[0]
    assert np.abs(a - ref.astype(np.int64)).max() <= 1
    # a seed map equals resample_region applied seed by seed
    index = (label == 1).astype(np.int64)
    d, _ = synth(url, label, [1234, 77], index)
    z = resample_region(sample_noise(model, 1, seed=1234, size=(H, W)), label == 1, seed=77)
    with torch.no_grad():
        ref = to_uint8(synthesize(model, label, z=z))[0]
    assert np.abs(d - ref.astype(np.int64)).max() <= 1


def test_class_resample_changes_that_class_far_more_than_the_rest(url):
    label = two_class_label()
    before, _ = synth(url, label, [5])
    sky = label == 1
    after, res = synth(url, label, [5, 6], sky.astype(np.int64))
    assert res["seeds"] == [5, 6]
    diff = np.abs(after - before).mean(-1)
    inside, outside = diff[sky].mean(), diff[~sky].mean()
    far = np.ones((H, W), bool)
    far[:24 + 6] = False  # more than 6 px away from the sky
    print(f"class resample: mean change inside {inside:.1f}, outside {outside:.1f}, far outside {diff[far].mean():.2f}")
    assert inside > 3 and inside > 3 * outside and inside > 10 * diff[far].mean(), (inside, outside)


def test_region_resample_is_local(url):
    label = two_class_label()
    rect = np.zeros((H, W), np.int64)
    rect[8:40, 30:60] = 1
    before, _ = synth(url, label, [11])
    after, _ = synth(url, label, [11, 12], rect)
    diff = np.abs(after - before).mean(-1)
    far = np.ones((H, W), bool)
    far[2:46, 24:64] = False  # pixels more than ~6 px from the rectangle
    assert diff[rect == 1].mean() > 5 * diff[far].mean()


def test_label_png_round_trips_through_upload(url):
    label = two_class_label()
    label[0, 0] = 9
    status, png, hdrs = request(url + "/api/label-png", {"label": map_payload(label)})
    assert status == 200 and hdrs["Content-Type"] == "image/png"
    from PIL import Image
    import io

    img = Image.open(io.BytesIO(png))
    assert img.mode == "P" and img.size == (W, H)
    assert np.array_equal(np.asarray(img), label)  # indices are model ids, colours the palette
    status, res, _ = request(url + "/api/decode-label", {"file": base64.b64encode(png).decode()})
    assert status == 200 and res["notes"] == []
    assert np.array_equal(decode_map(res["label"], (H, W)), label)
    assert res["classes_present"] == [1, 3, 4, 9]


def test_upload_colour_and_index_pngs(url):
    label = two_class_label()
    colour = np.asarray(PALETTE, np.uint8)[label]
    status, res, _ = request(url + "/api/decode-label",
                             {"file": base64.b64encode(png_bytes(colour)).decode(), "name": "c.png"})
    assert status == 200, res
    assert np.array_equal(decode_map(res["label"], (H, W)), label)
    # an 8-bit index PNG at twice the size: resized (nearest) with a note
    big = label.repeat(2, 0).repeat(2, 1).astype(np.uint8)
    status, res, _ = request(url + "/api/decode-label", {"file": base64.b64encode(png_bytes(big, "L")).decode()})
    assert status == 200, res
    assert np.array_equal(decode_map(res["label"], (H, W)), label)
    assert any("resized" in n for n in res["notes"])
    # a data URL is accepted too
    status, res, _ = request(url + "/api/decode-label",
                             {"file": "data:image/png;base64," + base64.b64encode(png_bytes(big, "L")).decode()})
    assert status == 200


@pytest.mark.parametrize("png, words", [
    (lambda: png_bytes(np.full((H, W), 10, np.uint8), "L"), ["10", "outside"]),
    (lambda: png_bytes(np.full((H, W, 3), (1, 2, 250), np.uint8)), ["(1,2,250)", "palette"]),
    (lambda: b"\xff\xd8\xff\xe0 a jpeg", ["PNG"]),
    (lambda: png_bytes(np.zeros((H, W), np.uint8), "L")[:60], ["cannot read"]),
])
def test_bad_uploads_get_a_clear_message(url, png, words):
    status, res, _ = request(url + "/api/decode-label", {"file": base64.b64encode(png()).decode(), "name": "x.png"})
    assert status == 400, res
    for w in words:
        assert w in res["error"], res["error"]


def test_decompression_bomb_is_refused_before_decoding(url):
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    for side, words in ((9000, "too large"), (60000, "decompression bomb")):  # ours, then Pillow's guard
        ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
        bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
                + chunk(b"IEND", b""))
        t0 = time.perf_counter()
        status, res, _ = request(url + "/api/decode-label", {"file": base64.b64encode(bomb).decode()})
        assert status == 400 and words in res["error"], res
        assert time.perf_counter() - t0 < 2


def test_example_uses_the_model_classes(url):
    status, res, _ = request(url + "/api/example")
    assert status == 200
    lab = decode_map(res["label"], (H, W))
    present = set(np.unique(lab).tolist())
    assert 0 not in present and len(present) >= 4 and max(present) < len(CLASS_NAMES)
    assert {1, 2, 3, 4, 5} <= present  # sky, tree, grass, water, mountain chosen by name
    status, res2, _ = request(url + "/api/example?variant=3")
    assert status == 200 and not np.array_equal(decode_map(res2["label"], (H, W)), lab)


# ------------------------------------------------------------------------------------------------
# untrusted input: every endpoint gets garbage; the server answers with JSON errors and lives on

def raw_request(server, data: bytes, timeout: float = 10) -> bytes:
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
                if b"\r\n\r\n" in b"".join(chunks) and len(b"".join(chunks)) > 12:
                    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
                    n = [int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")]
                    if n and len(body) >= n[0]:
                        break
        except socket.timeout:
            pass
    return b"".join(chunks)


ALL = ("/api/synthesize", "/api/decode-label", "/api/label-png")
MAPS = ("/api/synthesize", "/api/label-png")


def garbage_bodies():
    """(body, the endpoints that must refuse it); the others must answer without a 5xx."""
    good = map_payload(two_class_label())
    yield b"", ALL
    yield b"not json", ALL
    yield b"\xff\xfe\x00garbage", ALL
    yield b"[1, 2, 3]", ALL
    yield b'"a string"', ALL
    yield b"null", ALL
    yield b"[" * 100000, ALL  # deep nesting
    yield b'{"label": ' + b"9" * 5000 + b"}", ALL  # an int over Python's digit limit
    yield b'{"label": NaN, "noise": Infinity}', ALL
    yield b'{"label": 5}', ALL
    yield json.dumps({"label": {"encoding": "u32", "data": good["data"]}}).encode(), ALL
    yield json.dumps({"label": {"encoding": "u8", "data": "!!!not base64"}}).encode(), ALL
    yield json.dumps({"label": {"encoding": "u8", "data": base64.b64encode(b"\1" * 100).decode()}}).encode(), ALL
    yield json.dumps({"label": map_payload(np.full((H, W), 200))}).encode(), ALL  # class id out of range
    yield json.dumps({"label": map_payload(np.full((H, W), 60000), wide=True)}).encode(), ALL
    for seeds in ([], [-1], [2**31], [1.5], ["7"], [True], list(range(2000)), "12", None):
        yield json.dumps({"label": good, "noise": {"seeds": seeds, "map": None}}).encode(), ("/api/synthesize",)
    yield json.dumps({"label": good, "noise": {"seeds": [1, 2]}}).encode(), ("/api/synthesize",)  # map missing
    yield (json.dumps({"label": good, "noise": {"seeds": [1, 2], "map": map_payload(np.full((H, W), 2))}}).encode(),
           ("/api/synthesize",))
    yield json.dumps({"label": good, "noise": "x"}).encode(), ("/api/synthesize",)
    yield json.dumps({"label": good, "seed": "x"}).encode(), ("/api/synthesize",)
    yield json.dumps({"file": 12}).encode(), ALL
    yield json.dumps({"file": "%%%"}).encode(), ALL
    yield json.dumps({"file": ""}).encode(), ALL


ENDPOINTS = ALL


def test_garbage_to_every_endpoint_never_kills_the_server(server, url):
    n = 0
    for path in ENDPOINTS:
        for body, refusers in garbage_bodies():
            status, res, _ = request(url + path, raw=body)
            if path in refusers:
                assert 400 <= status < 500, (path, body[:80], status, res)
                assert isinstance(res, dict) and res.get("error"), (path, body[:80], res)
            else:
                assert status == 200 or (400 <= status < 500 and res.get("error")), (path, body[:80], status, res)
            n += 1
    # random bytes and random mutations of a valid request
    rng = np.random.default_rng(0)
    valid = json.dumps({"label": map_payload(two_class_label()), "noise": {"seeds": [1], "map": None}}).encode()
    for _ in range(60):
        if rng.random() < 0.5:
            body = rng.integers(0, 256, int(rng.integers(0, 400)), dtype=np.uint8).tobytes()
        else:
            b = bytearray(valid)
            for _ in range(int(rng.integers(1, 6))):
                b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
            body = bytes(b)
        for path in ENDPOINTS:
            status, res, _ = request(url + path, raw=body)
            assert status < 500 and (status == 200 or res.get("error")), (path, status, res)
    # wrong methods, query garbage, bad headers
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
        status, res, _ = request(url + "/api/synthesize", raw=b"{}", method=method)
        assert status == 405 and res["error"]
    status, res, _ = request(url + "/api/synthesize")  # GET on a POST route
    assert status == 405
    for q in ("variant=abc", "variant=-1", "variant=99999999999999999999", "variant=" + "9" * 5000):
        status, res, _ = request(url + "/api/example?" + q)
        assert status == 400 and res["error"]
    status, res, _ = request(url + "/api/info", headers={"Host": "evil.example.com"})
    assert status == 403
    # protocol-level garbage on raw sockets
    for raw in (b"GARBAGE\r\n\r\n",
                b"POST /api/synthesize HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",  # no Content-Length
                b"POST /api/synthesize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -5\r\n\r\n",
                b"POST /api/synthesize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n",
                b"POST /api/synthesize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 999999999999\r\n\r\n{}",
                b"POST /api/synthesize HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                b"POST /api/synthesize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{\"la",  # ends early
                b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64)):  # a TLS hello
        reply = raw_request(server, raw, timeout=3 if b"ends early" not in raw else 3)
        assert reply == b"" or reply.startswith(b"HTTP/1."), reply[:100]
        assert not reply.startswith(b"HTTP/1.1 5") and not reply.startswith(b"HTTP/1.0 5"), reply[:200]
    # a body far over the limit is refused without being read
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    conn.putrequest("POST", "/api/decode-label")
    conn.putheader("Content-Length", str(500 * 2**20))
    conn.endheaders()
    r = conn.getresponse()
    assert r.status == 413 and "limit" in json.loads(r.read())["error"]
    conn.close()
    # a body a browser sends whole (a 60 MiB photo) gets its 413 answer, not a reset connection
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    conn.request("POST", "/api/decode-label", body=b"x" * (60 * 2**20),
                 headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    assert r.status == 413 and "the limit is" in json.loads(r.read())["error"]
    conn.close()
    # still alive and still right
    status, info, _ = request(url + "/api/info")
    assert status == 200 and info["num_classes"] == len(CLASS_NAMES)
    img, _ = synth(url, two_class_label(), [1])
    assert img.shape == (H, W, 3)
    assert n > 50


def test_server_handles_concurrent_requests(url):
    from concurrent.futures import ThreadPoolExecutor

    label = two_class_label()
    with ThreadPoolExecutor(6) as ex:
        imgs = list(ex.map(lambda s: synth(url, label, [s % 3])[0], range(12)))
    for k, img in enumerate(imgs):
        assert np.array_equal(img, imgs[k % 3])


# ------------------------------------------------------------------------------------------------
def test_binds_to_localhost_by_default(model):
    from oasisgan.app import Painter, make_server
    from oasisgan.cli import build_parser

    args = build_parser().parse_args(["app", "--checkpoint", "x.ckpt"])
    assert (args.host, args.port, args.device) == ("127.0.0.1", 7860, "auto")
    srv = make_server(Painter(model), port=0, quiet=True)
    try:
        assert srv.server_address[0] == "127.0.0.1" and srv.loopback_only
    finally:
        srv.server_close()


def test_cli_serves_and_reports_errors(ckpt, tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "oasisgan.cli", "app", "--checkpoint", str(ckpt), "--port", "0", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines = []
        deadline = time.time() + 120
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("open http://"):
                break
        assert lines and lines[-1].startswith("open http://127.0.0.1:"), "".join(lines)
        base = lines[-1].split()[1].rstrip("/")
        status, info, _ = request(base + "/api/info")
        assert status == 200 and info["width"] == W
    finally:
        proc.terminate()
        proc.wait(20)
    # a missing checkpoint is one clean line, exit code 2
    res = subprocess.run([sys.executable, "-m", "oasisgan.cli", "app", "--checkpoint", str(tmp_path / "none.ckpt")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr and "error" in res.stderr


# ------------------------------------------------------------------------------------------------
# the engine without HTTP: many classes, noise-free models, examples for the benchmark presets

def test_many_classes_use_16_bit_maps(tmp_path):
    import oasisgan
    from oasisgan.app import Painter
    from oasisgan.loading.checkpoint import save_checkpoint
    from oasisgan.nn import Generator

    cfg = oasisgan.preset("toy", semantic_nc=300, crop_size=32, load_size=32, channels_G=4, spade_hidden=8)
    save_checkpoint(tmp_path / "many.ckpt", config=cfg, ema=Generator.from_config(cfg))
    painter = Painter(oasisgan.load(tmp_path / "many.ckpt"))
    assert painter.info()["encoding"] == "u16"
    label = (np.arange(32 * 32).reshape(32, 32) % 300).astype(np.int64)
    res = painter.synthesize({"label": map_payload(label, wide=True), "noise": {"seeds": [3], "map": None}})
    assert decode_image(res["image"]).shape == (32, 32, 3)
    png = painter.label_png(label)
    up = painter.decode_upload({"file": base64.b64encode(png).decode()})
    assert np.array_equal(decode_map(up["label"], (32, 32)), label)
    from oasisgan.app import RequestError

    with pytest.raises(RequestError, match="299"):
        painter.parse_label({"label": map_payload(np.full((32, 32), 300), wide=True)})


def test_model_without_noise_is_described_as_such(tmp_path):
    import oasisgan
    from oasisgan.app import Painter
    from oasisgan.loading.checkpoint import save_checkpoint
    from oasisgan.nn import Generator

    cfg = oasisgan.preset("toy", semantic_nc=4, noise_3d=False)
    save_checkpoint(tmp_path / "nonoise.ckpt", config=cfg, ema=Generator.from_config(cfg))
    painter = Painter(oasisgan.load(tmp_path / "nonoise.ckpt"))
    assert painter.info()["noise"] is False
    img, _ = painter.synthesize_array(painter.example(0), [1])
    img2, _ = painter.synthesize_array(painter.example(0), [2])
    assert np.array_equal(img, img2)


@pytest.mark.parametrize("name", ["ade20k", "cityscapes", "coco-stuff"])
def test_examples_for_the_benchmark_presets(name):
    import oasisgan
    from oasisgan.app import example_label

    try:
        from oasisgan.data import config_for_root

        cfg = config_for_root(name)
    except Exception:
        cfg = oasisgan.preset(name)
    names = [cfg.class_name(i) for i in range(cfg.semantic_nc)]
    lab = example_label(names, cfg.height, cfg.width, cfg.dontcare_label, 0)
    assert lab.shape == (cfg.height, cfg.width)
    present = np.unique(lab)
    assert present.min() >= 0 and present.max() < cfg.semantic_nc and cfg.dontcare_label not in present
    assert len(present) >= 4
    if cfg.class_names:
        import re

        assert any("sky" in re.split(r"[\s,\-]+", names[i].lower()) for i in present)
