"""glibc malloc settings for CPU work: reuse freed blocks instead of faulting in fresh pages.

PyTorch's CPU tensors come from malloc. glibc serves large blocks with fresh mmap'd pages and
gives them back to the OS on free, so each training iteration pays the page faults of the
previous one's activations, logits and gradients again (in a profile of a 128x128 iteration,
filling a 20 MB logits tensor ran at ~2 GB/s). Raising the mmap threshold to glibc's maximum
(32 MiB) and the trim threshold keeps freed blocks in the heap for the next iteration: 3-10%
faster training on the 2-core development machine. Results do not change; resident memory
stays near its peak between iterations instead of shrinking.
"""
from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MAX_MMAP_THRESHOLD = 32 << 20  # glibc's cap on 64-bit systems
_state = {"tuned": None}


def tune_cpu_allocator(trim_threshold: int = 1 << 30) -> bool:
    """Apply the settings once per process (Linux with glibc only); True when they are in effect."""
    if _state["tuned"] is not None:
        return _state["tuned"]
    ok = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
            if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt"):
                ok = (libc.mallopt(M_MMAP_THRESHOLD, MAX_MMAP_THRESHOLD) == 1
                      and libc.mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1)
        except OSError:  # not glibc (musl, ...): nothing to tune
            ok = False
    _state["tuned"] = ok
    return ok
