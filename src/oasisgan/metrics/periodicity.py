"""Grid-locked periodic artefacts: how much stronger an image's spectrum is at the frequencies of
a period-p pattern aligned to the pixel grid than around them.

A generator that upsamples by nearest neighbour 2x at each block can draw patterns whose period
is a power of two and whose phase is fixed by the pixel grid (checkers, hatching). Such a pattern
puts its energy on the lattice of frequencies (a*H/p, b*W/p); natural photographs have a smooth
spectrum there. The score of period p is the power at the lattice points that belong to p (not
to a shorter period), over the median power of a ring of bins around each, in dB, pooled over the
images: a few dB for photographs (CamVid val: -0.5 to 2.6), 10-20 dB for a checker over whole
images. Patterns confined to a few regions barely move this whole-image figure (docs/quality.md,
"Periodic artefacts"), which is why the evaluation reports the fakes' excess over the real images,
and also scores regions: square tiles that one class nearly fills (road, facade, trees), pooled per
class (`RegionSpectra`), where a checker confined to that class is not diluted by the rest.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import torch

PERIODS = (2, 4, 8)
MIN_TILES = 20  # a class's tile score counts with this many tiles or more (fewer: too noisy)


def _luminance(images: torch.Tensor) -> torch.Tensor:
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be (B, 1|3, H, W), got {tuple(images.shape)}")
    x = images.float()
    return 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2] if x.shape[1] == 3 else x[:, 0]


def _gray_spectrum(images: torch.Tensor) -> torch.Tensor:
    """Power spectra (B, H, W) of the images' luminance, mean removed, under a Hann window."""
    return _power(_luminance(images))


def _power(x: torch.Tensor) -> torch.Tensor:
    """Power spectra of (..., H, W) gray images, mean removed, under a Hann window."""
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
    """Power spectra summed over images, batch by batch (the evaluation pass streams its fakes);
    with `regions`, also the per-class tile spectra of `RegionSpectra` (labels passed to update)."""

    def __init__(self, regions: Optional["RegionSpectra"] = None):
        self.power = None
        self.count = 0
        self.regions = regions

    def update(self, images: torch.Tensor, labels: Optional[torch.Tensor] = None) -> "PeriodicSpectrum":
        if self.regions is not None and labels is not None:
            self.regions.update(images, labels)
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


class RegionSpectra:
    """Spectra of the `tile` x `tile` squares (stride tile/2) in which one class covers at least
    `min_fraction` of the pixels, summed per class. The tiles come from the label maps, so fakes
    and real images generated from the same maps are scored on the same squares. A tile of 32
    holds periods 2, 4 and 8; its background ring is the bins 2 away (lattice points of period 8
    are 4 bins apart there)."""

    def __init__(self, tile: int = 32, min_fraction: float = 0.9, ignore: Optional[int] = None):
        if tile % 2 or tile < 8:
            raise ValueError(f"tile must be an even size of at least 8, got {tile}")
        self.tile, self.min_fraction, self.ignore = tile, min_fraction, ignore
        self.power: Dict[int, torch.Tensor] = {}
        self.count: Dict[int, int] = {}

    def update(self, images: torch.Tensor, labels: torch.Tensor) -> "RegionSpectra":
        x = _luminance(images.detach().cpu())
        labels = labels.detach().cpu().long()
        if labels.dim() == 4:
            labels = labels[:, 0]
        if labels.shape != x.shape:
            raise ValueError(f"labels {tuple(labels.shape)} do not match the images {tuple(x.shape)}")
        t, stride = self.tile, self.tile // 2
        if min(x.shape[-2:]) < t:
            return self
        tiles = x.unfold(1, t, stride).unfold(2, t, stride).reshape(-1, t, t)
        ids = labels.unfold(1, t, stride).unfold(2, t, stride).reshape(-1, t * t)
        major = ids.mode(dim=1).values
        keep = (ids == major[:, None]).float().mean(1) >= self.min_fraction
        if self.ignore is not None:
            keep &= major != self.ignore
        if not keep.any():
            return self
        power, major = _power(tiles[keep]), major[keep]
        for c in major.unique().tolist():
            sel = major == c
            self.power[c] = self.power.get(c, 0) + power[sel].sum(0)
            self.count[c] = self.count.get(c, 0) + int(sel.sum())
        return self

    def scores(self, min_tiles: int = 1, periods: Sequence[int] = PERIODS) -> Dict[int, Dict[int, float]]:
        """{class id: {period: dB}} for the classes with at least `min_tiles` tiles."""
        periods = [p for p in periods if self.tile % p == 0]
        ring = max(2, min(4, self.tile // (2 * max(periods))))
        return {c: _lattice_scores(self.power[c], periods, ring)
                for c in sorted(self.power) if self.count[c] >= min_tiles}


def regional_excess(fake: RegionSpectra, real: RegionSpectra, min_tiles: Optional[int] = None,
                    names: Optional[Sequence[str]] = None) -> Tuple[float, Dict[str, dict]]:
    """The largest per-class excess of the fakes' tile scores over the real images' (dB), over the
    classes with at least `min_tiles` (default `MIN_TILES`) tiles, and each such class's detail
    (NaN when none has)."""
    min_tiles = MIN_TILES if min_tiles is None else min_tiles
    f, r = fake.scores(min_tiles), real.scores(min_tiles)
    detail = {}
    for c in sorted(set(f) & set(r)):
        name = names[c] if names is not None and c < len(names) else str(c)
        detail[name] = {"tiles": fake.count[c], "excess_db": excess_db(f[c], r[c]), "fake": f[c], "real": r[c]}
    worst = max((d["excess_db"] for d in detail.values()), default=float("nan"))
    return worst, detail


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
