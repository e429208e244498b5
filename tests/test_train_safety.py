"""Safety: NaN stops keep the last good checkpoint, Ctrl-C / SIGTERM save, kills during a save."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

import oasisgan
from oasisgan.loading.checkpoint import read_checkpoint
from oasisgan.training import TrainingDiverged, train
from oasisgan.training.step import TrainStep

from test_train_helpers import tiny_cfg, tiny_root  # noqa: F401


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_root, tmp_path, monkeypatch):
    original = TrainStep.losses_g
    calls = {"n": 0}

    def poisoned(self, *a):
        calls["n"] += 1
        out = original(self, *a)
        if calls["n"] == 3:
            out["G"] = out["G"] * float("nan")
        return out

    monkeypatch.setattr(TrainStep, "losses_g", poisoned)
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"NaN or inf at iteration 3.*latest.ckpt \(iteration 2\)"):
        train(tiny_cfg(tiny_root, iters=10), tiny_root, out, progress=False)
    ck = read_checkpoint(out / "checkpoints/latest.ckpt")
    assert ck["training"]["iteration"] == 2
    assert all(torch.isfinite(v).all() for v in ck["generator"].values() if v.is_floating_point())
    oasisgan.load(out / "checkpoints/latest.ckpt")


def test_failed_save_keeps_previous_checkpoint(tiny_root, tmp_path, monkeypatch):
    out = tmp_path / "run"
    train(tiny_cfg(tiny_root, iters=2), tiny_root, out, progress=False)
    before = (out / "checkpoints/latest.ckpt").read_bytes()

    def broken_save(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("oasisgan.loading.checkpoint.torch.save", broken_save)
    from oasisgan.loading.checkpoint import CheckpointWriteError

    with pytest.raises(CheckpointWriteError, match="No space left on device.*last good checkpoint.*kept"):
        train(tiny_cfg(tiny_root, iters=4), tiny_root, out, resume=True, progress=False)
    assert (out / "checkpoints/latest.ckpt").read_bytes() == before
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["latest.ckpt"]  # no temp files left


def _run_py(code: str, timeout=240):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout)


def test_sigkill_during_save_leaves_previous_checkpoint_loadable(tiny_root, tmp_path):
    out = tmp_path / "run"
    # The child is SIGKILLed inside atomic_save of the second latest.ckpt (data written to the
    # temporary file, before the rename).
    code = f"""
        import os, signal
        real_fsync = os.fsync
        seen = []
        def fsync(fd):
            name = os.readlink(f"/proc/self/fd/{{fd}}")
            if ".latest.ckpt." in name:
                seen.append(name)
                if len(seen) == 2:
                    os.kill(os.getpid(), signal.SIGKILL)
            return real_fsync(fd)
        os.fsync = fsync
        import sys; sys.path.insert(0, {str(os.path.dirname(__file__))!r})
        from test_train_helpers import tiny_cfg
        from oasisgan.training import train
        train(tiny_cfg({str(tiny_root)!r}, iters=4), {str(tiny_root)!r}, {str(out)!r}, progress=False)
    """
    r = _run_py(code)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    assert any(p.name.endswith(".tmp") for p in (out / "checkpoints").iterdir())  # the interrupted save
    ck = read_checkpoint(out / "checkpoints/latest.ckpt")
    assert ck["training"]["iteration"] == 2
    res = train(tiny_cfg(tiny_root, iters=4), tiny_root, out, resume=True, progress=False)
    assert res.iteration == 4 and read_checkpoint(out / "checkpoints/latest.ckpt")["training"]["iteration"] == 4
    assert not [p.name for p in (out / "checkpoints").iterdir() if p.name.endswith(".tmp")]  # the killed save's


@pytest.mark.parametrize("sig,workers", [(signal.SIGINT, 0), (signal.SIGTERM, 0), (signal.SIGTERM, 2)])
def test_signal_saves_checkpoint_and_exits(tiny_root, tmp_path, sig, workers):
    """With workers, the signal goes to the whole process group, as a scheduler's preemption or
    Ctrl-C in a terminal sends it: the workers outlive it until the save, then all exit."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "oasisgan.cli", "train", "--preset", "toy", "--data-root", str(tiny_root),
           "--out", str(out), "--iters", "100000", "--batch-size", "2", "--crop-size", "32",
           "--channels-g", "8", "--channels-d", "8", "--num-workers", str(workers), "--log-every", "1",
           "--save-every", "1000", "--sample-every", "1000", "--set", "bn_stats_batches=1",
           "--set", "z_dim=8", "--set", "spade_hidden=16", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    log = out / "log.jsonl"
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if log.is_file() and len(log.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    if workers:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "continue with --resume" in err
    ck = read_checkpoint(out / "checkpoints/latest.ckpt")
    done = ck["training"]["iteration"]
    assert done >= 3
    last_logged = json.loads(log.read_text().splitlines()[-1])["iter"]
    assert done == last_logged
    oasisgan.load(out / "checkpoints/latest.ckpt")
    if workers:  # no worker outlives the run
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("a data worker outlived the stopped run")
