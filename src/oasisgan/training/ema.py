"""EMA of the generator, exactly as the official code: over the whole state dict."""
from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn as nn


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float, fused: bool = False) -> None:
    """ema = ema * decay + model * (1 - decay) for every entry of the state dict.

    Buffers are averaged too (BatchNorm running stats, spectral-norm u/v vectors), and the
    result is copied back into each tensor's own dtype, so integer buffers such as
    `num_batches_tracked` are truncated exactly as the official `copy_` does.

    `fused`: the floating-point entries as one `torch._foreach_lerp_` (ema + (1 - decay) *
    (model - ema)), the same formula re-associated: one pass over the weights instead of four.
    """
    ema_state, state = ema.state_dict(), model.state_dict()
    floats = []
    for key, value in ema_state.items():
        if fused and value.is_floating_point():
            floats.append((value, state[key].to(value.device)))
        else:
            value.copy_(value * decay + state[key].to(value.device) * (1 - decay))
    if floats:
        torch._foreach_lerp_([a for a, _ in floats], [b for _, b in floats], 1 - decay)


@torch.no_grad()
def recollect_bn_stats(ema: nn.Module, batches: Iterable, num_batches: int = 50,
                       forward: Callable = None) -> int:
    """Refresh the EMA generator's BatchNorm statistics, as the official code does before each
    sample grid, evaluation and checkpoint: run it in train mode over up to `num_batches` + 1
    training batches (the official loop breaks after the 51st). Returns the batches used.

    `forward(ema, batch)` runs the generator on one batch (default: `ema(batch)`).
    """
    was_training = ema.training
    ema.train()
    used = 0
    try:
        for batch in batches:
            if forward is None:
                ema(batch)
            else:
                forward(ema, batch)
            used += 1
            if used > num_batches:
                break
    finally:
        ema.train(was_training)
    return used
