"""Every DataLoader of the project: training epochs, in-order evaluation batches, the sample grid.

Three functions and a count; nothing else in oasisgan builds a ``torch.utils.data.DataLoader``:

- ``epoch_loader(dataset, cfg, epoch, batch_size, rank=0, world_size=1, start_batch=0, ...)``:
  one shuffled training epoch (or its remainder) of one rank. Training, the EMA generator's
  BatchNorm re-collection (``seed_offset=1``, epochs of their own), the reference segmenter's
  training and ``benchmarks/bench_data.py`` use it.
- ``batches_per_epoch(dataset, batch_size, world_size=1)``: the number of batches
  ``epoch_loader`` yields per rank and epoch.
- ``eval_loader(dataset, batch_size, max_images=None, num_workers=0)``: the items in order,
  optionally only the first ``max_images``, the last batch kept (evaluation, segmenter scores).
- ``fixed_batch(dataset, n)``: the first ``n`` items collated, unaugmented order (the sample grid).

Training data order: epoch ``e`` visits the dataset in the order of
``DistributedSampler(seed=cfg.seed)`` after ``set_epoch(e)`` (one process is the 1-rank case:
ranks take every ``world_size``-th index of the permutation, padded to equal length by
repeating its start), split into per-rank batches with the last incomplete batch dropped, as
the official loader does. Resuming at iteration ``i`` starts epoch ``i // batches_per_epoch`` at
batch ``i % batches_per_epoch`` (``start_batch``) without loading the skipped batches. Each
loader has its own ``torch.Generator``, so building it never draws from the global RNG, and a
dataset with ``set_epoch`` (oasisgan.data's) gets a copy set to the epoch: augmentation is drawn
from ``(seed, epoch, index)`` only, identical for any number of workers. Workers use one torch
thread and ignore SIGINT/SIGTERM: on Ctrl-C (or a scheduler's SIGTERM, which reaches the whole
process group) the main process saves a checkpoint, then stops the workers itself. Only once
the main process is exiting does SIGTERM end a worker: that is how Python's exit stops the
workers of an iterator still referenced then, which would otherwise wait for them forever.
"""
from __future__ import annotations

import atexit
import copy
import functools
import multiprocessing
import os
import signal
from typing import Iterator, List, Optional

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset, default_collate
from torch.utils.data.distributed import DistributedSampler

__all__ = ["epoch_loader", "batches_per_epoch", "eval_loader", "fixed_batch", "EpochSampler"]


class EpochSampler(Sampler[int]):
    """The indices of one rank in one epoch (whole batches only), from batch `start_batch` on."""

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
    """Whole batches per rank and epoch (``len(epoch_loader(...))`` at ``start_batch=0``)."""
    per_rank = -(-len(dataset) // world_size)  # DistributedSampler pads to a multiple of the world
    return per_rank // batch_size


_exiting = None  # set when the main process exits (a multiprocessing.Event, made on first use)


def _exit_event():
    global _exiting
    if _exiting is None:
        _exiting = multiprocessing.Event()
        # registered after multiprocessing's own exit handler (DataLoader has imported it), so
        # it runs first: the SIGTERMs that handler sends to leftover workers then end them
        atexit.register(_exiting.set)
    return _exiting


def _worker_init(exiting, _worker_id) -> None:
    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def on_sigterm(signum, frame):
        if exiting.is_set():
            os._exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)


def _at_epoch(dataset: Dataset, epoch: int) -> Dataset:
    """Our own view of `dataset` set to `epoch` (the caller's object is left as it was)."""
    if hasattr(dataset, "set_epoch"):  # oasisgan datasets; any other map-style dataset works too
        dataset = copy.copy(dataset)
        dataset.set_epoch(epoch)
    return dataset


def epoch_loader(dataset: Dataset, cfg, epoch: int, batch_size: int, rank: int = 0, world_size: int = 1,
                 start_batch: int = 0, num_workers: Optional[int] = None, pin_memory: bool = False,
                 seed_offset: int = 0, shuffle: bool = True) -> DataLoader:
    """A DataLoader over one epoch (or its remainder, from `start_batch`) of one rank's share of
    `dataset` (see the module docstring). `cfg` gives ``seed`` and, unless `num_workers` is given,
    ``num_workers``; `seed_offset` gives other passes (BN re-collection) an order of their own."""
    dataset = _at_epoch(dataset, epoch)
    sampler = EpochSampler(dataset, epoch, cfg.seed + seed_offset, rank, world_size, batch_size,
                           start_batch, shuffle)
    workers = cfg.num_workers if num_workers is None else num_workers
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch + seed_offset)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      drop_last=True, pin_memory=pin_memory, generator=gen,
                      worker_init_fn=functools.partial(_worker_init, _exit_event()) if workers > 0 else None,
                      persistent_workers=False)


def eval_loader(dataset: Dataset, batch_size: int, max_images: Optional[int] = None,
                num_workers: int = 0) -> DataLoader:
    """The items of `dataset` in order (the first `max_images` when given), the last batch kept.
    ``len(loader.dataset)`` is the number of images it yields."""
    if max_images is not None and len(dataset) > max_images:
        dataset = Subset(dataset, range(max_images))
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, drop_last=False)


def fixed_batch(dataset: Dataset, n: int) -> dict:
    """The first `n` items of `dataset` (epoch 0, no shuffling), collated: the sample grid's labels."""
    dataset = _at_epoch(dataset, 0)
    return default_collate([dataset[i] for i in range(min(n, len(dataset)))])
