"""CPU speed-ups of the OASIS networks, kept apart from the model (`oasisgan.nn`).

`accelerate(net)` turns a reference `Generator` or `Discriminator` into its fast twin in place
(`FastGenerator`, `FastDiscriminator`: subclasses that only override `forward`; same object, same
parameters, same state dict, same function up to float rounding) and returns it;
`accelerate(net, False)` turns it back. Each kernel sits beside the reference it replaces:

    convs.py          spectral norm on the output, Winograd, folded nearest-2x conv, per-part norms
    label_conv.py     SPADE's label convolution as a gather (no dense one-hot)
    generator.py      FastGenerator: the generator's forward on those kernels
    discriminator.py  FastDiscriminator: the same for D, plus several batches in one call
    winograd.py       F(4x4, 3x3) convolutions for float32 inference
    tuning.py         every threshold, with the CPU and sizes it was measured on
    losses.py         the N+1 cross-entropy and LabelMix's MSE as single-buffer autograd
                      Functions (`oasisgan.losses` takes them with fused=True)

tests/test_accel.py checks each against the reference. The fast forwards re-implement the
reference forwards of `nn/`, so `accelerate` refuses (warns once and returns the reference) when
the source of those reference methods differs from what the fast path was checked against: edit
`nn/`, and you get the reference until you re-check the fast path and update `VERIFIED_NN`
(`python -m oasisgan.accel` prints the new value).
"""
from __future__ import annotations

import hashlib
import inspect
import warnings

import torch.nn as nn

from ..nn.discriminator import Discriminator, ResidualBlockD
from ..nn.generator import Generator, ResnetBlockSPADE
from ..nn.spade import SPADE
from .discriminator import FastDiscriminator
from .generator import FastGenerator

__all__ = ["accelerate", "is_accelerated", "FastGenerator", "FastDiscriminator", "nn_fingerprint"]

# The reference code the fast forwards re-implement.
MIRRORED = (Generator.forward, Generator.__init__, ResnetBlockSPADE.forward, ResnetBlockSPADE.__init__,
            SPADE.forward, SPADE.__init__, Discriminator.forward, Discriminator.__init__,
            ResidualBlockD.forward, ResidualBlockD.shortcut, ResidualBlockD.__init__)
# sha256 of their source when tests/test_accel.py last passed against them.
VERIFIED_NN = "1d5f50af0dfa8ad4e77a5dd941f92438914da3062c96eb3b053a5ab53e036e17"

_FAST = {Generator: FastGenerator, Discriminator: FastDiscriminator}
_warned = False


def source_fingerprint(functions) -> str:
    """sha256 over the source of `functions` ("unknown" where the sources are not installed)."""
    try:
        text = "\n".join(inspect.getsource(f) for f in functions)
    except (OSError, TypeError):
        return "unknown"
    return hashlib.sha256(text.replace("\r\n", "\n").encode()).hexdigest()  # CRLF checkouts alike


def nn_fingerprint() -> str:
    """The fingerprint of the mirrored reference methods of nn/."""
    return source_fingerprint(MIRRORED)


def is_accelerated(net: nn.Module) -> bool:
    return type(net) in _FAST.values()


def accelerate(net: nn.Module, enabled: bool = True) -> nn.Module:
    """`net` (a Generator or Discriminator, or anything else: returned as it is) with the CPU
    kernels on (`enabled`) or off, in place."""
    global _warned
    ref = next((r for r, f in _FAST.items() if type(net) in (r, f)), None)
    if ref is None:
        return net
    if enabled:
        fp = nn_fingerprint()
        if fp not in (VERIFIED_NN, "unknown"):
            if not _warned:
                warnings.warn("oasisgan.accel: the reference networks in oasisgan/nn changed since the "
                              "fast path was checked against them; using the reference forward. Run "
                              "tests/test_accel.py, then set oasisgan.accel.VERIFIED_NN to "
                              f"{fp!r}", stacklevel=2)
                _warned = True
            enabled = False
    net.__class__ = _FAST[ref] if enabled else ref
    return net
