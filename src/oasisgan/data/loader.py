"""DataLoader construction: a seeded, resumable, optionally distributed sampler + worker settings.

The sampler yields ``(index, epoch)`` so that each item's augmentation is a function of
(seed, epoch, index) only (see ``transforms.item_rng``): identical for any number of workers,
with persistent workers, and after resuming. The order of an epoch is a permutation drawn from
``(seed, epoch)``; with ``distributed=True`` each rank takes every ``world_size``-th index of it
(padded to equal length like torch's DistributedSampler, or truncated with ``drop_last``).
"""
from __future__ import annotations

import math
import random
from typing import Iterator, Optional, Tuple

import numpy as np
import torch


class SeededSampler(torch.utils.data.Sampler):
    """Yields ``(index, epoch)``. The epoch advances by one on each ``iter()`` unless ``set_epoch``
    is called; ``set_epoch(epoch, start=k)`` resumes inside an epoch after this rank's first k samples."""

    def __init__(self, n: int, shuffle: bool = True, seed: int = 0, rank: int = 0, world_size: int = 1,
                 drop_last: bool = False):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.n, self.shuffle, self.seed = int(n), bool(shuffle), int(seed)
        self.rank, self.world_size, self.drop_last = int(rank), int(world_size), bool(drop_last)
        self.epoch = 0
        self.start = 0
        if self.drop_last and self.n % self.world_size:
            self.num_samples = self.n // self.world_size
        else:
            self.num_samples = math.ceil(self.n / self.world_size)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = int(epoch), int(start)

    def order(self, epoch: int) -> np.ndarray:
        """The indices this rank visits in `epoch`."""
        if self.shuffle:
            idx = np.random.default_rng([self.seed & 0xFFFFFFFF, int(epoch), 0x5A4D]).permutation(self.n)
        else:
            idx = np.arange(self.n)
        total = self.num_samples * self.world_size
        if total > len(idx):  # pad by repeating from the start (as DistributedSampler does)
            idx = np.concatenate([idx, np.resize(idx, total - len(idx))])
        idx = idx[:total]
        return idx[self.rank:total:self.world_size]

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        epoch, start = self.epoch, self.start
        self.epoch, self.start = epoch + 1, 0
        for i in self.order(epoch)[start:].tolist():
            yield (i, epoch)

    def __len__(self) -> int:
        return self.num_samples


def seed_worker(worker_id: int) -> None:
    """Seed Python's and numpy's global RNGs in a worker from torch's per-worker seed."""
    s = torch.initial_seed() % 2 ** 32
    random.seed(s)
    np.random.seed(s)


def make_loader(dataset, batch_size: int, shuffle: bool = True, num_workers: int = 0, seed: int = 0,
                drop_last: bool = True, distributed: bool = False, rank: int = 0, world_size: int = 1,
                pin_memory: Optional[bool] = None, persistent_workers: Optional[bool] = None,
                prefetch_factor: Optional[int] = None) -> torch.utils.data.DataLoader:
    """A DataLoader over `dataset` (an oasisgan dataset, or any map-style dataset taking ``(i, epoch)``).

    ``loader.sampler`` is a ``SeededSampler``: call ``loader.sampler.set_epoch(e, start=k)`` to resume
    at sample k of epoch e (k = batches done * batch_size). Pinned memory defaults to CUDA availability;
    persistent workers to ``num_workers > 0``.
    """
    if not distributed:
        rank, world_size = 0, 1
    sampler = SeededSampler(len(dataset), shuffle=shuffle, seed=seed, rank=rank, world_size=world_size,
                            drop_last=drop_last and distributed)
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    kwargs = {}
    if num_workers > 0:
        kwargs["persistent_workers"] = True if persistent_workers is None else persistent_workers
        kwargs["worker_init_fn"] = seed_worker
        kwargs["prefetch_factor"] = prefetch_factor or 2
    g = torch.Generator()
    g.manual_seed(int(seed))
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                                       pin_memory=pin_memory, drop_last=drop_last, generator=g, **kwargs)
