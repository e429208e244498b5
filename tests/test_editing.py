"""Photo editing (`oasisgan.editing`, `oasis invert`): inversion, edits, transfer, bad input.

The model is the painter tests' random toy generator (BatchNorm statistics collected, so its
images have structure). Its "photos" are its own images made with per-class noise, so an exact
reconstruction exists and the inversion's margin over random noise is a real measurement: a
broken optimiser (no gradient to the noise, a wrong sign) stays at the random noise's PSNR.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

import oasisgan
from oasisgan.editing import (Edit, EditingError, Inversion, edit_noise, feather_mask, move_region, psnr,
                              random_psnr, read_image, read_pair)
from oasisgan.errors import LabelError, OASISError
from test_app_helpers import make_test_checkpoint, png_bytes

H = W = 64


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)  # the machine is shared; these tests are small
    yield


def scene() -> np.ndarray:
    """sky over a mountain band, grass below, a water pond: classes 1, 5, 3, 4 of the test model."""
    lab = np.full((H, W), 3, np.int64)
    lab[:20] = 1
    lab[20:32] = 5
    lab[44:58, 8:40] = 4
    return lab


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return oasisgan.load(make_test_checkpoint(tmp_path_factory.mktemp("editing") / "toy.ckpt"))


@pytest.fixture(scope="module")
def photo(model):
    """An image the model can make exactly: one noise vector per class, as in the painter."""
    lab = scene()
    z = model.sample_noise(1, seed=11, size=(H, W))
    for k, c in enumerate((1, 5, 4)):
        z = model.resample_region(z, lab == c, seed=20 + k)
    return model.synthesize(lab, z=z)[0], lab


@pytest.fixture(scope="module")
def inversion(model, photo):
    image, lab = photo
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.invert(image, lab, steps=40, seed=1, progress=False)


def test_inversion_beats_random_noise(model, photo, inversion):
    image, lab = photo
    base = random_psnr(model, image, lab, seed=1)  # the noise the inversion starts from
    inv = inversion
    print(f"inversion PSNR {inv.psnr:.2f} dB vs random noise {base:.2f} dB in {inv.seconds:.2f} s")
    assert inv.psnr > base + 8, (inv.psnr, base)
    assert inv.reconstruction.shape == (1, 3, H, W) and inv.z.shape == (1, model.generator.z_dim, H, W)
    # the reported PSNR is that of the returned noise
    again = model.synthesize(lab, z=inv.z)
    assert abs(float(psnr(again, image[None])) - inv.psnr) < 0.05
    assert inv.history[0][2] > inv.history[-1][2]  # the loss went down
    assert inv.stages == ("class", "spatial") and inv.lpips is None
    # the control: without optimisation (lr 0) the same code stays at the start noise's PSNR
    still = model.invert(image, lab, steps=2, seed=1, lr=0.0, progress=False, lpips=False)
    assert abs(still.psnr - base) < 0.01


def test_inversion_is_seeded(model, photo):
    image, lab = photo
    a = model.invert(image, lab, steps=4, seed=3, progress=False, lpips=False)
    b = model.invert(image, lab, steps=4, seed=3, progress=False, lpips=False)
    c = model.invert(image, lab, steps=4, seed=4, progress=False, lpips=False)
    assert torch.equal(a.z, b.z) and not torch.equal(a.z, c.z)


def test_a_batch_of_photos(model, photo):
    image, lab = photo
    other = model.synthesize(lab, seed=5)[0]
    labs = np.stack([lab, np.where(lab == 4, 3, lab)])
    inv = model.invert(torch.stack([image, other]), labs, steps=3, progress=False, lpips=False)
    assert inv.z.shape[0] == 2 and inv.reconstruction.shape == (2, 3, H, W)
    assert bool(inv.present[0, 4]) and not bool(inv.present[1, 4])
    new = labs.copy()
    new[:, :8, :8] = 4  # water: photo 0 has it (its noise), photo 1 not (fresh noise of the seed)
    z = edit_noise(inv, new, seed=2)
    assert torch.allclose(z[0, :, 0, 0], inv.class_noise(4, 0))
    assert torch.equal(z[1, :, 0, 0], model.sample_noise(2, seed=2)[1])
    assert model.edit(inv, new, paste_back=True).composite.shape == (2, 3, H, W)


def test_global_stage_is_one_vector_per_image(model, photo):
    image, lab = photo
    g = model.invert(image, lab, steps=6, stages=["global"], seed=0, progress=False, lpips=False)
    assert torch.equal(g.z, g.z[:, :, :1, :1].expand_as(g.z))
    cls = model.invert(image, lab, steps=6, stages=["class"], seed=0, progress=False, lpips=False)
    for c in (1, 3, 4, 5):  # per-class: constant inside each class
        zc = cls.z[0][:, torch.from_numpy(lab == c)]
        assert torch.allclose(zc, zc[:, :1].expand_as(zc), atol=1e-6)


def test_lpips_is_used_when_given_and_reported_missing_otherwise(model, photo, monkeypatch, tmp_path):
    from oasisgan.metrics.diversity import LPIPS

    image, lab = photo
    torch.manual_seed(0)
    inv = model.invert(image, lab, steps=2, progress=False, lpips=LPIPS("alex"))  # random weights: the path
    assert isinstance(inv.lpips, float) and not inv.notes
    monkeypatch.setenv("OASISGAN_CACHE", str(tmp_path))  # no weights there
    with pytest.warns(UserWarning, match="LPIPS weights not found"):
        inv = model.invert(image, lab, steps=1, progress=False)
    assert inv.lpips is None and "pixel L1 only" in inv.notes[0]


def test_discriminator_feature_loss(model, photo):
    from oasisgan.nn import Discriminator

    image, lab = photo
    with pytest.warns(UserWarning, match="no discriminator"):
        model.invert(image, lab, steps=1, progress=False, lpips=False, d_weight=1.0)
    torch.manual_seed(0)
    model.discriminator = Discriminator.from_config(model.config).eval().requires_grad_(False)
    try:
        inv = model.invert(image, lab, steps=2, progress=False, lpips=False, d_weight=1.0)
        assert not inv.notes and np.isfinite(inv.psnr)
    finally:
        model.discriminator = None


def test_edit_noise_keeps_unchanged_pixels_and_borrows_class_noise(model, inversion):
    inv = inversion
    new = scene()
    new[2:12, 40:60] = 4           # water in the sky: the photo has water
    new[36:42, 44:60] = 7          # building: the photo has none
    z = edit_noise(inv, new, seed=9)
    same = torch.from_numpy(new == scene())
    assert torch.equal(z[0][:, same], inv.z[0][:, same])
    water = torch.from_numpy(new == 4) & ~same
    assert torch.allclose(z[0][:, water], inv.class_noise(4)[:, None].expand(-1, int(water.sum())))
    fresh = model.sample_noise(1, seed=9)[0]
    building = torch.from_numpy(new == 7)
    assert torch.equal(z[0][:, building], fresh[:, None].expand(-1, int(building.sum())))
    z2 = edit_noise(inv, new, new_noise="fresh", seed=9)
    assert torch.equal(z2[0][:, water], fresh[:, None].expand(-1, int(water.sum())))
    with pytest.raises(EditingError, match="new_noise"):
        edit_noise(inv, new, new_noise="bogus")


def test_edit_leaves_the_far_field_unchanged(model, inversion):
    from scipy import ndimage

    inv = inversion
    new = scene()
    new[4:16, 6:22] = 5            # a mountain peak in the sky
    out = model.edit(inv, new)
    assert isinstance(out, Edit) and out.composite is None
    region = new != scene()
    assert torch.equal(out.changed[0], torch.from_numpy(region))
    diff = (out.image - inv.reconstruction).abs().mean(1)[0].numpy()
    far = ~ndimage.binary_dilation(region, iterations=12)
    near_out = ~region & ~far
    print(f"edit: mean change inside {diff[region].mean():.3f}, just outside {diff[near_out].mean():.3f}, "
          f"far (> 12 px) {diff[far].mean():.4f} (max {diff[far].max():.4f})")
    assert diff[region].mean() > 0.1
    assert diff[far].mean() < 0.01 and diff[far].mean() < diff[region].mean() / 20
    # paste-back: the photo's own pixels outside the grown, feathered region
    pb = model.edit(inv, new, paste_back=True, feather=3, grow=2)
    outside = ~ndimage.binary_dilation(region, np.ones((3, 3), bool), iterations=2 + 2 * 3)
    assert torch.equal(pb.composite[0][:, torch.from_numpy(outside)], inv.image[0][:, torch.from_numpy(outside)])
    assert torch.allclose(pb.composite[0][:, torch.from_numpy(region)], pb.image[0][:, torch.from_numpy(region)])
    assert pb.result is pb.composite


def test_feather_mask():
    m = np.zeros((32, 32), bool)
    m[10:20, 10:20] = True
    soft = feather_mask(m, radius=3, grow=1)[0, 0]
    assert soft.shape == (32, 32)
    assert (soft[10:20, 10:20] == 1).all() and soft[0, 0] == 0 and soft[15, 2] == 0
    assert 0 < soft[15, 7] < 1  # the feathered ring
    assert torch.equal(feather_mask(m, radius=0)[0, 0], torch.from_numpy(m).float())


def test_move_region_moves_label_and_noise(model, inversion):
    inv = inversion
    pond = scene() == 4
    label, z = move_region(inv, pond, dy=-6, dx=16)
    assert (label[38:52, 24:56] == 4).all() and label[50, 10] == 3  # moved; uncovered is grass around it
    assert torch.equal(z[0][:, 40, 30], inv.z[0][:, 46, 14])  # the pond's own noise moved with it
    assert torch.allclose(z[0][:, 50, 10], inv.class_noise(3))
    out = model.edit(inv, label, z=z)
    assert out.changed[0, 50, 10] and not out.changed[0, 5, 5]
    with pytest.raises(EditingError, match="empty"):
        move_region(inv, np.zeros((H, W), bool), 1, 1)


def test_transfer_appearance(model, photo, inversion):
    image, lab = photo
    other = model.synthesize(lab, seed=77)[0]  # image B: the same scene with other looks
    inv_b = model.invert(other, lab, steps=6, progress=False, lpips=False)
    out = model.transfer(inv_b, inversion, "sky", paste_back=True)
    sky = torch.from_numpy(lab == 1)
    assert torch.allclose(out.z[0][:, sky], inversion.class_noise(1)[:, None].expand(-1, int(sky.sum())))
    assert torch.equal(out.z[0][:, ~sky], inv_b.z[0][:, ~sky])
    # B's sky now looks like A's: closer to A's sky than B's reconstruction was
    err_before = (inv_b.reconstruction[0][:, sky] - image[:, sky]).abs().mean()
    err_after = (out.image[0][:, sky] - image[:, sky]).abs().mean()
    assert err_after < err_before
    with pytest.raises(EditingError, match="no pixels of class 'building'"):
        model.transfer(inv_b, inversion, "building")
    with pytest.raises(OASISError, match="unknown class"):
        model.transfer(inv_b, inversion, "skyy")


def test_save_load_and_synthesize_z_file(model, inversion, tmp_path):
    from oasisgan.synthesis import load_noise

    path = inversion.save(tmp_path / "z.pt")
    back = Inversion.load(path)
    assert torch.equal(back.z, inversion.z) and back.psnr == inversion.psnr
    assert torch.equal(back.class_z, inversion.class_z)
    assert torch.equal(load_noise(path, z_dim=model.generator.z_dim), inversion.z)  # oasis synthesize --z-file
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(EditingError, match="junk.pt"):
        Inversion.load(tmp_path / "junk.pt")


# ------------------------------------------------------------------------------------------------
# bad input: one line naming the file; the CLI exits 2
def write_photo(path, arr):
    path.write_bytes(png_bytes(arr.astype(np.uint8)))
    return path


@pytest.fixture()
def files(tmp_path, photo):
    image, lab = photo
    img = ((image.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
    return {"image": write_photo(tmp_path / "photo.png", img),
            "label": write_photo(tmp_path / "label.png", lab),
            "small": write_photo(tmp_path / "small.png", img[:32]),
            "ids": write_photo(tmp_path / "ids.png", np.where(lab == 4, 42, lab)),
            "text": tmp_path / "notes.png"}


def test_bad_input_errors(model, files, photo):
    files["text"].write_text("not an image")
    with pytest.raises(EditingError, match=r"small.png: the photo is 64x32 but its label map .*label.png is 64x64"):
        read_pair(model, files["small"], files["label"])
    with pytest.raises(LabelError, match=r"ids.png.*42"):
        read_pair(model, files["image"], files["ids"])
    with pytest.raises(EditingError, match=r"notes.png: not an image file"):
        read_image(files["text"])
    with pytest.raises(EditingError, match="missing.png: image file not found"):
        read_image(files["text"].with_name("missing.png"))
    image, lab = photo
    with pytest.raises(LabelError, match="outside this model's classes"):
        model.invert(image, np.full((H, W), 10), steps=1, progress=False)
    with pytest.raises(EditingError, match="64x32"):
        model.invert(image[:, :32], lab, steps=1, progress=False)
    with pytest.raises(EditingError, match="stages"):
        model.invert(image, lab, steps=1, stages=["pixels"], progress=False)
    with pytest.raises(EditingError, match=r"\[-1, 1\]"):
        model.invert(image * 255, lab, steps=1, progress=False)


def test_cli(model, files, tmp_path, capsys):
    from oasisgan.cli import main

    ckpt = str(model.path)
    files["text"].write_text("not an image")
    base = ["invert", "--checkpoint", ckpt, "--out", str(tmp_path / "out" / "z.pt"), "--no-progress"]
    for image, label, needle in [("small", "label", "small.png: the photo is 64x32"),
                                 ("image", "ids", "ids.png"), ("text", "label", "notes.png: not an image file")]:
        assert main(base + ["--image", str(files[image]), "--label", str(files[label])]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("oasis invert: error: ") and needle in err[0], err
    edited = tmp_path / "edited.png"
    lab = scene()
    lab[4:16, 6:22] = 5
    write_photo(edited, lab)
    rc = main(base + ["--image", str(files["image"]), "--label", str(files["label"]), "--steps", "6", "--json",
                      "--edit-label", str(edited), "--paste-back"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["psnr"] > summary["psnr_random_noise"] and summary["lpips"] is None
    for f in ("z.pt", "z_reconstruction.png", "z_edited.png"):
        assert (tmp_path / "out" / f).is_file()
    # an existing output is not replaced unasked (checked before the inversion runs), or with --force
    before = (tmp_path / "out" / "z_reconstruction.png").read_bytes()
    args = base + ["--image", str(files["image"]), "--label", str(files["label"]), "--steps", "2"]
    assert main(args) == 2
    assert "z.pt exists" in capsys.readouterr().err
    assert (tmp_path / "out" / "z_reconstruction.png").read_bytes() == before
    assert main(args + ["--force"]) == 0
    capsys.readouterr()
    base[4] = str(tmp_path / "z.npy")  # --out must be a .pt
    assert main(base + ["--image", str(files["image"]), "--label", str(files["label"])]) == 2
    assert "z.npy" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# the painter's photo mode (API; the browser flow is in test_app_browser.py)
def test_painter_photo_api(model, photo):
    import base64
    import time

    from oasisgan.app import Painter, serve_in_thread
    from test_app_helpers import decode_image, map_payload, request

    image, lab = photo
    img = ((image.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
    b64 = lambda arr: base64.b64encode(png_bytes(arr.astype(np.uint8))).decode()  # noqa: E731
    srv, thread = serve_in_thread(Painter(model), port=0)
    try:
        url = srv.url + "api/"
        status, res, _ = request(url + "invert", {"image": b64(img), "label": b64(lab[:32]), "name": "p.png"})
        assert status == 400 and "p.png is 64x64 but its label map" in res["error"], res
        status, res, _ = request(url + "invert", {"image": b64(lab), "label": b64(lab), "steps": 0})
        assert status == 400 and "steps" in res["error"]
        status, res, _ = request(url + "invert", {"image": base64.b64encode(b"junk").decode(), "label": b64(lab)})
        assert status == 400 and "not an image" in res["error"]
        status, res, _ = request(url + "invert", {"image": b64(img), "label": b64(lab), "steps": 30})
        assert status == 200, res
        job = res["job"]
        for _ in range(600):
            status, st, _ = request(url + f"invert?job={job}")
            assert status == 200 and st["state"] != "error", st
            if st["state"] == "done":
                break
            time.sleep(0.1)
        ph = st["photo"]
        assert st["step"] == 30 and ph["psnr"] > 20 and decode_image(ph["image"]).shape == (H, W, 3)
        # synthesis with the photo's noise and unchanged label = the reconstruction
        body = {"label": map_payload(lab), "noise": {"seeds": [5], "map": None}, "photo": {"id": ph["id"]}}
        status, res, _ = request(url + "synthesize", body)
        assert status == 200, res
        assert np.abs(decode_image(res["image"]) - decode_image(ph["reconstruction"])).max() <= 1
        # an edit with paste-back: the photo's pixels far away
        new = lab.copy()
        new[4:16, 6:22] = 5
        body = {"label": map_payload(new), "noise": {"seeds": [5], "map": None},
                "photo": {"id": ph["id"], "paste_back": True}}
        status, res, _ = request(url + "synthesize", body)
        out = decode_image(res["image"])
        assert np.abs(out[40:, :] - img[40:, :]).max() <= 1 and np.abs(out[4:16, 6:22] - img[4:16, 6:22]).mean() > 5
        # transfer: a class the source lacks, an unknown photo
        body["photo"]["transfers"] = [{"photo": ph["id"], "class": 7}]
        status, res, _ = request(url + "synthesize", body)
        assert status == 400 and "no pixels of class 'building'" in res["error"]
        body["photo"] = {"id": "nope"}
        status, res, _ = request(url + "synthesize", body)
        assert status == 404 and "open it again" in res["error"]
        status, res, _ = request(url + "invert", [1, 2])
        assert status == 400 and "JSON object" in res["error"]
        status, res, _ = request(url + "invert?job=nope")
        assert status == 404
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def test_inversion_results_are_those_of_before_the_stage_refactor(model, photo):
    """Figures of the inversion as it was written before `InversionOptions` and the stage
    classes (#26), all three stages and the D loss, same seed: the refactor changed no number."""
    from oasisgan.editing import InversionOptions

    image, lab = photo
    opts = InversionOptions(steps=9, stages=("global", "class", "spatial"), d_weight=0.5, seed=5,
                            progress=False, lpips=False)
    inv = model.invert(image, lab, opts)
    assert float(inv.z.double().sum()) == pytest.approx(-11199.108158484101, rel=1e-5)
    assert inv.psnr == pytest.approx(19.66486167907715, rel=1e-5)
    assert inv.history[-1][2] == pytest.approx(0.15459184348583221, rel=1e-5)
    assert [h[0] for h in inv.history] == ["global"] * 3 + ["class"] * 3 + ["spatial"] * 3
    same = model.invert(image, lab, steps=9, stages=("global", "class", "spatial"), d_weight=0.5, seed=5,
                        progress=False, lpips=False)  # keywords: the same options
    assert torch.equal(inv.z, same.z)
    with pytest.raises(TypeError, match="unknown option"):
        model.invert(image, lab, step=3)
