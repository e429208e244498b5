"""Multi-process training with DDP on CPU (gloo, 2 processes): ranks stay identical, resume is exact."""
from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from oasisgan.loading.checkpoint import read_checkpoint

from test_train_helpers import states_equal, tiny_cfg, tiny_root  # noqa: F401


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, root, out, iters, resume, dump):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from oasisgan.training.loop import Trainer

    cfg = tiny_cfg(root, iters=iters, batch_size=4)
    t = Trainer(cfg, root, out, resume=resume, device="cpu", progress=False, tensorboard=False)
    assert t.ctx.world_size == world and t.batch == 2
    from oasisgan.training.distributed import CPUSyncBatchNorm

    assert any(isinstance(m, CPUSyncBatchNorm) for m in t.g.modules())
    assert any(isinstance(m, CPUSyncBatchNorm) for m in t.ema.modules())
    res = t.run()
    torch.save({"generator": t.g.state_dict(), "discriminator": t.d.state_dict(), "ema": t.ema.state_dict(),
                "iteration": res.iteration}, os.path.join(dump, f"rank{rank}.pt"))


def _launch(root, out, iters, resume, dump):
    os.makedirs(dump, exist_ok=True)
    mp.spawn(_worker, args=(2, _free_port(), str(root), str(out), iters, resume, str(dump)), nprocs=2, join=True)
    return [torch.load(os.path.join(dump, f"rank{r}.pt"), weights_only=True) for r in range(2)]


@pytest.mark.slow
def test_ddp_gloo_two_processes_identical_and_resumable(tiny_root, tmp_path):
    r0, r1 = _launch(tiny_root, tmp_path / "full", 4, False, tmp_path / "d_full")
    assert r0["iteration"] == r1["iteration"] == 4
    for key in ("generator", "discriminator", "ema"):
        assert states_equal(r0[key], r1[key]) == [], key
    ck = read_checkpoint(tmp_path / "full/checkpoints/latest.ckpt")
    assert states_equal(ck["generator"], r0["generator"]) == []
    assert len(ck["training"]["rng"]) == 2 and ck["training"]["world_size"] == 2
    # the two ranks drew different noise (per-rank streams), like the official per-GPU replicas
    assert not torch.equal(ck["training"]["rng"][0]["torch"], ck["training"]["rng"][1]["torch"])
    # stop after 3 (off schedule), resume to 4: the same weights as the straight run
    _launch(tiny_root, tmp_path / "split", 3, False, tmp_path / "d_a")
    s0, s1 = _launch(tiny_root, tmp_path / "split", 4, True, tmp_path / "d_b")
    for key in ("generator", "discriminator", "ema"):
        assert states_equal(s0[key], r0[key]) == [], key
        assert states_equal(s1[key], r0[key]) == [], key


def _bn_worker(rank, world, port, dump):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    import torch.distributed as dist

    from oasisgan.training.distributed import CPUSyncBatchNorm

    dist.init_process_group("gloo")
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 5) * 3 + 1
    w = torch.randn(4, 3, 5, 5)
    part = x[rank * 2:(rank + 1) * 2].clone().requires_grad_(True)
    bn = CPUSyncBatchNorm(3, affine=False)
    out = bn(part)
    (out * w[rank * 2:(rank + 1) * 2]).sum().backward()
    torch.save({"out": out.detach(), "grad": part.grad, "mean": bn.running_mean, "var": bn.running_var},
               os.path.join(dump, f"bn{rank}.pt"))
    dist.barrier()
    dist.destroy_process_group()


def test_cpu_sync_batchnorm_matches_batchnorm_on_the_global_batch(tmp_path):
    mp.spawn(_bn_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    got = [torch.load(tmp_path / f"bn{r}.pt", weights_only=True) for r in range(2)]
    torch.manual_seed(0)
    x = (torch.randn(4, 3, 5, 5) * 3 + 1).requires_grad_(True)
    w = torch.randn(4, 3, 5, 5)
    bn = torch.nn.BatchNorm2d(3, affine=False)
    out = bn(x)
    (out * w).sum().backward()
    assert torch.allclose(torch.cat([g["out"] for g in got]), out.detach(), atol=1e-5)
    assert torch.allclose(torch.cat([g["grad"] for g in got]), x.grad, atol=1e-5)
    for g in got:
        assert torch.allclose(g["mean"], bn.running_mean, atol=1e-6)
        assert torch.allclose(g["var"], bn.running_var, atol=1e-5)


def _bad_file_worker(rank, world, port, root, out, dump):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from oasisgan.errors import DataError
    from oasisgan.training.loop import Trainer

    t = Trainer(tiny_cfg(root, iters=6, batch_size=4), root, out, device="cpu", progress=False,
                tensorboard=False, check_data=False)
    try:
        t.run()
        outcome = {"error": None}
    except DataError as e:
        outcome = {"error": str(e)}
    torch.save(outcome, os.path.join(dump, f"rank{rank}.pt"))
    # What is tested ends here. Once in CI (not in 11 runs here) a rank then died of SIGABRT in
    # interpreter teardown ("terminate called without an active exception", after the process
    # group was destroyed); skip the teardown so that the test checks the behaviour, not that.
    os._exit(0)


@pytest.mark.slow
def test_ddp_a_file_that_fails_on_one_rank_stops_every_rank_after_one_save(tiny_root, tmp_path):
    """The file is read by one rank only; both ranks agree, save latest.ckpt together, stop."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(tiny_root, root)
    bad = root / "train/images/00003.png"
    bad.write_bytes(bad.read_bytes()[:200])
    dump = tmp_path / "dump"
    dump.mkdir()
    mp.spawn(_bad_file_worker, args=(2, _free_port(), str(root), str(tmp_path / "run"), str(dump)),
             nprocs=2, join=True)
    errors = [torch.load(dump / f"rank{r}.pt", weights_only=True)["error"] for r in range(2)]
    assert all(errors), errors
    assert str(bad) in errors[0] and "Saved" in errors[0]
    done = read_checkpoint(tmp_path / "run/checkpoints/latest.ckpt")["training"]["iteration"]
    assert f"(iteration {done})" in errors[0] and done < 6
