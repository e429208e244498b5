"""The one loader module (training epochs, evaluation batches, the grid batch) and the ADE20K-outdoor list."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from types import SimpleNamespace

import numpy as np
import torch
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler

from oasisgan.data import (ade20k, batches_per_epoch, build_dataset, config_for_root, epoch_loader, eval_loader,
                           fixed_batch)
from oasisgan.data.loader import EpochSampler


class _Items(torch.utils.data.Dataset):
    """Items that are their own index; counts set_epoch calls."""

    def __init__(self, n):
        self.n, self.epoch = n, 0

    def __len__(self):
        return self.n

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __getitem__(self, i):
        return {"i": i, "epoch": self.epoch}


def _order(loader):
    return [i for b in loader for i in b["i"].tolist()]


def test_epoch_order_is_distributed_sampler_order_resumable_and_sharded():
    ds, cfg = _Items(10), SimpleNamespace(seed=3, num_workers=0)
    e0, e1 = _order(epoch_loader(ds, cfg, 0, 2)), _order(epoch_loader(ds, cfg, 1, 2))
    assert sorted(e0) == list(range(10)) and e0 != e1  # each epoch a permutation of its own
    ref = DistributedSampler(ds, num_replicas=1, rank=0, shuffle=True, seed=3)
    ref.set_epoch(1)
    assert e1 == list(ref)  # exactly DistributedSampler(seed) order
    assert _order(epoch_loader(ds, cfg, 0, 2, start_batch=2)) == e0[4:]  # resume mid-epoch
    assert len(epoch_loader(ds, cfg, 0, 2, start_batch=2)) == 3
    assert _order(epoch_loader(ds, cfg, 0, 3)) == e0[:9]  # the incomplete batch is dropped
    assert batches_per_epoch(ds, 3) == 3 == len(epoch_loader(ds, cfg, 0, 3))
    # ranks: every world_size-th index, padded to equal length like DistributedSampler
    shards = [EpochSampler(ds, 0, 3, rank=r, world_size=3).indices() for r in range(3)]
    assert all(len(x) == 4 for x in shards) and set(i for sh in shards for i in sh) == set(range(10))
    assert batches_per_epoch(ds, 2, world_size=3) == 2
    assert [len(epoch_loader(ds, cfg, 0, 2, rank=r, world_size=3)) for r in range(3)] == [2, 2, 2]
    assert _order(epoch_loader(ds, cfg, 0, 5, shuffle=False)) == list(range(10))
    assert _order(epoch_loader(ds, cfg, 0, 2, seed_offset=1)) != e0  # BN passes: an order of their own


def test_epoch_loader_sets_the_epoch_on_a_copy_and_leaves_the_global_rng():
    ds, cfg = _Items(4), SimpleNamespace(seed=0, num_workers=0)
    state = torch.get_rng_state()
    batch = next(iter(epoch_loader(ds, cfg, 7, 2)))
    assert batch["epoch"].tolist() == [7, 7] and ds.epoch == 0
    assert torch.equal(torch.get_rng_state(), state)


def test_loader_same_batches_with_and_without_workers(toy_root):
    cfg = config_for_root("toy", toy_root, seed=1)
    ds = build_dataset(cfg, toy_root)
    assert batches_per_epoch(ds, 8) == 8
    for epoch in range(2):
        a = epoch_loader(ds, cfg, epoch, 8, num_workers=0)
        b = epoch_loader(ds, cfg, epoch, 8, num_workers=2)
        assert len(a) == 8
        for x, y in zip(a, b, strict=True):
            assert x["name"] == y["name"]
            assert torch.equal(x["image"], y["image"]) and torch.equal(x["label"], y["label"])
    # resume: epoch 1 from batch 3 gives the same batches as the uninterrupted epoch
    full = [x for x in epoch_loader(ds, cfg, 1, 8)]
    rest = [x for x in epoch_loader(ds, cfg, 1, 8, start_batch=3, num_workers=2)]
    assert [x["name"] for x in rest] == [x["name"] for x in full[3:]]
    assert all(torch.equal(x["image"], y["image"]) for x, y in zip(rest, full[3:]))
    # the augmentation is that of the item in that epoch, whatever loaded it
    i = ds.names.index(full[0]["name"][0])
    assert torch.equal(full[0]["image"][0], ds[(i, 1)]["image"])


class _Pids(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        return os.getpid()


def test_workers_survive_stop_signals_while_training_runs():
    """Ctrl-C and a scheduler's SIGTERM reach the whole process group: the workers must keep
    serving batches while the main process finishes its iteration and saves."""
    loader = epoch_loader(_Pids(), SimpleNamespace(seed=0, num_workers=1), 0, 2, shuffle=False)
    assert not loader.persistent_workers
    batches = iter(loader)
    pid = int(next(batches)[0])
    assert pid != os.getpid()
    for sig in (signal.SIGINT, signal.SIGTERM):
        os.kill(pid, sig)
    time.sleep(0.5)
    assert [int(b[0]) for b in batches] == [pid] * 3
    assert epoch_loader(_Pids(), SimpleNamespace(seed=0, num_workers=0), 0, 2).worker_init_fn is None


def test_exit_does_not_wait_forever_on_workers_of_a_live_iterator():
    """An iterator still referenced when Python exits (a kept exception, a global): the exit's
    SIGTERM ends its workers, instead of joining workers that ignore SIGTERM forever."""
    code = textwrap.dedent("""
        import os, sys, torch
        from types import SimpleNamespace
        from torch.utils.data import Dataset
        from oasisgan.data.loader import epoch_loader

        class Pids(Dataset):
            def __len__(self):
                return 64
            def __getitem__(self, i):
                return os.getpid()

        torch.set_num_threads(1)
        KEPT = iter(epoch_loader(Pids(), SimpleNamespace(seed=0, num_workers=2), 0, 2))
        print(int(next(KEPT)[0]), flush=True)
    """)
    t = time.monotonic()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert time.monotonic() - t < 60
    worker = int(r.stdout.split()[0])
    time.sleep(0.2)
    assert not os.path.exists(f"/proc/{worker}") or "zombie" in open(f"/proc/{worker}/status").read()


def test_eval_loader_in_order_truncated_and_fixed_batch(toy_root):
    ds = _Items(10)
    assert _order(eval_loader(ds, 4)) == list(range(10))  # the last, smaller batch is kept
    loader = eval_loader(ds, 4, max_images=6)
    assert _order(loader) == list(range(6)) and len(loader.dataset) == 6 and len(loader) == 2
    assert len(eval_loader(ds, 4, max_images=50).dataset) == 10
    cfg = config_for_root("toy", toy_root)
    val = build_dataset(cfg, toy_root, "val")
    assert [n for b in eval_loader(val, 5, num_workers=2) for n in b["name"]] == val.names
    train = build_dataset(cfg, toy_root)
    train.set_epoch(5)
    grid = fixed_batch(train, 3)
    assert grid["name"] == train.names[:3] and train.epoch == 5
    assert torch.equal(grid["image"][1], train[(1, 0)]["image"])  # epoch 0's items, not the caller's
    assert fixed_batch(_Items(2), 8)["i"].tolist() == [0, 1]


def test_outdoor_rule_and_cached_list(shared_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("OASISGAN_CACHE", str(tmp_path / "cache"))
    lab = np.full((10, 10), 3, np.uint8)  # sky
    assert ade20k.is_outdoor(lab)
    lab[0, 0] = 6  # a single ceiling pixel
    assert not ade20k.is_outdoor(lab)
    assert not ade20k.is_outdoor(np.full((10, 10), 1, np.uint8))  # only wall
    root = tmp_path / "ADEChallengeData2016"
    shutil.copytree(shared_dir / "datasets/ade20k/ADEChallengeData2016", root)
    stems, path = ade20k.build_outdoor_list(root, "val", progress=False)
    assert stems == ["ADE_val_00000001"] and path.is_file() and str(tmp_path / "cache") in str(path)
    assert ade20k.read_outdoor_cache(root, "val") == stems
    assert ade20k.build_outdoor_list(root, "train", progress=False)[0] == []  # ceiling, floor: indoor
    cfg = config_for_root("ade20k-outdoor")
    assert len(build_dataset(cfg, root, "val")) == 1
