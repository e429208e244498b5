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
from oasisgan.checkpoint import (CheckpointError, atomic_save, read_checkpoint, remove_stale_temporaries,
                                 save_checkpoint)
from oasisgan.cli import main
from oasisgan.data import config_for_root
from oasisgan.errors import first_line
from oasisgan.nn import Discriminator, Generator

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
    assert len(list(folder.glob(".latest.ckpt.*.tmp"))) == 2
    atomic_save({"a": 1}, folder / "latest.ckpt")
    left = sorted(p.name for p in folder.iterdir())
    assert left == sorted(["latest.ckpt", mine.name, foreign.name])
    assert remove_stale_temporaries(folder) == 0


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
