"""`calls(net, xs)`: `[net(x) for x in xs]`, the D step's three discriminator calls as one.

D has no batch statistics, so the fake, real and mixed batches can go through it as one batch,
provided each part sees the spectral-norm sigma it would have seen: the official D step calls D
three times, and each call runs one power iteration. Fast: one call on the concatenation inside
`parts(sizes)`, which makes every spectral-norm conv (`spectral_norm.sn_conv2d`) run one power
iteration per part, in order, and scale each part by its own sigma. Outputs, gradients and the
u/v vectors equal separate calls (tests/test_ops.py). It pays on small maps only: "auto" (impl
None) batches CPU calls of up to `tuning.BATCH_D_MAX_PIXELS` pixels (B*H*W) per part.
A network with batch statistics (BatchNorm in D) must not be batched: the whole-model test of
fast against ref then fails.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from . import tuning
from .dispatch import choose

_local = threading.local()


@contextlib.contextmanager
def parts(sizes: Sequence[int]) -> Iterator[None]:
    """Inside this block, inputs are concatenations of batches of these sizes."""
    previous = getattr(_local, "sizes", None)
    _local.sizes = tuple(int(n) for n in sizes)
    try:
        yield
    finally:
        _local.sizes = previous


def current_parts() -> Optional[Tuple[int, ...]]:
    return getattr(_local, "sizes", None)


def calls(net: nn.Module, xs: Sequence[torch.Tensor], impl: Optional[str] = None) -> List[torch.Tensor]:
    """[net(x) for x in xs], as one call on their concatenation when fast (see the module doc).
    impl None: batched on the CPU up to `tuning.BATCH_D_MAX_PIXELS` pixels (B*H*W) per part."""
    chosen = choose(impl, xs[0])
    if impl is None and chosen == "fast":
        chosen = "fast" if xs[0][:, 0].numel() <= tuning.BATCH_D_MAX_PIXELS else "ref"
    if chosen == "ref" or len(xs) == 1:
        return [net(x) for x in xs]
    sizes = [x.shape[0] for x in xs]
    with parts(sizes):
        out = net(torch.cat(list(xs)))
    return list(out.split(sizes))
