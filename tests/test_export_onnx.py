"""ONNX export: parity with PyTorch in onnxruntime, dynamic batch and size, the CLI's exit codes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import oasisgan  # noqa: E402
from oasisgan import export as E  # noqa: E402
from oasisgan import synthesis as S  # noqa: E402
from oasisgan.loading.checkpoint import save_checkpoint  # noqa: E402
from oasisgan.cli import main  # noqa: E402
from oasisgan.config import preset  # noqa: E402
from oasisgan.labels import one_hot  # noqa: E402
from oasisgan.nn import Generator  # noqa: E402
from oasisgan.nn.layers import init_weights, settle_spectral_norms  # noqa: E402


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    cfg = preset("toy", semantic_nc=10, channels_G=8, num_res_blocks=3)
    torch.manual_seed(0)
    g = Generator.from_config(cfg)
    init_weights(g, gain=1.0)  # outputs of order 1, so the parity check means something
    settle_spectral_norms(g, 20)
    g.train()
    with torch.no_grad():  # BatchNorm statistics and spectral-norm vectors as after training
        for k in range(3):
            g(one_hot(torch.randint(0, 10, (4, 64, 64)), 10), torch.randn(4, cfg.z_dim))
    path = tmp_path_factory.mktemp("export") / "m.ckpt"
    save_checkpoint(path, config=cfg, ema=g.eval(), generator=g)
    return path


def test_onnx_parity_dynamic_batch_and_size(ckpt, tmp_path):
    model = oasisgan.load(ckpt)
    rep = E.export_onnx(model, tmp_path / "g.onnx")
    assert rep["checked"] and rep["max_abs_diff"] < 1e-4 and rep["max_abs_diff_other_size"] < 1e-4
    assert rep["inputs"] == ["label", "z"] and rep["dynamic_size"]
    sess = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["label", "z"]
    lab = torch.randint(0, 10, (64, 64))
    # the ONNX model with broadcast noise gives synthesize()'s images; local control works too
    z = model.sample_noise(3, seed=0)
    zs = model.resample_region(z, lab < 3, seed=1)
    for noise in (z, zs):
        ref = model.synthesize(lab, z=noise)
        feeds = {"label": one_hot(lab[None].expand(3, -1, -1), 10).numpy(),
                 "z": S.noise_map(noise, (64, 64)).numpy()}
        got = sess.run(["image"], feeds)[0]
        assert got.shape == (3, 3, 64, 64)
        assert np.abs(got - ref.numpy()).max() < 1e-4
        assert ref.abs().mean() > 0.05
    # another multiple of the size multiple, batch 1
    got = sess.run(["image"], {"label": one_hot(torch.zeros(1, 32, 96, dtype=torch.long), 10).numpy(),
                               "z": np.zeros((1, 16, 32, 96), np.float32)})[0]
    assert got.shape == (1, 3, 32, 96)


def test_spectral_norm_folded_into_eval_weights(ckpt):
    model = oasisgan.load(ckpt)
    g = E.export_generator(model)
    assert not any(n.endswith("weight_orig") for n, _ in g.named_parameters())
    lab = one_hot(torch.randint(0, 10, (2, 64, 64)), 10)
    z = torch.randn(2, 16, 64, 64)
    with torch.no_grad():
        assert torch.allclose(g(lab, z), model.generator(lab, z), atol=1e-5)
    # the model itself is untouched
    assert any(n.endswith("weight_orig") for n, _ in model.generator.named_parameters())


def test_cli_export_and_static_size(ckpt, tmp_path, capsys):
    assert main(["export", "--checkpoint", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "a.onnx")]) == 0
    out = capsys.readouterr().out
    assert "max abs diff" in out and "OK" in out and "dynamic" in out
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "b.onnx"), "--static-size",
                 "--height", "32", "--width", "64", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["height"] == 32 and not rep["dynamic_size"] and rep["max_abs_diff"] < 1e-4
    sess = ort.InferenceSession(str(tmp_path / "b.onnx"), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape[1:] == [10, 32, 64]


def test_cli_export_errors(ckpt, tmp_path, capsys, monkeypatch):
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "c.onnx"), "--height", "30"]) == 2
    assert "multiples of 4" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(tmp_path / "nope.ckpt"), "--out", str(tmp_path / "c.onnx")]) == 2
    assert "nope.ckpt" in capsys.readouterr().err
    # a mismatch between onnxruntime and PyTorch is a failure (exit 1), not a success
    monkeypatch.setattr(E, "verify_onnx", lambda *a, **k: 0.5)
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "d.onnx")]) == 1
    assert "differ by 0.5" in capsys.readouterr().err
