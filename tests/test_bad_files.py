"""Bad files get one clear line and lose nothing: empty and non-finite checkpoints, the temporary
files of a killed save, a palette with one colour for two classes."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import yaml

import oasisgan
from oasisgan.loading.checkpoint import (CheckpointError, atomic_save, read_checkpoint, remove_stale_temporaries,
                                 save_checkpoint)
from oasisgan.cli import main
from oasisgan.data import check_dataset, config_for_root
from oasisgan.errors import DataError, first_line
from oasisgan.nn import Discriminator, Generator

from test_train_helpers import tiny_root  # noqa: F401

TINY = dict(channels_G=4, spade_hidden=8, channels_D=4)


@pytest.fixture()
def tiny_ckpt(toy_root, tmp_path):
    cfg = config_for_root("toy", toy_root, **TINY)
    torch.manual_seed(0)
    g, d = Generator.from_config(cfg), Discriminator.from_config(cfg)
    path = tmp_path / "tiny.ckpt"
    save_checkpoint(path, config=cfg, ema=g, generator=g, discriminator=d)
    return cfg, g, d, path


def test_first_line_of_an_empty_message():
    assert first_line(EOFError()) == "EOFError"
    assert first_line(ValueError("a\nb")) == "a"


@pytest.mark.parametrize("command", [["info"], ["synthesize", "--labels", "x.png", "--out", "o"],
                                     ["export", "--format", "onnx", "--out", "m.onnx"]])
def test_empty_checkpoint_is_one_line_exit_2(tmp_path, capsys, command):
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    rc = main([command[0], "--checkpoint", str(empty)] + command[1:])
    err = capsys.readouterr().err
    assert rc == 2 and "empty (0 bytes)" in err and str(empty) in err and "Traceback" not in err
    with pytest.raises(CheckpointError, match="empty"):
        oasisgan.load(empty)


@pytest.mark.parametrize("content", [b"not a checkpoint at all", b"PK\x03\x04truncated zip"])
def test_unreadable_checkpoint_names_the_file(tmp_path, content):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(content)
    with pytest.raises(CheckpointError, match="bad.ckpt"):
        oasisgan.load(bad)


def test_non_finite_weights_are_refused_unless_allowed(tiny_ckpt, tmp_path, capsys, monkeypatch):
    cfg, g, d, path = tiny_ckpt
    ckpt = read_checkpoint(path)
    name = "body.1.conv_0.weight_orig"
    ckpt["ema"][name][0, 0, 0, 0] = float("nan")
    bad = tmp_path / "nan.ckpt"
    atomic_save(ckpt, bad)
    with pytest.raises(CheckpointError, match=f"'{name}'.*OASISGAN_ALLOW_NONFINITE"):
        oasisgan.load(bad)
    assert main(["info", "--checkpoint", str(bad)]) == 0  # info reads the config only
    capsys.readouterr()
    assert main(["synthesize", "--checkpoint", str(bad), "--labels", "x.png", "--out", str(tmp_path / "o")]) == 2
    assert "non-finite" in capsys.readouterr().err
    assert oasisgan.load(bad, allow_nonfinite=True).generator is not None
    monkeypatch.setenv("OASISGAN_ALLOW_NONFINITE", "1")
    assert oasisgan.load(bad).generator is not None
    # the discriminator is checked too when it is loaded
    ckpt = read_checkpoint(path)
    ckpt["discriminator"]["layer_up_last.bias"][0] = float("inf")
    atomic_save(ckpt, bad)
    monkeypatch.delenv("OASISGAN_ALLOW_NONFINITE")
    with pytest.raises(CheckpointError, match="discriminator"):
        oasisgan.load(bad)
    assert oasisgan.load(bad, discriminator=False).discriminator is None


def test_temporaries_of_a_killed_save_are_removed_at_the_next_save(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    # a save SIGKILLed mid-write (its process is gone) and an older-format leftover
    code = ("import os, tempfile; fd, p = tempfile.mkstemp(prefix='.latest.ckpt.%d.' % os.getpid(), "
            f"suffix='.tmp', dir={str(folder)!r}); os.write(fd, b'x' * 1000); os.kill(os.getpid(), 9)")
    subprocess.run([sys.executable, "-c", code])
    (folder / ".latest.ckpt.abc123.tmp").write_bytes(b"old")
    mine = folder / f".other.ckpt.{os.getpid()}.zz.tmp"  # this process's own save in progress
    mine.write_bytes(b"")
    foreign = folder / ".notes.tmp"  # not ours
    foreign.write_bytes(b"")
    # shaped like ours, but of another file: a write of latest.ckpt never touches it (a record
    # written into a folder of the user's must not delete what it does not own)
    other = folder / ".results.csv.999999999.x1.tmp"
    other.write_bytes(b"")
    assert len(list(folder.glob(".latest.ckpt.*.tmp"))) == 2
    atomic_save({"a": 1}, folder / "latest.ckpt")
    left = sorted(p.name for p in folder.iterdir())
    assert left == sorted(["latest.ckpt", mine.name, foreign.name, other.name])
    assert remove_stale_temporaries(folder) == 1 and not other.exists()  # the run folder's own sweep


def test_duplicate_palette_colours_fail_data_check(toy_root, tmp_path, capsys):
    import shutil

    root = tmp_path / "dup"
    shutil.copytree(toy_root, root)
    spec = yaml.safe_load((root / "classes.yaml").read_text())
    classes = spec["classes"]
    classes[2]["color"] = list(classes[1]["color"])
    (root / "classes.yaml").write_text(yaml.safe_dump(spec))
    rc = main(["data", "check", "--preset", "toy", "--root", str(root), "--quick", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 1 and "one colour to several classes" in out and "sky (1), mountain (2)" in out


# --- (3) a bad file anywhere in the dataset ---------------------------------------------------------

def _cut(path, keep: float = 0.6) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.fixture()
def toy_copy(toy_root, tmp_path):
    import shutil

    dst = tmp_path / "toy"
    shutil.copytree(toy_root, dst)
    return dst


def test_headers_check_opens_every_file(toy_copy):
    """A cut-off image and label outside the 16-pair sample: `headers` finds both (the sample does
    not), names them, and decodes only the sample."""
    cfg = config_for_root("toy", toy_copy)
    image, label = toy_copy / "train/images/00001.png", toy_copy / "train/labels/00002.png"
    _cut(image)
    _cut(label)
    sample = check_dataset(cfg, toy_copy, mode="sample", splits=["train"])
    assert sample.ok, sample.format()
    rep = check_dataset(cfg, toy_copy, mode="headers", splits=["train"])
    s = rep.splits["train"]
    assert (s.checked, s.decoded, s.mode) == (64, 16, "headers")
    assert sorted(f for f, _ in s.unreadable) == [str(image), str(label)]
    assert all("cut off" in why for _, why in s.unreadable)
    assert not rep.ok and str(image) in rep.format()
    auto = check_dataset(cfg, toy_copy, mode="auto", splits=["train"])  # 64 pairs: decoded in full
    assert auto.splits["train"].mode == "full" and not auto.ok


def test_cut_off_jpeg_is_found_by_headers(tmp_path):
    from PIL import Image

    from oasisgan.data.check import _cut_off

    p = tmp_path / "x.jpg"
    Image.new("RGB", (64, 48), (10, 200, 30)).save(p, quality=90)
    assert _cut_off(p, "JPEG") is None
    _cut(p, 0.7)
    assert "cut off" in _cut_off(p, "JPEG")


def test_training_refuses_a_bad_file_at_the_end_of_the_dataset_before_the_first_iteration(toy_copy, tmp_path):
    from oasisgan.training import train

    from test_train_helpers import tiny_cfg

    bad = toy_copy / "train/images/00063.png"
    _cut(bad)
    with pytest.raises(DataError, match="00063.png"):
        train(tiny_cfg(toy_copy, batch_size=2), toy_copy, tmp_path / "run", progress=False)
    assert not (tmp_path / "run/checkpoints/latest.ckpt").exists()


@pytest.mark.parametrize("workers", [0, 1])
def test_a_file_that_fails_mid_run_saves_then_stops_and_resume_is_exact(tiny_root, tmp_path, capsys, workers):
    """Unchecked, a file breaks during training: latest.ckpt of the last finished iteration is saved,
    the error names the file (also through a DataLoader worker), and after the fix a resumed run
    ends bit-identical to one that never stopped."""
    import shutil

    from oasisgan.training import train

    from test_train_helpers import states_equal, tiny_cfg

    root = tmp_path / "data"
    shutil.copytree(tiny_root, root)
    cfg = tiny_cfg(root, iters=6, num_workers=workers, freq_save_latest=100, freq_print=100)
    train(cfg, root, tmp_path / "clean", progress=False)

    bad = root / "train/images/00005.png"
    good = bad.read_bytes()
    _cut(bad)
    out = tmp_path / "run"
    with pytest.raises(DataError) as err:
        train(cfg, root, out, progress=False, check_data=False)
    msg = str(err.value)
    assert str(bad) in msg and "Saved" in msg and "--resume" in msg and "\n" not in msg
    stopped = read_checkpoint(out / "checkpoints/latest.ckpt")["training"]["iteration"]
    assert f"(iteration {stopped})" in msg and stopped < 6
    bad.write_bytes(good)
    train(cfg, root, out, resume=True, progress=False)
    a = read_checkpoint(tmp_path / "clean/checkpoints/latest.ckpt")
    b = read_checkpoint(out / "checkpoints/latest.ckpt")
    for part in ("generator", "discriminator", "ema"):
        assert states_equal(a[part], b[part]) == [], part


def test_an_error_in_the_loop_saves_first_unless_it_struck_mid_update(tiny_root, tmp_path, monkeypatch, capsys):
    from oasisgan.training import train
    from oasisgan.training.periodic import PeriodicWork
    from oasisgan.training.step import TrainStep

    from test_train_helpers import states_equal, tiny_cfg

    # after an iteration: the sample grid fails at iteration 2 -> latest.ckpt of iteration 2, then the error
    def broken_grid(self, step):
        raise OSError(5, "Input/output error", "samples/iter_2.png")

    monkeypatch.setattr(PeriodicWork, "sample_grid", broken_grid)
    out = tmp_path / "run"
    with pytest.raises(OSError, match="Input/output"):
        train(tiny_cfg(tiny_root, iters=6, freq_save_latest=100), tiny_root, out, progress=False)
    assert read_checkpoint(out / "checkpoints/latest.ckpt")["training"]["iteration"] == 2
    assert "saved" in capsys.readouterr().err.split("error at iteration 2")[1]
    monkeypatch.undo()
    # once the cause is gone, resume ends bit-identical to a run that never failed
    train(tiny_cfg(tiny_root, iters=6, freq_save_latest=100), tiny_root, out, resume=True, progress=False)
    train(tiny_cfg(tiny_root, iters=6, freq_save_latest=100), tiny_root, tmp_path / "clean", progress=False)
    a = read_checkpoint(tmp_path / "clean/checkpoints/latest.ckpt")
    b = read_checkpoint(out / "checkpoints/latest.ckpt")
    for part in ("generator", "discriminator", "ema"):
        assert states_equal(a[part], b[part]) == [], part

    # inside the D update of iteration 3, after G's: nothing is saved, the last good one is named
    original, calls = TrainStep.losses_d, {"n": 0}

    def failing(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("CUDA out of memory (simulated)")
        return original(self, *a, **k)

    monkeypatch.setattr(TrainStep, "losses_d", failing)
    out = tmp_path / "run2"
    with pytest.raises(RuntimeError, match="simulated"):
        train(tiny_cfg(tiny_root, iters=6, freq_save_latest=2), tiny_root, out, progress=False)
    assert read_checkpoint(out / "checkpoints/latest.ckpt")["training"]["iteration"] == 2
    text = capsys.readouterr().err
    assert "during the update of iteration 3" in text and "(iteration 2)" in text
