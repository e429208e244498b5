"""Training data order: deterministic, shardable, resumable in the middle of an epoch.

Epoch ``e`` visits the dataset in the order of ``DistributedSampler(seed=cfg.seed)`` after
``set_epoch(e)`` (one process is the 1-rank case), split into per-rank batches with the last
incomplete batch dropped, as the official loader does. Resuming at iteration ``i`` starts epoch
``i // batches_per_epoch`` at batch ``i % batches_per_epoch`` without loading the skipped
batches. The loader is given its own ``torch.Generator``, so creating it never draws from the
global RNG, and datasets with ``set_epoch`` (oasisgan.data's) draw their augmentation from
``(seed, epoch, index)``, independently of worker count and worker assignment.
"""
from __future__ import annotations

import copy
from typing import Iterator, List, Optional

import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler


class ResumableSampler(Sampler[int]):
    """The indices of one rank in one epoch, from batch `start_batch` on."""

    def __init__(self, dataset: Dataset, epoch: int, seed: int, rank: int = 0, world_size: int = 1,
                 batch_size: int = 1, start_batch: int = 0, shuffle: bool = True):
        self.inner = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle,
                                        seed=seed, drop_last=False)
        self.inner.set_epoch(epoch)
        self.batch_size, self.start_batch = batch_size, start_batch

    def indices(self) -> List[int]:
        idx = list(iter(self.inner))
        usable = (len(idx) // self.batch_size) * self.batch_size
        return idx[self.start_batch * self.batch_size:usable]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices())

    def __len__(self) -> int:
        return max(0, (len(self.inner) // self.batch_size - self.start_batch) * self.batch_size)


def batches_per_epoch(dataset: Dataset, batch_size: int, world_size: int = 1) -> int:
    per_rank = -(-len(dataset) // world_size)  # DistributedSampler pads to a multiple of the world
    return per_rank // batch_size


def _worker_init(_):
    import signal

    torch.set_num_threads(1)
    # Ctrl-C (and a scheduler's SIGTERM) reach the whole process group: the main process saves
    # a checkpoint and then stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def epoch_loader(dataset: Dataset, cfg, epoch: int, batch_size: int, rank: int = 0, world_size: int = 1,
                 start_batch: int = 0, num_workers: Optional[int] = None, pin_memory: bool = False,
                 seed_offset: int = 0, shuffle: bool = True) -> DataLoader:
    """A DataLoader over one epoch (or its remainder) of `dataset`."""
    if hasattr(dataset, "set_epoch"):
        dataset = copy.copy(dataset)  # our own view: the epoch is set on it, not on the caller's
        dataset.set_epoch(epoch)
    sampler = ResumableSampler(dataset, epoch, cfg.seed + seed_offset, rank, world_size, batch_size,
                               start_batch, shuffle)
    workers = cfg.num_workers if num_workers is None else num_workers
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch + seed_offset)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      drop_last=True, pin_memory=pin_memory, generator=gen,
                      worker_init_fn=_worker_init if workers > 0 else None,
                      persistent_workers=False)


def fixed_batch(dataset: Dataset, n: int) -> dict:
    """The first `n` items of a dataset (no shuffling), collated: the sample grid's labels."""
    from torch.utils.data import default_collate

    if hasattr(dataset, "set_epoch"):
        dataset = copy.copy(dataset)
        dataset.set_epoch(0)
    items = [dataset[i] for i in range(min(n, len(dataset)))]
    return default_collate(items)
