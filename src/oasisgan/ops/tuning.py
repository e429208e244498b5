"""Where each CPU speed-up pays: every threshold of `oasisgan.ops` in one place.

None of them changes a result (every path computes the reference function); they only pick the
faster kernel. All were measured on the 2-core development CPU (x86-64, PyTorch 2.13 CPU build,
float32 unless said) with benchmarks/bench_train.py and bench_infer.py; another CPU may move them.
"""
import torch

# The fast path saves FLOPs, which is what limits a CPU; on a GPU its many small gathers cost more
# than cuDNN's dense convolutions (H100: inference 0.42x, training 0.90x of the plain path), so
# ops take their reference on accelerators unless this is set (`dispatch.choose`).
ON_ACCELERATORS = False

# Activation layout: channels_last where a map has at least this many pixels (batch included);
# below, converting the large low-resolution weights each call costs more than it saves.
# (64x64 toy and 256x256 generators, batch 1-8.)
CHANNELS_LAST_MIN_PIXELS = 4096
# "auto" (the rule above), "channels_last" or "contiguous": the layout the fast convolutions give
# their input (never changes the math).
MEMORY_FORMAT = "auto"


def memory_format(pixels: int):
    """The activation layout of the fast ops for a map of `pixels` (batch included)."""
    if MEMORY_FORMAT != "auto":
        return torch.channels_last if MEMORY_FORMAT == "channels_last" else torch.contiguous_format
    return torch.channels_last if pixels >= CHANNELS_LAST_MIN_PIXELS else torch.contiguous_format

# Fold the 1x1 shortcut conv into norm_s's beta conv when the map has more than
# FOLD_SHORTCUT_FACTOR * fin * fout / (fin - fout) pixels, batch included: the FLOPs it saves then
# exceed the cost of composing the weights, with a margin. (256x256 generator blocks.)
FOLD_SHORTCUT_FACTOR = 2

# Discriminator up blocks: fold the nearest 2x upsampling into conv1 (a transposed convolution)
# on inputs of at least this many pixels, batch included (under bf16 autocast the second);
# below, preparing the 4x4 kernel costs more than it saves. (64x64 and 128x128 D, batch 2-8.)
# (A 1x1 conv always runs before the upsampling, which it commutes with: 4x fewer FLOPs.)
FUSE_UPSAMPLING_MIN_PIXELS = 1024
FUSE_UPSAMPLING_MIN_PIXELS_AUTOCAST = 4096

# The D step's three D calls as one batched call pays up to this many pixels (B*H*W): 64x64
# -6 to -13% per step, 128x128 +8% at batch 2 and +18% at batch 4.
BATCH_D_MAX_PIXELS = 64 * 64 * 4

# Winograd F(4x4, 3x3) for CPU float32 inference: maps of at least WINOGRAD_MIN_PIXELS pixels per
# image and at least WINOGRAD_MIN_CHANNELS channels in and out (1.3-2x per layer above, slower
# below); tiles are transformed in chunks of WINOGRAD_CHUNK_TILES rows per thread (L2-sized).
WINOGRAD_TILE = 4  # F(m x m, 3x3): 4, 2 or 0 (off; F(2x2) rounds less but rarely pays)
WINOGRAD_MIN_PIXELS = 32 * 32
WINOGRAD_MIN_CHANNELS = 128
WINOGRAD_CHUNK_TILES = 128
