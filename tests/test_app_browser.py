"""End-to-end tests of the painter in a real headless Chromium (Debian's `chromium`), driven by
Playwright's Python package. No browser is downloaded: Playwright launches /usr/bin/chromium.

CI needs: `apt-get install -y chromium` and the `playwright` Python package (in the `test` extra).
Without either these tests are skipped with the reason.

The screenshot test writes its PNG to the test's tmp folder, and also to $OASIS_SCREENSHOT when
that is set; $OASIS_PAINTER_CHECKPOINT picks the model it shows (default: the random test model).
The README image was made with the quickstart's toy model::

    OASIS_PAINTER_CHECKPOINT=runs/toy/checkpoints/latest.ckpt OASIS_SCREENSHOT=docs/images/painter.png \\
        .venv/bin/pytest tests/test_app_browser.py -k screenshot
"""
from __future__ import annotations

import base64
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from test_app_helpers import PALETTE, decode_image, make_test_checkpoint, map_payload, png_bytes, request

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.slow

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover
    sync_playwright = None

if sync_playwright is None:
    pytest.skip("the playwright Python package is not installed (pip install playwright; no browser "
                "download is needed)", allow_module_level=True)
if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install -y chromium)",
                allow_module_level=True)

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
H = W = 64
# The page draws new seeds with crypto.getRandomValues; the tests make that a fixed sequence so
# that every run resamples with the same seeds.
DETERMINISTIC_SEEDS = """(() => {
  let state = 12345;
  Object.defineProperty(window.crypto, "getRandomValues", { value: (a) => {
    for (let i = 0; i < a.length; i++) { state = (Math.imul(state, 1103515245) + 12345) >>> 0; a[i] = state; }
    return a;
  } });
})();"""


# ------------------------------------------------------------------------------------------------
def start_server(ckpt: Path):
    import oasisgan
    from oasisgan.app import Painter, serve_in_thread

    srv, thread = serve_in_thread(Painter(oasisgan.load(ckpt)), port=0)
    return srv, thread


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv, thread = start_server(make_test_checkpoint(tmp_path_factory.mktemp("painter") / "toy.ckpt"))
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


@pytest.fixture(scope="module")
def playwright():
    with sync_playwright() as pw:
        yield pw


def launch(pw, **options):
    """Debian's Chromium with a fresh profile (removed on close); no browser download."""
    profile = tempfile.mkdtemp(prefix="oasis-chromium-")
    ctx = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                                headless=True, **options)
    ctx.on("close", lambda _: shutil.rmtree(profile, ignore_errors=True))
    return ctx


@pytest.fixture(scope="module")
def browser_context(playwright):
    # bypass_csp: Playwright's wait_for_function evaluates strings, which the page's CSP forbids;
    # test_page_works_under_its_own_csp checks the page with its CSP in force.
    ctx = launch(playwright, bypass_csp=True, viewport={"width": 1400, "height": 780}, accept_downloads=True)
    ctx.add_init_script(DETERMINISTIC_SEEDS)
    yield ctx
    ctx.close()


class Painter:
    """A page object: the painter open in a browser tab."""

    def __init__(self, ctx, url: str):
        self.page = ctx.new_page()
        self.errors = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(url)
        self.wait_image(0)

    def version(self) -> int:
        return int(self.page.get_attribute("#output", "data-version"))

    def wait_image(self, after: int) -> int:
        self.page.wait_for_function(
            "v => Number(document.getElementById('output').dataset.version) > v && window.painter.idle()",
            arg=after, timeout=30000)
        return self.version()

    def canvas_point(self, x: float, y: float):
        box = self.page.locator("#label-canvas").bounding_box()
        return box["x"] + x * box["width"] / W, box["y"] + y * box["height"] / H

    def stroke(self, points):
        m = self.page.mouse
        m.move(*self.canvas_point(*points[0]))
        m.down()
        for p in points[1:]:
            m.move(*self.canvas_point(*p), steps=8)
        m.up()

    def drag(self, a, b):
        self.stroke([a, b])

    def click_canvas(self, x, y):
        self.page.mouse.click(*self.canvas_point(x, y))

    def pick(self, class_id: int):
        self.page.click(f"#palette li[data-id='{class_id}']")

    def label(self) -> np.ndarray:
        b64 = self.page.evaluate("() => window.painter.labelBase64()")
        return np.frombuffer(base64.b64decode(b64), np.uint8).astype(np.int64).reshape(H, W)

    def image(self) -> np.ndarray:
        return decode_image(self.page.get_attribute("#output", "src"))

    def seeds(self):
        return self.page.evaluate("() => window.painter.seeds()")

    def message(self) -> str:
        loc = self.page.locator("#message")
        return "" if "hidden" in (loc.get_attribute("class") or "") else self.page.inner_text("#message-text")


@pytest.fixture()
def painter(browser_context, server):
    p = Painter(browser_context, server.url)
    yield p
    assert not p.errors, p.errors
    p.page.close()


def api_image(server, label, seeds, index=None):
    noise = {"seeds": seeds, "map": None if index is None else map_payload(index)}
    status, res, _ = request(server.url + "api/synthesize", {"label": map_payload(label), "noise": noise})
    assert status == 200, res
    return decode_image(res["image"])


# ------------------------------------------------------------------------------------------------
def test_draw_two_classes_then_resample_one(painter, server):
    p = painter
    v = p.version()
    assert p.image().shape == (H, W, 3)  # the example map's image is there on load
    p.pick(7)  # building
    p.stroke([(6, 10), (30, 14), (58, 12)])
    p.pick(9)  # rock
    p.stroke([(8, 50), (30, 46), (56, 52)])
    v = p.wait_image(v)
    label = p.label()
    assert label[14, 30] == 7 and label[46, 30] == 9
    assert (label == 7).sum() > 60 and (label == 9).sum() > 60
    seeds = p.seeds()
    assert len(seeds) == 1
    before = p.image()
    # the page shows exactly what the API gives for its label map and seed
    assert np.abs(before - api_image(server, label, seeds)).max() <= 1

    p.pick(7)
    assert "building" in p.page.inner_text("#resample-class")
    p.page.click("#resample-class")
    v = p.wait_image(v)
    after = p.image()
    assert len(p.seeds()) == 2 and p.seeds()[0] == seeds[0]
    assert "1 local resample" in p.page.inner_text("#noise-status")
    mask = label == 7
    diff = np.abs(after - before).mean(-1)
    inside, outside = diff[mask].mean(), diff[~mask].mean()
    from scipy import ndimage

    far = ~ndimage.binary_dilation(mask, iterations=6)  # more than 6 px from the class
    print(f"browser class resample: mean change inside {inside:.1f}, outside {outside:.1f}, "
          f"far outside {diff[far].mean():.2f}")
    assert inside > 3 and inside > 3 * outside and inside > 8 * diff[far].mean(), (inside, outside)

    # undo brings back the previous noise and picture
    p.page.click("#undo")
    p.wait_image(v)
    assert p.seeds() == seeds
    assert np.abs(p.image() - before).max() <= 1


def test_fill_eraser_undo_and_region_resample(painter):
    p = painter
    v = p.version()
    start = p.label()
    sky = start[2, 2]
    p.pick(8)  # sand
    p.page.click("[data-tool='fill']")
    p.click_canvas(2, 2)
    v = p.wait_image(v)
    filled = p.label()
    assert sky != 8 and (filled[start == sky] == 8).all()  # the example's sky is one region
    assert np.array_equal(filled[start != sky], start[start != sky])
    p.page.keyboard.press("e")  # eraser paints the don't-care class
    p.stroke([(20, 30), (40, 30)])
    v = p.wait_image(v)
    assert p.label()[30, 30] == 0
    p.page.keyboard.press("Control+z")
    v = p.wait_image(v)
    assert np.array_equal(p.label(), filled)
    p.page.click("#undo")
    v = p.wait_image(v)
    assert np.array_equal(p.label(), start)
    p.page.click("#redo")
    v = p.wait_image(v)
    assert np.array_equal(p.label(), filled)

    # rectangle selection, then resample only that region
    assert p.page.is_disabled("#resample-region")
    before = p.image()
    p.page.click("[data-tool='select']")
    p.drag((34, 4), (60, 28))
    assert p.page.is_enabled("#resample-region")
    p.page.click("#resample-region")
    p.wait_image(v)
    diff = np.abs(p.image() - before).mean(-1)
    rect = np.zeros((H, W), bool)
    rect[4:28, 34:60] = True
    far = np.ones((H, W), bool)
    far[:36, 26:] = False
    assert diff[rect].mean() > 5 * diff[far].mean(), (diff[rect].mean(), diff[far].mean())


def test_seed_new_image_and_downloads(painter, server, tmp_path):
    p = painter
    v = p.version()
    p.page.fill("#seed", "4242")
    p.page.press("#seed", "Enter")
    v = p.wait_image(v)
    assert p.seeds() == [4242] and p.page.get_attribute("#output", "data-seed") == "4242"
    label = p.label()
    assert np.abs(p.image() - api_image(server, label, [4242])).max() <= 1
    p.page.fill("#seed", "-3")
    p.page.press("#seed", "Enter")
    assert "seed must be" in p.message()
    p.page.click("#new-image")
    v = p.wait_image(v)
    assert p.seeds() != [4242]

    with p.page.expect_download() as dl:
        p.page.click("#download-label")
    path = tmp_path / "label.png"
    dl.value.save_as(path)
    from PIL import Image

    img = Image.open(path)
    assert img.mode == "P" and np.array_equal(np.asarray(img), label)
    with p.page.expect_download() as dl:
        p.page.click("#download-image")
    assert dl.value.suggested_filename.startswith("oasis_seed")
    dl.value.save_as(tmp_path / "image.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "image.png").convert("RGB")), p.image())


def _bomb_png(side: int) -> bytes:
    """A valid PNG header claiming side x side pixels, with almost no data."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
            + chunk(b"IEND", b""))


def test_upload_label_maps(painter, tmp_path):
    p = painter
    v = p.version()
    label = np.full((H, W), 3, np.int64)
    label[:20] = 1
    label[30:50, 10:50] = 4
    colour = tmp_path / "colour.png"
    colour.write_bytes(png_bytes(np.asarray(PALETTE, np.uint8)[label]))
    p.page.set_input_files("#upload", str(colour))
    v = p.wait_image(v)
    assert np.array_equal(p.label(), label)
    assert "loaded colour.png" in p.message()
    index = tmp_path / "index.png"
    index.write_bytes(png_bytes(np.where(label == 4, 2, label).astype(np.uint8), "L"))
    p.page.set_input_files("#upload", str(index))
    v = p.wait_image(v)
    assert np.array_equal(p.label(), np.where(label == 4, 2, label))
    # bad files: a message on the page, nothing changes, the server lives on
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not a png at all")
    p.page.set_input_files("#upload", str(bad))
    p.page.wait_for_function("() => !document.getElementById('message').classList.contains('hidden') && "
                             "document.getElementById('message-text').textContent.includes('bad.png')")
    assert "PNG" in p.message()
    wrong = tmp_path / "wrong.png"
    wrong.write_bytes(png_bytes(np.full((H, W), 77, np.uint8), "L"))
    p.page.set_input_files("#upload", str(wrong))
    p.page.wait_for_function("() => document.getElementById('message-text').textContent.includes('wrong.png')")
    assert "77" in p.message()
    assert np.array_equal(p.label(), np.where(label == 4, 2, label))
    # a file over the upload limit (a 60 MiB photo) and a decompression bomb (a small PNG that
    # decodes to 9000x9000): the server's answer is shown on the page, nothing changes
    huge = tmp_path / "huge.png"
    huge.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(60 * 2**20))
    p.page.set_input_files("#upload", str(huge))
    p.page.wait_for_function("() => document.getElementById('message-text').textContent.includes('limit')",
                             timeout=60000)
    assert "MiB" in p.message()
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_bomb_png(9000))
    p.page.set_input_files("#upload", str(bomb))
    p.page.wait_for_function("() => document.getElementById('message-text').textContent.includes('too large')")
    assert "9000x9000" in p.message()
    assert np.array_equal(p.label(), np.where(label == 4, 2, label))
    p.page.click("#example")
    p.wait_image(v)
    assert len(np.unique(p.label())) >= 4


def test_photo_invert_edit_paste_back_and_transfer(painter, server, tmp_path):
    """Open a photo with its label map, invert it (progress), paint on it, paste back, transfer a
    class's look from a second photo. The photos are the test model's own images, so that a
    good reconstruction exists."""
    from scipy import ndimage

    p = painter
    scene = np.full((H, W), 3, np.int64)
    scene[:22] = 1
    scene[22:32] = 5
    scene[44:58, 8:40] = 4
    photo_a = api_image(server, scene, [3]).astype(np.uint8)
    photo_b = api_image(server, scene, [9]).astype(np.uint8)
    for name, arr in (("a.png", photo_a), ("b.png", photo_b)):
        (tmp_path / name).write_bytes(png_bytes(arr))
    (tmp_path / "scene.png").write_bytes(png_bytes(scene.astype(np.uint8), "L"))
    assert p.page.is_disabled("#invert")
    p.page.set_input_files("#photo-file", str(tmp_path / "a.png"))
    p.page.set_input_files("#photo-label-file", str(tmp_path / "scene.png"))
    assert "a.png · scene.png" in p.page.inner_text("#photo-files")
    p.page.fill("#invert-steps", "60")
    v = p.version()
    p.page.click("#invert")
    p.page.locator("#invert-progress:not(.hidden)").wait_for(timeout=5000)  # progress while it runs
    p.page.locator("#invert-status[data-state='done']").wait_for(timeout=120000)
    status = p.page.inner_text("#invert-status")
    psnr = float(status.split("PSNR ")[1].split(" dB")[0])
    assert psnr > 20, status
    v = p.wait_image(v)
    assert np.array_equal(p.label(), scene) and p.page.is_visible("#photo-view")
    recon = decode_image(p.page.get_attribute("#photo-recon", "src"))
    before = p.image()
    assert np.abs(before - recon).max() <= 1  # unedited: the reconstruction
    assert "the photo's noise" in p.page.inner_text("#noise-status")

    # paint a building into the sky: the image changes there, hardly anywhere far from it
    p.pick(7)
    p.stroke([(8, 8), (24, 8)])
    v = p.wait_image(v)
    region = p.label() != scene
    assert region.sum() > 30
    diff = np.abs(p.image() - before).mean(-1)
    far = ~ndimage.binary_dilation(region, np.ones((3, 3), bool), iterations=12)
    print(f"browser photo edit: mean change inside {diff[region].mean():.1f}, far {diff[far].mean():.2f}")
    assert diff[region].mean() > 10 and diff[far].mean() < 1.5, (diff[region].mean(), diff[far].mean())

    # paste back: the photo's own pixels away from the edit
    p.page.check("#paste-back")
    v = p.wait_image(v)
    pasted = p.image()
    assert np.abs(pasted[far] - photo_a[far]).max() <= 1
    assert np.abs(pasted[region] - photo_a[region]).mean() > 10

    # a second photo as the transfer source; its sky goes into the edited photo
    p.page.set_input_files("#photo-file", str(tmp_path / "b.png"))
    p.page.click("#invert-source")
    p.page.wait_for_function("() => document.getElementById('source-info').textContent.includes('b.png')",
                             timeout=120000)
    p.page.uncheck("#paste-back")
    v = p.wait_image(v)
    edited = p.image()
    p.pick(1)
    assert "sky" in p.page.inner_text("#transfer-class")
    p.page.click("#transfer-class")
    v = p.wait_image(v)
    sky = p.label() == 1
    moved = np.abs(p.image() - edited).mean(-1)
    assert p.page.evaluate("() => window.painter.photo().transfers.length") == 1
    assert moved[sky].mean() > 3 * moved[~sky].mean(), (moved[sky].mean(), moved[~sky].mean())
    assert "1 transfer" in p.page.inner_text("#noise-status")
    p.page.click("#undo")
    p.wait_image(v)
    assert p.page.evaluate("() => window.painter.photo().transfers.length") == 0
    assert np.abs(p.image() - edited).max() <= 1
    p.page.click("#close-photo")
    assert p.page.is_hidden("#photo-view")


def test_page_works_under_its_own_csp(playwright, server):
    ctx = launch(playwright)
    try:
        page = ctx.new_page()
        console, requests = [], []
        page.on("console", lambda m: console.append(m.text))
        page.on("pageerror", lambda e: console.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(server.url)
        page.locator("#output:not([data-version='0'])").wait_for(timeout=30000)
        assert page.locator("#palette li").count() == 10
    finally:
        ctx.close()
    assert not [c for c in console if "Content Security Policy" in c or "Error" in c], console
    assert all(u.startswith(server.url) or u.startswith("data:") for u in requests), requests


def test_screenshot_for_the_readme(browser_context, server, tmp_path):
    ckpt = os.environ.get("OASIS_PAINTER_CHECKPOINT")
    srv = thread = None
    if ckpt:
        srv, thread = start_server(Path(ckpt))
    try:
        url = srv.url if srv else server.url
        p = Painter(browser_context, url)
        v = p.version()
        classes = p.page.evaluate("() => window.painter.state.info.classes.map(c => c.name)")
        building = classes.index("building") if "building" in classes else 1
        tree = classes.index("tree") if "tree" in classes else 2
        h, w = p.page.evaluate("() => [window.painter.state.H, window.painter.state.W]")
        sx, sy = W / w, H / h  # the page object works in 64x64 coordinates
        p.pick(building)
        p.page.evaluate("() => { const e = document.getElementById('brush-size'); e.value = '5'; "
                        "e.dispatchEvent(new Event('input')); }")
        p.stroke([(8 * sx, 30 * sy), (8 * sx, 20 * sy), (16 * sx, 20 * sy), (16 * sx, 30 * sy)])
        p.pick(tree)
        p.stroke([(44 * sx, 34 * sy), (50 * sx, 30 * sy), (56 * sx, 35 * sy)])
        p.wait_image(v)
        p.page.click("[data-tool='brush']")
        p.page.mouse.move(*p.canvas_point(30 * sx, 40 * sy))
        out = tmp_path / "painter.png"
        p.page.screenshot(path=str(out))
        assert out.stat().st_size > 10000
        if os.environ.get("OASIS_SCREENSHOT"):
            dest = Path(os.environ["OASIS_SCREENSHOT"])
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out, dest)
        assert not p.errors, p.errors
        p.page.close()
    finally:
        if srv:
            srv.shutdown()
            srv.server_close()


@pytest.fixture()
def slow_server(tmp_path):
    """A painter whose model takes 0.8 s per image, like a full-size model on a CPU."""
    import time

    import oasisgan
    from oasisgan.app import Painter as Engine, serve_in_thread

    class SlowEngine(Engine):
        calls = 0

        def synthesize_array(self, *args, **kwargs):
            type(self).calls += 1
            time.sleep(0.8)
            return super().synthesize_array(*args, **kwargs)

    engine = SlowEngine(oasisgan.load(make_test_checkpoint(tmp_path / "toy.ckpt")))
    srv, thread = serve_in_thread(engine, port=0)
    yield srv, SlowEngine
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def test_slow_model_shows_progress_and_never_shows_a_stale_image(browser_context, slow_server):
    srv, engine = slow_server
    p = Painter(browser_context, srv.url)
    v = p.version()
    calls = engine.calls
    p.pick(7)
    p.stroke([(6, 10), (58, 12)])
    p.page.locator("#busy:not(.hidden)").wait_for(timeout=5000)  # spinner + elapsed time
    assert p.page.inner_text("#elapsed").endswith(" s")
    assert p.page.get_attribute("#output", "data-state") == "busy"
    # the page stays usable while the server works: three more strokes during the request
    for k, cls in enumerate((9, 2, 8)):
        p.pick(cls)
        p.stroke([(6, 20 + 10 * k), (58, 22 + 10 * k)])
    final = p.label()
    assert (final == 8).sum() > 60
    p.wait_image(v)
    assert p.page.locator("#busy.hidden").count() == 1
    # what is shown is the image of the final label map, reached in few requests (newest wins)
    img = p.image()
    assert np.abs(img - api_image(srv, final, p.seeds())).max() <= 1
    assert engine.calls - calls <= 5, engine.calls - calls  # not one per mouse move
    assert not p.errors, p.errors
    p.page.close()


def test_canvas_keeps_the_model_aspect_ratio(browser_context, tmp_path):
    import oasisgan
    from oasisgan.loading.checkpoint import save_checkpoint
    from oasisgan.nn import Generator

    cfg = oasisgan.preset("toy", semantic_nc=5, aspect_ratio=2.0, dontcare_label=None)  # 32x64
    save_checkpoint(tmp_path / "wide.ckpt", config=cfg, ema=Generator.from_config(cfg))
    srv, thread = start_server(tmp_path / "wide.ckpt")
    try:
        page = browser_context.new_page()
        page.goto(srv.url)
        page.wait_for_function("() => Number(document.getElementById('output').dataset.version) > 0")
        for sel in ("#label-canvas", "#output"):
            box = page.locator(sel).bounding_box()
            assert abs(box["width"] / box["height"] - 2.0) < 0.02, (sel, box)
        assert page.evaluate("() => [window.painter.state.H, window.painter.state.W]") == [32, 64]
        assert page.is_disabled("[data-tool='eraser']")  # no don't-care class: no eraser
        names = page.locator("#palette li .cname").all_inner_texts()
        assert names == [f"class_{i}" for i in range(5)]
        page.close()
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)
