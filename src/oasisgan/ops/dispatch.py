"""Which implementation an op runs: "ref" (plain PyTorch, the official computation) or "fast".

Every op takes `impl=None`; None picks per call, in this order: tracing, scripting, ONNX or
torch.export exporting and torch.compile take "ref" (exported and compiled graphs hold only
standard operators); then the process-wide choice of `use(...)` (tests, `fast_spade: false`);
then the device: "fast" on the CPU, "ref" on accelerators (there cuDNN's dense kernels beat the
gathers: H100 inference 0.42x, training 0.90x) unless `tuning.ON_ACCELERATORS`. An op whose
fast kernel does not apply to its inputs (dtype, autograd, sizes) runs its reference.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import torch

from . import tuning

IMPLS = ("ref", "fast")
_forced: Optional[str] = None


def traced() -> bool:
    """Tracing, scripting, exporting or compiling: those take the reference."""
    exporting = getattr(torch.compiler, "is_exporting", lambda: False)()
    return (torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export()
            or exporting or torch.compiler.is_compiling())


@contextlib.contextmanager
def use(impl: Optional[str]) -> Iterator[None]:
    """Inside this block every op runs `impl` ("ref" or "fast"; None: chosen per call), in all
    threads. Tracing and compiling still take the reference."""
    global _forced
    if impl not in IMPLS + (None,):
        raise ValueError(f"impl {impl!r}: use one of {IMPLS} or None")
    previous, _forced = _forced, impl
    try:
        yield
    finally:
        _forced = previous


def choose(impl: Optional[str], x: torch.Tensor, cpu_only: bool = True) -> str:
    """The implementation an op runs on input `x`: `impl` when given, else see the module doc.
    `cpu_only=False`: the fast kernel pays on accelerators too (the fused losses)."""
    if impl is not None:
        if impl not in IMPLS:
            raise ValueError(f"impl {impl!r}: use one of {IMPLS} or None")
        return impl
    if traced():
        return "ref"
    if _forced is not None:
        return _forced
    if cpu_only and x.device.type != "cpu" and not tuning.ON_ACCELERATORS:
        return "ref"
    return "fast"
