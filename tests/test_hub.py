"""save_pretrained / from_pretrained folders (config.json + safetensors), `oasis export --format
safetensors`, and Hub ids through a stand-in for huggingface_hub (never the network)."""
from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

import oasisgan
from oasisgan.cli import main as cli_main
from oasisgan.config import ModelConfig
from oasisgan.loading.hub import PretrainedFormatError, config_from_model_dict, model_config_dict
from oasisgan.labels import one_hot
from test_app_helpers import CLASS_NAMES, PALETTE, make_test_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_test_checkpoint(tmp_path_factory.mktemp("hub") / "toy.ckpt")


def outputs(model, seed=0):
    cfg = model.config
    g = torch.Generator().manual_seed(seed)
    label = one_hot(torch.randint(0, cfg.semantic_nc, (1, cfg.height, cfg.width), generator=g), cfg.semantic_nc)
    with torch.no_grad():
        return model.generator(label, torch.randn(1, cfg.z_dim, generator=g))


def test_save_pretrained_round_trip_without_pickle(ckpt, tmp_path, monkeypatch):
    model = oasisgan.load(ckpt)
    out = model.save_pretrained(tmp_path / "m", card={"metrics": {"mIoU": 12.5}, "metrics_source": "test"})
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]  # no D
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "oasis" and config["class_names"] == CLASS_NAMES
    assert set(config) - {"model_type", "format_version", "oasisgan_version"} == set(ModelConfig.__dataclass_fields__)
    card = (out / "README.md").read_text()
    assert "toy" in card and f"{len(CLASS_NAMES)} label ids" in card and "| mIoU | 12.5 |" in card
    # reading it back never unpickles: torch.load is not called at all
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load used"))
    again = oasisgan.from_pretrained(out)
    assert again.config.palette == PALETTE and again.config.preset == "toy"
    assert again.config.to_dict() == model.config.to_dict()
    assert torch.equal(outputs(model), outputs(again))
    assert torch.equal(outputs(oasisgan.load(out)), outputs(model))  # oasisgan.load reads folders too


def test_model_config_dict_round_trip_keeps_the_networks():
    cfg = oasisgan.preset("cityscapes", channels_G=8, z_dim=4, semantic_nc=7)
    back = config_from_model_dict(model_config_dict(cfg))
    assert back.to_dict() == cfg.to_dict()  # preset fields + stored fields give the same config back


def test_export_safetensors_cli_with_discriminator(tmp_path, capsys):
    from oasisgan.loading.checkpoint import save_checkpoint
    from oasisgan.nn import Discriminator, Generator

    cfg = oasisgan.preset("ade20k", semantic_nc=5, channels_G=2, channels_D=2, z_dim=3, crop_size=64, load_size=64)
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "m.ckpt", config=cfg, ema=Generator.from_config(cfg),
                           generator=Generator.from_config(cfg), discriminator=Discriminator.from_config(cfg),
                           meta={"iteration": 777})
    out = tmp_path / "export"
    assert cli_main(["export", "--format", "safetensors", "--checkpoint", str(path), "--out", str(out),
                     "--discriminator"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (out / "discriminator.safetensors").is_file()
    assert "training iterations | 777" in (out / "README.md").read_text()
    model, ref = oasisgan.from_pretrained(out), oasisgan.load(path)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model.discriminator(x), ref.discriminator(x))
    # exporting again needs --force, and then replaces only the files it writes
    assert cli_main(["export", "--format", "safetensors", "--checkpoint", str(path), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    (out / "notes.txt").write_text("mine")
    assert cli_main(["export", "--format", "safetensors", "--checkpoint", str(path), "--out", str(out),
                     "--force"]) == 0
    assert not (out / "discriminator.safetensors").exists()  # the earlier save's, stale now
    assert (out / "notes.txt").read_text() == "mine"
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporaries left


def test_corrupt_folder_is_a_clear_error(ckpt, tmp_path):
    out = oasisgan.load(ckpt).save_pretrained(tmp_path / "m")
    (out / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(PretrainedFormatError, match="cannot read .*model.safetensors"):
        oasisgan.from_pretrained(out)
    (out / "config.json").write_text(json.dumps({"model_type": "oasis", "format_version": 99}))
    with pytest.raises(PretrainedFormatError, match="newer oasisgan"):
        oasisgan.from_pretrained(out)
    assert cli_main(["synthesize", "--checkpoint", str(out), "--labels", ".", "--out", str(tmp_path / "o")]) == 2


def test_hub_id_through_snapshot_download(ckpt, tmp_path, monkeypatch):
    folder = oasisgan.load(ckpt).save_pretrained(tmp_path / "snap")
    calls = []

    def snapshot_download(repo_id, revision=None, allow_patterns=None, **kw):
        calls.append((repo_id, revision, tuple(allow_patterns)))
        return str(folder)

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(snapshot_download=snapshot_download))
    monkeypatch.setenv("OASISGAN_HOME", str(tmp_path / "home"))
    model = oasisgan.from_pretrained("someone/oasis-toy", revision="v1", discriminator=False)
    assert model.config.class_names == CLASS_NAMES
    assert calls == [("someone/oasis-toy", "v1", ("config.json", "model.safetensors", "README.md"))]
    # a registry name can point at a Hub repo too
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "registry.json").write_text(json.dumps({"street": {"hub": "me/street", "revision": "main"}}))
    assert oasisgan.from_pretrained("street").config.preset == "toy"
    assert calls[-1][:2] == ("me/street", "main") and "discriminator.safetensors" in calls[-1][2]


def test_hub_id_without_huggingface_hub_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails
    monkeypatch.setenv("OASISGAN_HOME", str(tmp_path))
    with pytest.raises(oasisgan.errors.OASISError, match=r"pip install 'oasisgan\[hub\]'"):
        oasisgan.from_pretrained("someone/oasis-toy")


# --- hostile and careless use (issue 24) -------------------------------------------------------
def test_export_never_deletes_what_it_did_not_write(ckpt, tmp_path, capsys, monkeypatch):
    """`export --out myproject` emptied an existing folder; `--out file.txt` replaced a file."""
    project = tmp_path / "myproject"
    (project / "data").mkdir(parents=True)
    (project / "thesis.tex").write_text("mine")
    (project / "data" / "x.csv").write_text("1,2")
    args = ["export", "--format", "safetensors", "--checkpoint", str(ckpt), "--out"]
    assert cli_main(args + [str(project)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not empty" in err[0] and "--force" in err[0]
    assert sorted(p.name for p in project.iterdir()) == ["data", "thesis.tex"]
    # --force writes its own files beside the user's and touches nothing else
    assert cli_main(args + [str(project), "--force"]) == 0
    assert sorted(p.name for p in project.iterdir()) == ["README.md", "config.json", "data", "model.safetensors",
                                                       "thesis.tex"]
    assert (project / "thesis.tex").read_text() == "mine" and (project / "data" / "x.csv").is_file()
    assert oasisgan.from_pretrained(project).config.preset == "toy"
    # a file is never replaced by a folder, not even with --force
    f = tmp_path / "existing_file.txt"
    f.write_text("mine")
    for extra in ([], ["--force"]):
        assert cli_main(args + [str(f)] + extra) == 2
        assert "not a folder" in capsys.readouterr().err and f.read_text() == "mine"
    # ONNX: an existing file needs --force (the check comes before the model is even loaded)
    assert cli_main(["export", "--checkpoint", str(tmp_path / "nope.ckpt"), "--out", str(f)]) == 2
    assert "exists" in capsys.readouterr().err and f.read_text() == "mine"
    # --out . : a non-empty working folder is refused in one line; an empty one works
    monkeypatch.chdir(project)
    assert cli_main(args + ["."]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    assert cli_main(args + ["."]) == 0
    assert sorted(p.name for p in empty.iterdir()) == ["README.md", "config.json", "model.safetensors"]


def test_save_pretrained_on_a_full_disk_names_the_folder_and_keeps_the_old_model(ckpt, tmp_path, monkeypatch):
    import errno

    from oasisgan.loading import hub
    from oasisgan.errors import OutputError

    model = oasisgan.load(ckpt)
    out = model.save_pretrained(tmp_path / "m")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(hub, "_save_safetensors", full)
    for target, force in ((out, True), (tmp_path / "new", False)):
        with pytest.raises(OutputError, match=f"cannot write to {target}: No space left on device; "
                                              "nothing there was changed"):
            model.save_pretrained(target, force=force)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not (tmp_path / "new").exists() and [p for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_integer_weights_are_refused_not_read_as_black_images(ckpt, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    from oasisgan.loading.checkpoint import CheckpointError

    out = oasisgan.load(ckpt).save_pretrained(tmp_path / "m")
    state = load_file(str(out / "model.safetensors"))
    save_file({k: v.to(torch.int64) if v.is_floating_point() else v for k, v in state.items()},
              str(out / "model.safetensors"))
    with pytest.raises(CheckpointError, match="generator weight '.*' is stored as int64, not floating point"):
        oasisgan.from_pretrained(out)
    label = tmp_path / "label.png"
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(label)
    assert cli_main(["synthesize", "--checkpoint", str(out), "--labels", str(label), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is stored as int64" in err[0]
