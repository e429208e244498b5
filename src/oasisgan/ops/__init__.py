"""The operators the networks in `oasisgan.nn` and the losses call, each with two implementations:
"ref", plain PyTorch computing the official function as the official code writes it, and
"fast", the same function up to float rounding with less work on a CPU. There is one forward
per network (`nn/`); an op picks its implementation per call (`dispatch.choose`: tracing,
export and compile, the device, `use(...)`), so an edit of `nn/` changes both paths at once.

    conv.py           conv2d: layout, Winograd inference, nearest-2x upsampling folded into the kernel;
                      layout: an activation in the convolutions' layout
    spectral_norm.py  sn_conv2d: torch's old-style spectral norm, scaled on the output when smaller
    labelmap.py       LabelMap (the generator's label + noise) and label_conv, a gather by label id
    modulation.py     modulate: SPADE's gamma/beta convs as one, the block's 1x1 shortcut folded in
    batched.py        calls: several discriminator calls as one batched call
    losses.py         cross_entropy, labelmix_mse: single-buffer loss kernels
    winograd.py       F(4x4, 3x3) convolutions (used by conv2d and modulate)
    dispatch.py       choose, use, traced
    tuning.py         every threshold, with the CPU and sizes it was measured on

tests/test_ops.py checks each op's fast implementation against its reference (forward and
backward) and whole networks and a training step with every op "fast" against every op "ref".
"""
from .batched import calls
from .conv import conv2d, layout
from .dispatch import choose, traced, use
from .labelmap import LabelMap, label_conv
from .losses import cross_entropy, labelmix_mse
from .modulation import modulate
from .spectral_norm import sn_conv2d

__all__ = ["calls", "conv2d", "choose", "traced", "use", "LabelMap", "label_conv", "cross_entropy",
           "labelmix_mse", "layout", "modulate", "sn_conv2d"]
