"""The seeded sampler / loader (resumable, shardable, worker-independent) and the ADE20K-outdoor list."""
from __future__ import annotations

import shutil

import numpy as np
import torch

from oasisgan.data import ade20k, build_dataset, config_for_root, make_loader
from oasisgan.data.loader import SeededSampler


def test_sampler_epochs_resume_and_shards():
    s = SeededSampler(10, shuffle=True, seed=3)
    e0, e1 = list(s), list(s)  # the epoch advances on each iteration
    assert [e for _, e in e0] == [0] * 10 and [e for _, e in e1] == [1] * 10
    assert sorted(i for i, _ in e0) == list(range(10)) and e0 != e1
    s.set_epoch(0, start=4)
    assert list(s) == e0[4:]
    shards = [list(SeededSampler(10, True, 3, rank=r, world_size=3)) for r in range(3)]
    assert all(len(x) == 4 for x in shards)  # padded to 12 like DistributedSampler
    assert set(i for sh in shards for i, _ in sh) == set(range(10))
    assert list(SeededSampler(5, shuffle=False)) == [(i, 0) for i in range(5)]


def test_loader_same_batches_with_and_without_workers(toy_root):
    cfg = config_for_root("toy", toy_root)
    ds = build_dataset(cfg, toy_root)
    a = make_loader(ds, 8, shuffle=True, num_workers=0, seed=1)
    b = make_loader(ds, 8, shuffle=True, num_workers=2, seed=1)
    assert len(a) == 8
    for epoch in range(2):
        for x, y in zip(a, b):
            assert x["name"] == y["name"]
            assert torch.equal(x["image"], y["image"]) and torch.equal(x["label"], y["label"])
    # resume: epoch 1 from batch 3 gives the same batches as the uninterrupted run
    a.sampler.set_epoch(1)
    full = [x["name"] for x in a]
    a.sampler.set_epoch(1, start=3 * 8)
    assert [x["name"] for x in a] == full[3:]


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
