"""Grid-locked periodic artefacts: how much stronger an image's spectrum is at the frequencies of
a period-p pattern aligned to the pixel grid than around them.

A generator that upsamples by nearest neighbour 2x at each block can draw patterns whose period
is a power of two and whose phase is fixed by the pixel grid (checkers, hatching). Such a pattern
puts its energy on the lattice of frequencies (a*H/p, b*W/p); natural photographs have a smooth
spectrum there. The score of period p is the power at the lattice points that belong to p (not
to a shorter period), over the median power of a ring of bins around each, in dB, pooled over the
images: a few dB for photographs (CamVid val: -0.5 to 2.6), 10-20 dB for a checker over whole
images. Patterns confined to a few regions barely move this whole-image figure (docs/quality.md,
"Periodic artefacts"), which is why the evaluation reports the fakes' excess over the real images.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence

import torch

PERIODS = (2, 4, 8)


def _gray_spectrum(images: torch.Tensor) -> torch.Tensor:
    """Power spectra (B, H, W) of the images' luminance, mean removed, under a Hann window."""
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be (B, 1|3, H, W), got {tuple(images.shape)}")
    x = images.float()
    if x.shape[1] == 3:
        x = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    else:
        x = x[:, 0]
    h, w = x.shape[-2:]
    window = torch.hann_window(h, periodic=True)[:, None] * torch.hann_window(w, periodic=True)[None, :]
    x = (x - x.mean(dim=(-2, -1), keepdim=True)) * window
    return torch.fft.fft2(x).abs().square()


def _lattice(h: int, w: int, period: int) -> set:
    """The frequency bins of a grid-locked period-`period` pattern, without those of its divisors."""
    def points(p: int) -> set:
        return {((a * h // p) % h, (b * w // p) % w) for a in range(p) for b in range(p)} - {(0, 0)}
    own = points(period)
    q = period // 2
    while q >= 2:
        own -= points(q)
        q //= 2
    return own


class PeriodicSpectrum:
    """Power spectra summed over images, batch by batch (the evaluation pass streams its fakes)."""

    def __init__(self):
        self.power = None
        self.count = 0

    def update(self, images: torch.Tensor) -> "PeriodicSpectrum":
        power = _gray_spectrum(images.detach().cpu()).sum(0)
        if self.power is not None and power.shape != self.power.shape:
            raise ValueError(f"image size {tuple(power.shape)} differs from the earlier {tuple(self.power.shape)}")
        self.power = power if self.power is None else self.power + power
        self.count += images.shape[0]
        return self

    def scores(self, periods: Optional[Sequence[int]] = None, ring: int = 4) -> Dict[int, float]:
        """periods: None takes those of `PERIODS` that divide the image size."""
        if self.power is None:
            raise ValueError("no images were added")
        h, w = self.power.shape
        if periods is None:
            periods = [p for p in PERIODS if h % p == 0 and w % p == 0]
        return _lattice_scores(self.power, periods, ring)


def periodic_scores(images: torch.Tensor, periods: Sequence[int] = PERIODS, ring: int = 4) -> Dict[int, float]:
    """{period: score in dB} for images (B, C, H, W) in any range; H and W multiples of each period."""
    return PeriodicSpectrum().update(images).scores(periods, ring)


def _lattice_scores(power: torch.Tensor, periods: Sequence[int], ring: int) -> Dict[int, float]:
    """Peak: the largest power within one bin of each lattice point (the window spreads a line over
    neighbouring bins). Background: the median power of the bins 2..`ring` away (Chebyshev
    distance) from it; for a point on an axis, only the bins along that axis: an axis-aligned edge
    puts a whole line of power there (a building's side, a horizon), which is not a period.
    Powers are summed over images and lattice points before the ratio."""
    h, w = power.shape
    offsets = [(dy, dx) for dy in range(-ring, ring + 1) for dx in range(-ring, ring + 1)]
    near = [(dy, dx) for dy, dx in offsets if max(abs(dy), abs(dx)) <= 1]
    far = [(dy, dx) for dy, dx in offsets if max(abs(dy), abs(dx)) >= 2]
    along_x = [(dy, dx) for dy, dx in far if dy == 0]  # fy = 0: the row of vertical edges
    along_y = [(dy, dx) for dy, dx in far if dx == 0]  # fx = 0: the column of horizontal edges
    scores = {}
    for p in periods:
        if h % p or w % p:
            raise ValueError(f"image size {h}x{w} is not a multiple of the period {p}")
        peak = background = 0.0
        for fy, fx in _lattice(h, w, p):
            ring_bins = along_x if fy == 0 else along_y if fx == 0 else far
            peak += max(float(power[(fy + dy) % h, (fx + dx) % w]) for dy, dx in near)
            background += float(torch.tensor([float(power[(fy + dy) % h, (fx + dx) % w])
                                              for dy, dx in ring_bins]).median())
        scores[p] = 10.0 * math.log10(max(peak, 1e-30) / max(background, 1e-30))
    return scores


def excess_db(fake: Dict[int, float], real: Dict[int, float]) -> float:
    """The evaluation's single figure: the largest excess, over the periods, of the generated
    images' score above the real images' (dB; about 0 when the fakes are as free of grid-locked
    patterns as the photos)."""
    return max(fake[p] - real[p] for p in fake)
