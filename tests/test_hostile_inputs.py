"""Issue 24: the commands tried as a hostile and careless user would. Each case gets one clear
line (exit code 2) or the right result; nothing that is not ours is deleted or overwritten.
(Pretrained names and damaged zips: test_pretrained.py; export folders, int64 weights and
save_pretrained on a full disk: test_hub.py; generated inputs: test_fuzz.py.)"""
from __future__ import annotations

import base64
import errno
import io
import json
import subprocess
import threading

import numpy as np
import pytest
import torch
from PIL import Image

import oasisgan
from oasisgan.loading.checkpoint import read_checkpoint
from oasisgan.cli import main
from oasisgan.config import ConfigError

from test_app_helpers import make_test_checkpoint
from test_train_helpers import tiny_root  # noqa: F401


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_test_checkpoint(tmp_path_factory.mktemp("hostile") / "toy.ckpt")


def one_error_line(capsys) -> str:
    """The one error line of a command (notes printed before it aside), without any traceback."""
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if ": error: " in line]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    return errors[0]


TINY_RUN = ["--set", "channels_G=8", "--set", "channels_D=8", "--crop-size", "32", "--load-size", "40",
            "--batch-size", "2", "--num-workers", "0", "--set", "spade_hidden=16", "--set", "z_dim=8",
            "--set", "bn_stats_batches=2", "--sample-every", "0", "--ckpt-every", "0", "--no-progress"]


# --- saves on a full or read-only disk ---------------------------------------------------------
def test_training_on_a_full_disk_is_one_line_naming_the_folder_and_the_kept_checkpoint(
        tiny_root, tmp_path, capsys, monkeypatch):
    """The second save of the run hits ENOSPC inside torch.save (which then raised its own
    'unexpected pos' error): one line, exit 2, latest.ckpt of iteration 2 intact, no temporary."""
    from oasisgan.loading import checkpoint

    real, calls = torch.save, {"n": 0}

    def filling(obj, f, *a, **k):
        calls["n"] += 1
        if calls["n"] >= 2:
            f.write(b"PK\x03\x04" + b"\0" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, f, *a, **k)

    monkeypatch.setattr(checkpoint.torch, "save", filling)
    out = tmp_path / "run"
    assert main(["train", "--preset", "toy", "--data-root", str(tiny_root), "--out", str(out), "--iters", "6",
                 "--save-every", "2"] + TINY_RUN) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    line = err[-1]
    assert line.startswith("oasis train: error: cannot write latest.ckpt to " + str(out / "checkpoints"))
    assert "No space left on device; iteration 4 is not saved; the last good checkpoint is" in line
    assert "(iteration 2), kept" in line
    monkeypatch.undo()
    assert read_checkpoint(out / "checkpoints/latest.ckpt")["training"]["iteration"] == 2
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["latest.ckpt"]


@pytest.fixture()
def small_tmpfs(tmp_path):
    """A 40 MiB tmpfs, where this test may mount one (root on Linux); skipped elsewhere."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


def test_training_into_a_really_full_tmpfs(tiny_root, small_tmpfs, capsys):
    out = small_tmpfs / "run"
    # a 40 MiB disk takes the first latest.ckpt of the toy preset's networks (27 MB), not a second one beside it
    args = ["train", "--preset", "toy", "--data-root", str(tiny_root), "--out", str(out), "--iters", "6",
            "--save-every", "2", "--crop-size", "32", "--load-size", "40", "--batch-size", "2",
            "--num-workers", "0", "--sample-every", "0", "--ckpt-every", "0", "--no-progress"]
    assert main(args) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "No space left on device" in line and str(out / "checkpoints") in line and "kept" in line
    assert read_checkpoint(out / "checkpoints/latest.ckpt")["training"]["iteration"] == 2
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    assert main(args + ["--resume"]) == 2
    assert "Read-only file system" in capsys.readouterr().err.strip().splitlines()[-1]


# --- config fields by type and range, at every edge ---------------------------------------------
BAD_FIELDS = [("channels_G", 100000, "must lie in"), ("channels_G", 16.5, "must be an integer"),
              ("channels_G", True, "must be an integer"), ("aspect_ratio", -1, "must lie in"),
              ("noise_3d", "false", "must be true or false"), ("z_dim", None, "must be an integer"),
              ("palette", [[300, 0, 0]] * 10, "0..255"), ("semantic_nc", "10", "must be an integer")]


@pytest.mark.parametrize("field,value,why", BAD_FIELDS)
def test_a_saved_model_config_of_the_wrong_type_or_range_is_refused_by_name(ckpt, tmp_path, capsys,
                                                                             field, value, why):
    out = oasisgan.load(ckpt).save_pretrained(tmp_path / "m")
    data = json.loads((out / "config.json").read_text())
    data[field] = value
    (out / "config.json").write_text(json.dumps(data))
    label = tmp_path / "l.png"
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(label)
    assert main(["synthesize", "--checkpoint", str(out), "--labels", str(label), "--out", str(tmp_path / "o")]) == 2
    line = one_error_line(capsys)
    assert f"config field '{field}'" in line and why in line


def test_a_checkpoint_config_and_yaml_files_are_checked_the_same_way(ckpt, tmp_path, capsys):
    ck = torch.load(ckpt, weights_only=True)
    ck["config"]["model"]["noise_3d"] = "false"
    torch.save(ck, tmp_path / "bad.ckpt")
    with pytest.raises(oasisgan.loading.checkpoint.CheckpointError, match="config field 'noise_3d' = 'false'"):
        oasisgan.load(tmp_path / "bad.ckpt")
    y = tmp_path / "c.yaml"
    for text, words in (("lr_g: .nan\n", "'lr_g' = nan: must be a finite number"),
                        ("channels_G: yes\n", "'channels_G' = True: must be an integer"),
                        ("lr_g: 1e-4\n", None)):  # YAML 1.1 reads 1e-4 as a string: still a number here
        y.write_text(text)
        rc = main(["train", "--preset", "ade20k", "--out", str(tmp_path / "r"), "--config", str(y), "--dry-run"])
        if words is None:
            assert rc == 0 and "0.0001" in capsys.readouterr().out
        else:
            assert rc == 2 and words in one_error_line(capsys)


@pytest.mark.parametrize("args,words", [
    (["--lr-g", "nan"], "'lr_g' = nan: must be a finite number"),
    (["--lr-d", "inf"], "'lr_d' = inf"),
    (["--lr-g", "-1"], "'lr_g' = -1.0: must lie in (0, 1]"),
    (["--iters", "-5"], "'iters' = -5: must lie in [1,"),
    (["--iters", "0"], "'iters' = 0"),
    (["--batch-size", "0"], "'batch_size' = 0"),
    (["--set", "noise_3d=maybe"], "cannot read 'maybe' as bool"),
])
def test_training_arguments_are_checked_before_anything_runs(tmp_path, capsys, args, words):
    out = tmp_path / "run"
    assert main(["train", "--preset", "ade20k", "--out", str(out), "--dry-run"] + args) == 2
    assert words in one_error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("arg,value", [("--lr", "nan"), ("--lr", "inf"), ("--lr", "1e30"), ("--lr", "-1"),
                                       ("--lr", "0"), ("--prior-weight", "nan"), ("--prior-weight", "-1"),
                                       ("--d-weight", "inf"), ("--steps", "10000000000000"), ("--steps", "-1"),
                                       ("--seed", "-3")])
def test_invert_arguments_must_be_finite_and_in_range(tmp_path, capsys, arg, value):
    with pytest.raises(SystemExit) as e:
        main(["invert", "--checkpoint", "m.ckpt", "--image", "p.png", "--label", "l.png", "--out",
              str(tmp_path / "z.pt"), arg, value])
    assert e.value.code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"oasis invert: error: argument {arg}: must be") and repr(value) in line


# --- photos read right, label maps as JPEG refused ---------------------------------------------
def gradient() -> np.ndarray:
    return np.tile(np.linspace(0, 255, 64).round().astype(np.uint8), (48, 1))


def as_mode(grey: np.ndarray, mode: str) -> Image.Image:
    """The same grey picture in `mode`, as a camera or a tool would store it."""
    if mode == "I;16":
        return Image.fromarray(grey.astype(np.uint16) * 257)
    if mode == "I":
        return Image.fromarray(grey.astype(np.int32) * 257, "I")
    if mode == "F":
        return Image.fromarray(grey.astype(np.float32) / 255, "F")
    return Image.fromarray(grey, "L").convert(mode)


@pytest.mark.parametrize("mode,fmt", [("L", "PNG"), ("LA", "PNG"), ("P", "PNG"), ("RGB", "PNG"), ("RGBA", "PNG"),
                                      ("CMYK", "TIFF"), ("I;16", "PNG"), ("I;16", "TIFF"), ("I", "TIFF"),
                                      ("F", "TIFF"), ("1", "PNG")])
def test_every_photo_mode_is_read_with_its_real_brightness(tmp_path, mode, fmt):
    from oasisgan.data.photos import read_photo
    from oasisgan.editing import read_image

    grey = gradient()
    if mode == "1":
        grey = np.where(grey > 127, 255, 0).astype(np.uint8)
    path = tmp_path / f"photo.{fmt.lower()}"
    as_mode(grey, mode).save(path, format=fmt)
    rgb = np.asarray(read_photo(path)).astype(int)
    tolerance = 2 if mode in ("P", "CMYK") else 0
    assert rgb.shape == (48, 64, 3) and np.abs(rgb - grey[..., None]).max() <= tolerance, mode
    t = read_image(path)  # what invert reads
    assert abs(float(t.mean()) - (grey.mean() / 127.5 - 1)) < 0.02


def test_a_16_bit_photo_uploaded_to_the_painter_is_not_white(ckpt):
    from oasisgan.app import Painter

    p = Painter(oasisgan.load(ckpt))
    buf = io.BytesIO()
    as_mode(gradient(), "I;16").save(buf, format="PNG")
    rgb, _, size = p.photos.read_photo(buf.getvalue(), "photo16.png")
    assert size == (48, 64) and 100 < rgb.mean() < 155  # the gradient, not 255 everywhere


def test_photos_with_nan_are_refused_by_name(tmp_path):
    from oasisgan.editing import EditingError, read_image

    Image.fromarray(np.full((8, 8), np.nan, np.float32), "F").save(tmp_path / "nan.tiff")
    with pytest.raises(EditingError, match="nan.tiff: the image holds NaN"):
        read_image(tmp_path / "nan.tiff")


def test_a_jpeg_label_map_is_refused_on_every_path(ckpt, tmp_path, capsys):
    lab = np.random.default_rng(0).integers(0, 10, (64, 64)).astype(np.uint8)
    for name in ("map.jpg", "map.png"):  # a JPEG under a PNG's name too
        Image.fromarray(lab).save(tmp_path / name, format="JPEG", quality=30)
        assert main(["synthesize", "--checkpoint", str(ckpt), "--labels", str(tmp_path / name),
                     "--out", str(tmp_path / "o")]) == 2
        line = one_error_line(capsys)
        assert name in line and "JPEG file, whose compression changes label ids" in line
    with pytest.raises(oasisgan.errors.LabelError, match="JPEG"):
        oasisgan.load(ckpt).read_label(tmp_path / "map.png")


# --- bounds in the painter -----------------------------------------------------------------------
def test_the_painter_decodes_a_bounded_number_of_pixels_at_once(ckpt):
    """A decode that would go over the budget waits for the others, then gets 503; the budget
    is taken before decoding (from the header) and given back after."""
    from oasisgan.app import Painter
    from oasisgan.app.core import PixelBudget, RequestError

    p = Painter(oasisgan.load(ckpt))
    p.decoding = PixelBudget(pixels=200 * 200, wait_s=0.2)
    buf = io.BytesIO()
    Image.fromarray(np.zeros((200, 200), np.uint8)).save(buf, format="PNG")
    body = {"file": base64.b64encode(buf.getvalue()).decode()}
    assert p.decode_upload(body)["classes_present"] == [0]
    held, release = threading.Event(), threading.Event()

    def other_request():
        with p.decoding.take(100 * 100):
            held.set()
            release.wait(5)

    t = threading.Thread(target=other_request)
    t.start()
    held.wait(5)
    with pytest.raises(RequestError, match="busy") as e:
        p.decode_upload(body)
    assert e.value.status == 503
    photo = {"image": body["file"], "label": body["file"]}
    with pytest.raises(RequestError, match="busy"):
        p.photos.start(photo)
    release.set()
    t.join(5)
    assert p.decoding.used == 0 and p.decode_upload(body)["classes_present"] == [0]


# --- data toy never empties a folder of the user's ------------------------------------------------
def test_data_toy_refuses_a_folder_that_is_not_a_toy_dataset(tmp_path, capsys):
    mine = tmp_path / "my_data"
    (mine / "train" / "images").mkdir(parents=True)
    (mine / "train" / "images" / "0001.png").write_bytes(b"mine")
    (mine / "classes.yaml").write_text("classes: [a, b]\n")
    assert main(["data", "toy", "--out", str(mine), "--train", "2", "--val", "1", "--workers", "1"]) == 2
    assert "not a toy dataset" in one_error_line(capsys)
    assert (mine / "train" / "images" / "0001.png").read_bytes() == b"mine"


def test_config_errors_name_the_field_through_the_python_api_too():
    with pytest.raises(ConfigError, match="'channels_G' = 100000: must lie in"):
        oasisgan.preset("ade20k", channels_G=100000)
