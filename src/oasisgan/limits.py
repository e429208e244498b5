"""Bounds on what a request or an argument can make large, shared by the CLI and the painter
(docs/reliability.md): imported by `--help`, so no torch here."""
from __future__ import annotations

MAX_INVERSION_STEPS = 5000  # `oasis invert --steps` and the painter's photo inversions
MAX_DECODE_PIXELS = 64 * 2**20  # one uploaded image (label map or photo): a decompression-bomb guard
# Pixels the painter decodes at once over all its requests: decoding costs about 10 bytes per
# pixel (an 8000x8000 PNG: 650 MB), so this holds the server's decoding to about 1.3 GB; a
# request that would go over waits for the others, then gets 503.
DECODE_BUDGET_PIXELS = 2 * MAX_DECODE_PIXELS
DECODE_WAIT_S = 30.0
