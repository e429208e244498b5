"""The grid-locked periodic-artefact score (metrics/periodicity.py)."""
import pytest
import torch
import torch.nn.functional as F

from oasisgan.metrics.periodicity import _lattice, periodic_scores


def smooth_images(n=8, h=64, w=96, seed=0):
    """Stationary noise with a photograph-like 1/f amplitude spectrum (no preferred grid)."""
    g = torch.Generator().manual_seed(seed)
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.fftfreq(w)[None, :]
    amplitude = 1.0 / (fy.square() + fx.square()).sqrt().clamp_min(1.0 / max(h, w))
    spectrum = torch.fft.fft2(torch.randn(n, 3, h, w, generator=g)) * amplitude
    x = torch.fft.ifft2(spectrum).real
    return x / x.std()


def test_lattice_excludes_shorter_periods():
    assert _lattice(8, 8, 2) == {(0, 4), (4, 0), (4, 4)}
    own4 = _lattice(16, 16, 4)
    assert len(own4) == 16 - 4 and not own4 & _lattice(16, 16, 2)


def test_natural_images_score_near_zero_and_a_checker_stands_out():
    base = smooth_images()
    clean = periodic_scores(base)
    assert all(abs(v) < 3.0 for v in clean.values()), clean
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(96), indexing="ij")
    checker4 = ((((yy // 2) + (xx // 2)) % 2) * 2 - 1).float()  # period 4 in both directions
    dirty = periodic_scores(base + 0.1 * checker4)
    assert dirty[4] > clean[4] + 10.0, (clean, dirty)
    assert dirty[8] < clean[8] + 3.0  # a period-4 pattern does not raise period 8


def test_nearest_upsampled_random_convnet_is_periodic():
    """The mechanism the score exists for: nearest 2x + 3x3 conv of a random net leaves period-2 energy."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 3, 3, padding=1)
    x = torch.randn(6, 8, 16, 24)
    near = conv(F.interpolate(x, scale_factor=2, mode="nearest")).detach()
    bil = conv(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)).detach()
    assert periodic_scores(near)[2] > periodic_scores(bil)[2] + 3.0


def test_size_must_fit_the_period():
    with pytest.raises(ValueError, match="multiple of the period 8"):
        periodic_scores(torch.zeros(1, 3, 20, 20))
    with pytest.raises(ValueError, match="images must be"):
        periodic_scores(torch.zeros(3, 20, 20))


def test_streamed_spectra_equal_one_batch():
    from oasisgan.metrics.periodicity import PeriodicSpectrum

    images = smooth_images(n=6, h=32, w=48)
    streamed = PeriodicSpectrum().update(images[:2]).update(images[2:])
    assert streamed.count == 6
    assert streamed.scores() == pytest.approx(periodic_scores(images), abs=1e-6)
    assert set(PeriodicSpectrum().update(torch.zeros(1, 3, 12, 20)).scores()) == {2, 4}  # 8 does not divide
    with pytest.raises(ValueError, match="differs"):
        streamed.update(torch.zeros(1, 3, 16, 16))


def test_upsample_option_is_validated_and_keeps_the_parameters():
    from oasisgan.config import ConfigError, OASISConfig
    from oasisgan.nn import Generator

    with pytest.raises(ConfigError, match="upsample_G"):
        OASISConfig(upsample_G="bicubic").validate()
    near = Generator(4, channels=4, num_blocks=3, z_dim=2, spade_hidden=4)
    bil = Generator(4, channels=4, num_blocks=3, z_dim=2, spade_hidden=4, upsample="bilinear")
    assert near.state_dict().keys() == bil.state_dict().keys()


def test_axis_aligned_edges_are_not_periods():
    """A step edge puts a line of power through the origin, over the axis lattice points."""
    base = smooth_images(n=4, h=64, w=64)
    edges = base.clone()
    edges[..., :, 23:] += 3.0   # a vertical edge (not at a multiple of 8)
    edges[..., 37:, :] -= 2.0   # a horizontal one
    clean, stepped = periodic_scores(base), periodic_scores(edges)
    assert all(stepped[p] < clean[p] + 3.0 for p in (2, 4, 8)), (clean, stepped)


def test_region_spectra_find_a_checker_confined_to_one_class():
    """A checker over a quarter of the picture barely moves the whole-image score; the tiles of its
    class show it, those of the other class do not, and the tiles are the same for fake and real."""
    from oasisgan.metrics.periodicity import PeriodicSpectrum, RegionSpectra, regional_excess

    real = smooth_images(n=6, h=64, w=96, seed=1)
    labels = torch.zeros(6, 64, 96, dtype=torch.long)
    labels[:, 32:, 48:] = 1  # "road": the bottom right quarter
    labels[:, :4, :4] = 7    # a speck of another class: no tile of its own
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(96), indexing="ij")
    checker4 = ((((yy // 2) + (xx // 2)) % 2) * 2 - 1).float()
    fake = real + 0.2 * checker4 * (labels == 1)[:, None].float()
    whole_f, whole_r = PeriodicSpectrum(RegionSpectra()), PeriodicSpectrum(RegionSpectra())
    whole_f.update(fake[:3], labels[:3]).update(fake[3:], labels[3:])
    whole_r.update(real, labels)
    worst, detail = regional_excess(whole_f.regions, whole_r.regions, min_tiles=5, names=["sky", "road"])
    assert set(detail) == {"sky", "road"}
    assert detail["road"]["excess_db"] > 6.0 and abs(detail["sky"]["excess_db"]) < 0.5, detail
    assert worst == detail["road"]["excess_db"]
    assert detail["road"]["tiles"] == whole_r.regions.count[1] == 6 * 2  # two 32-tiles fit in 32x48 per image
    whole_excess = max(a - b for a, b in zip(whole_f.scores().values(), whole_r.scores().values()))
    assert whole_excess < detail["road"]["excess_db"] - 3.0


def test_region_spectra_skip_dont_care_and_small_images():
    from oasisgan.metrics.periodicity import RegionSpectra, regional_excess

    images = smooth_images(n=2, h=32, w=32)
    rs = RegionSpectra(ignore=11).update(images, torch.full((2, 32, 32), 11))
    assert rs.count == {} and RegionSpectra().update(smooth_images(n=1, h=16, w=16), torch.zeros(1, 16, 16)).count == {}
    worst, detail = regional_excess(rs, rs)
    assert detail == {} and worst != worst  # NaN: no class has tiles
    with pytest.raises(ValueError, match="do not match"):
        RegionSpectra().update(images, torch.zeros(2, 16, 16))
