"""The fp16 loss-scaling logic of `training.amp.Precision`, checked on the CPU.

fp16 training is refused on CPUs (`FP16_DEVICES`); the tests allow it there so that the scaler's
bookkeeping runs without a GPU: a step with non-finite gradients leaves the weights and Adam's
state untouched, halves the scale and is counted; finite steps apply the unscaled gradients; the
scale doubles after `growth_interval` clean steps; the state survives a checkpoint round trip.
(At the default scale of 65536 the toy layer's own gradients overflow fp16 now and then: the
scaler then halves the scale, which is its job, so the growth test starts from a smaller one.)
"""
from __future__ import annotations

import copy

import pytest
import torch

from oasisgan.config import ConfigError
from oasisgan.training import amp
from oasisgan.training.amp import Precision

from test_train_helpers import tiny_cfg, tiny_root  # noqa: F401

CPU = torch.device("cpu")


@pytest.fixture
def fp16_on_cpu(monkeypatch):
    monkeypatch.setattr(amp, "FP16_DEVICES", ("cuda", "cpu"))


def _net_and_opt():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    return net, torch.optim.Adam(net.parameters(), lr=1e-2, betas=(0.0, 0.999))


def _update(precision, net, opt, x, which="g"):
    opt.zero_grad(set_to_none=True)
    with precision.autocast():
        loss = net(x).float().pow(2).mean()
    precision.backward(loss, which)
    precision.step(opt, which)


def test_fp16_refused_on_cpu_by_default():
    with pytest.raises(ConfigError, match="fp16"):
        Precision("fp16", CPU)


def test_nonfinite_step_is_skipped_and_counted(fp16_on_cpu):
    p = Precision("fp16", CPU)
    net, opt = _net_and_opt()
    _update(p, net, opt, torch.randn(4, 3))  # one clean step: Adam has state
    before = copy.deepcopy(net.state_dict()), copy.deepcopy(opt.state_dict()["state"])
    scale = p.scalers["g"].get_scale()
    _update(p, net, opt, torch.tensor([[float("inf"), 1.0, 1.0]]))
    assert p.skipped == {"g": 1, "d": 0} and p.updates == 2
    assert p.scalers["g"].get_scale() == scale / 2
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[0][k]), k
    for k, v in opt.state_dict()["state"][0].items():
        assert torch.equal(v, before[1][0][k]), k


def test_finite_step_applies_unscaled_gradients(fp16_on_cpu):
    """Loss scaling must not change the update: the same step as fp32 Adam on the fp16 gradients."""
    x = torch.randn(4, 3)
    p = Precision("fp16", CPU)
    net, opt = _net_and_opt()
    ref, ref_opt = _net_and_opt()
    _update(p, net, opt, x)
    ref_opt.zero_grad()
    with torch.autocast("cpu", dtype=torch.float16):
        ref(x).float().pow(2).mean().backward()
    ref_opt.step()
    assert p.skipped == {"g": 0, "d": 0}
    for (k, a), b in zip(net.state_dict().items(), ref.state_dict().values()):
        assert torch.allclose(a, b, rtol=0, atol=1e-6), k
        assert not torch.equal(a, _net_and_opt()[0].state_dict()[k]), k  # it did move


def test_scale_grows_after_clean_steps_and_state_round_trips(fp16_on_cpu):
    p = Precision("fp16", CPU)
    scaler = p.scalers["d"]
    # a checkpoint's scaler state is restored as it was saved, growth interval included
    p.load_state_dict({"d": {**scaler.state_dict(), "scale": 1024.0, "growth_interval": 3}})
    net, opt = _net_and_opt()
    for _ in range(3):
        _update(p, net, opt, torch.randn(2, 3), "d")
    assert scaler.get_scale() == 2048.0 and p.skipped["d"] == 0
    _update(p, net, opt, torch.full((1, 3), float("nan")), "d")
    state = p.state_dict()
    assert state["skipped"] == {"g": 0, "d": 1} and state["d"]["scale"] == 1024.0
    q = Precision("fp16", CPU)
    q.load_state_dict(state)
    assert q.skipped == p.skipped and q.scalers["d"].get_scale() == 1024.0
    assert q.scalers["d"].get_growth_interval() == 3


def test_bf16_and_fp32_have_no_scaler():
    for mode in ("none", "bf16"):
        p = Precision(mode, CPU)
        assert p.state_dict() is None and not any(s.is_enabled() for s in p.scalers.values())
        net, opt = _net_and_opt()
        _update(p, net, opt, torch.randn(4, 3))
        assert p.skipped == {"g": 0, "d": 0} and p.updates == 1


def test_training_logs_and_saves_the_skipped_steps(fp16_on_cpu, tiny_root, tmp_path):
    """The loop writes the scalers' counts to log.jsonl and the checkpoint, where --resume reads them."""
    import json

    from oasisgan.loading.checkpoint import read_checkpoint
    from oasisgan.training import train


    res = train(tiny_cfg(tiny_root, iters=2, amp="fp16"), tiny_root, tmp_path / "run", device="cpu",
                progress=False, tensorboard=False)
    assert res.status == "finished"
    rows = [json.loads(line) for line in (tmp_path / "run/log.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "loss/G" in r]
    assert len(rows) == 2 and all({"amp/skipped_steps_G", "amp/scale_D"} <= set(r) for r in rows)
    state = read_checkpoint(tmp_path / "run/checkpoints/latest.ckpt")["training"]["precision"]
    assert state["skipped"] == {"g": rows[-1]["amp/skipped_steps_G"], "d": rows[-1]["amp/skipped_steps_D"]}
    assert state["g"]["scale"] == rows[-1]["amp/scale_G"]
