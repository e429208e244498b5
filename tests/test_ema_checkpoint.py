"""EMA over the whole state (buffers included), BN re-collection, checkpoint round trip."""
import os
import subprocess
import sys

import pytest
import torch

import oasisgan
from oasisgan import Generator, preset
from oasisgan.loading.checkpoint import CheckpointError, atomic_save, read_checkpoint, save_checkpoint
from oasisgan.labels import one_hot
from oasisgan.training.ema import recollect_bn_stats, update_ema


def tiny_cfg(**kw):
    return preset("ade20k", semantic_nc=6, channels_G=2, channels_D=2, crop_size=32, load_size=32, z_dim=4, **kw)


def test_ema_averages_parameters_and_buffers_like_official():
    cfg = tiny_cfg()
    g, ema = Generator.from_config(cfg), Generator.from_config(cfg)
    with torch.no_grad():
        for t in g.state_dict().values():
            t.add_(1) if t.is_floating_point() else t.add_(12345)
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    update_ema(ema, g, 0.9)
    for k, v in ema.state_dict().items():
        expect = before[k] * 0.9 + g.state_dict()[k] * (1 - 0.9)
        if v.is_floating_point():
            assert torch.allclose(v, expect), k  # weights, BN running stats, spectral-norm u/v
        else:  # num_batches_tracked: the official copy_ truncates into the integer buffer
            assert torch.equal(v, expect.to(v.dtype)), k
    assert any("running_var" in k for k in before) and any("weight_u" in k for k in before)


def test_fused_ema_is_the_official_formula_reassociated():
    cfg = tiny_cfg()
    g, a, b = Generator.from_config(cfg), Generator.from_config(cfg), Generator.from_config(cfg)
    with torch.no_grad():
        for t in g.state_dict().values():
            t.add_(torch.randn_like(t.float()).to(t.dtype)) if t.is_floating_point() else t.add_(12345)
    b.load_state_dict(a.state_dict())
    for _ in range(3):
        update_ema(a, g, 0.9999)
        update_ema(b, g, 0.9999, fused=True)
    sa, sb = a.state_dict(), b.state_dict()
    for k in sa:
        if sa[k].is_floating_point():
            assert torch.allclose(sa[k], sb[k], rtol=1e-6, atol=1e-7), k
        else:
            assert torch.equal(sa[k], sb[k]), k


def test_fused_adam_matches_the_default_adam():
    from oasisgan.training.build import make_adam

    cfg = tiny_cfg()
    nets = [Generator.from_config(cfg) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    start = [p.detach().clone() for p in nets[0].parameters()]
    opts = [make_adam(nets[0].parameters(), 1e-3, cfg),
            make_adam(nets[1].parameters(), 1e-3, tiny_cfg(fused_updates=False))]
    assert opts[0].defaults["fused"] and not opts[1].defaults["fused"]
    g = torch.Generator().manual_seed(0)
    for _ in range(3):  # the same gradients, of very different magnitudes, into both
        for ps in zip(nets[0].parameters(), nets[1].parameters()):
            grad = torch.randn(ps[0].shape, generator=g) * 10.0 ** torch.randint(-9, 2, ps[0].shape, generator=g)
            for p in ps:
                p.grad = grad.clone()
        for opt in opts:
            opt.step()
    for (k, p), q, p0 in zip(nets[0].named_parameters(), nets[1].parameters(), start):
        assert not torch.equal(p, p0), k
        assert torch.allclose(p, q, rtol=1e-6, atol=1e-9), k


def test_recollect_bn_stats_runs_train_mode_over_51_batches():
    cfg = tiny_cfg()
    ema = Generator.from_config(cfg).eval()
    label = one_hot(torch.randint(0, 6, (2, 32, 32)), 6)
    seen = []
    used = recollect_bn_stats(ema, iter([label] * 100), num_batches=50,
                              forward=lambda m, b: seen.append(m.training) or m(b))
    assert used == 51 and all(seen) and not ema.training
    assert not torch.equal(ema.body[0].norm_0.first_norm.running_mean, torch.zeros_like(
        ema.body[0].norm_0.first_norm.running_mean))


def test_checkpoint_round_trip_and_load(tmp_path):
    cfg = tiny_cfg()
    g, ema = Generator.from_config(cfg), Generator.from_config(cfg)
    path = save_checkpoint(tmp_path / "m.ckpt", config=cfg, ema=ema, generator=g)
    model = oasisgan.load(path)
    assert model.config == cfg and model.discriminator is None and not model.generator.training
    label = one_hot(torch.randint(0, 6, (1, 32, 32)), 6)
    z = torch.randn(1, 4)
    with torch.no_grad():
        assert torch.equal(model.generator(label, z), ema.eval()(label, z))
    assert "oasisgan" in read_checkpoint(path)["meta"]
    assert set(read_checkpoint(path)["config"]) == {"model", "data", "train"}  # no runtime switches


def test_checkpoint_never_unpickles_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"format": "oasisgan", "version": 1, "config": {}, "ema": Evil()}, tmp_path / "bad.ckpt")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        read_checkpoint(tmp_path / "bad.ckpt")
    torch.save({"a": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an oasisgan checkpoint"):
        read_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "nope.ckpt")


def test_atomic_save_keeps_previous_file_when_killed(tmp_path):
    path = tmp_path / "latest.ckpt"
    atomic_save({"v": torch.ones(3)}, path)
    # a child process writing a huge checkpoint is SIGKILLed mid-save
    code = ("import torch, sys\nsys.path.insert(0, %r)\nfrom oasisgan.loading.checkpoint import atomic_save\n"
            "atomic_save({'v': torch.zeros(400_000_000 // 4)}, %r)\n") % (
        os.path.join(os.path.dirname(oasisgan.__file__), ".."), str(path))
    proc = subprocess.Popen([sys.executable, "-c", code])
    import time

    deadline = time.time() + 30
    while time.time() < deadline and not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()):
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    assert torch.equal(torch.load(path, weights_only=True)["v"], torch.ones(3))


def test_gpu_saved_tensors_load_on_cpu(tmp_path):
    # map_location='cpu' is what makes CUDA-saved files load here; check it is applied
    cfg = tiny_cfg()
    g = Generator.from_config(cfg)
    path = save_checkpoint(tmp_path / "m.ckpt", config=cfg, ema=g)
    ckpt = read_checkpoint(path)
    assert all(v.device.type == "cpu" for v in ckpt["ema"].values())
