"""Resume state: every random generator, as tensors and plain lists.

A checkpoint is read with ``torch.load(weights_only=True)``, so nothing in it may be an arbitrary
Python object: numpy's and Python's RNG states are converted to tensors / lists of ints here and
back on resume. Together with the optimisers, the EMA, the iteration counter and the
deterministic data order (``oasisgan.data.loader``), restoring these makes ``--resume`` exact.
"""
from __future__ import annotations

import contextlib
import random
from typing import Any, Dict, Iterator

import numpy as np
import torch


def capture_rng_state() -> Dict[str, Any]:
    """The state of the torch (CPU and CUDA), numpy and Python global RNGs, checkpoint-safe."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "internal": [int(v) for v in internal],
                   "gauss_next": None if gauss_next is None else float(gauss_next)},
        "cuda": [],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"].to(torch.uint8).cpu())
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), int(n["pos"]),
                         int(n["has_gauss"]), float(n["cached_gaussian"])))
    p = state["python"]
    random.setstate((int(p["version"]), tuple(int(v) for v in p["internal"]), p["gauss_next"]))
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.to(torch.uint8).cpu() for s in cuda])
        else:  # a different machine: keep the first states we have
            for i in range(min(len(cuda), torch.cuda.device_count())):
                torch.cuda.set_rng_state(cuda[i].to(torch.uint8).cpu(), i)


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block (a sample grid, BN re-collection, an evaluation) without touching the
    training run's random streams: every global RNG is put back afterwards."""
    state = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(state)


def seed_everything(seed: int) -> None:
    """Seed torch (all devices), numpy and Python's `random`."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def buffers_of(module: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """A CPU copy of a module's buffers (e.g. the EMA's BatchNorm statistics)."""
    module = getattr(module, "module", module)
    return {k: v.detach().cpu().clone() for k, v in module.named_buffers()}


def load_buffers(module: torch.nn.Module, buffers: Dict[str, torch.Tensor]) -> None:
    module = getattr(module, "module", module)
    own = dict(module.named_buffers())
    with torch.no_grad():
        for k, v in buffers.items():
            if k in own:
                own[k].copy_(v)
