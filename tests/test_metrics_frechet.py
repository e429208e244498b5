"""Fréchet distance: zero on itself, the closed form on Gaussians, finite on singular covariances."""
import numpy as np
import pytest
import torch

from oasisgan.metrics.fid import FeatureStats, frechet_distance, stats_cache_path


def _rand_cov(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


@pytest.mark.parametrize("method", ["eig", "sqrtm"])
def test_self_distance_is_zero(method):
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((500, 16)) @ rng.standard_normal((16, 16))
    s = FeatureStats.from_features(feats)
    assert s.distance(s, method=method) == pytest.approx(0.0, abs=1e-8)


@pytest.mark.parametrize("method", ["eig", "sqrtm"])
def test_closed_form_diagonal_gaussians(method):
    # Commuting covariances: FD = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2.
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b), method=method) == pytest.approx(expected, rel=1e-10)


def test_methods_agree_on_general_covariances():
    rng = np.random.default_rng(1)
    s1, s2 = _rand_cov(rng, 32), _rand_cov(rng, 32)
    mu1, mu2 = rng.standard_normal(32), rng.standard_normal(32)
    d_eig = frechet_distance(mu1, s1, mu2, s2, method="eig")
    d_sqrtm = frechet_distance(mu1, s1, mu2, s2, method="sqrtm")
    assert d_eig == pytest.approx(d_sqrtm, rel=1e-8)
    # symmetric
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(d_eig, rel=1e-8)


def test_samples_of_two_gaussians_match_closed_form():
    rng = np.random.default_rng(2)
    d = 4
    mu1, mu2 = np.zeros(d), np.full(d, 0.5)
    s1, s2 = np.diag([1.0, 2.0, 0.5, 1.5]), np.diag([2.0, 1.0, 0.5, 0.5])
    x = rng.multivariate_normal(mu1, s1, size=200_000)
    y = rng.multivariate_normal(mu2, s2, size=200_000)
    expected = frechet_distance(mu1, s1, mu2, s2)
    got = FeatureStats.from_features(x).distance(FeatureStats.from_features(y))
    assert got == pytest.approx(expected, abs=0.02)


@pytest.mark.parametrize("method", ["eig", "sqrtm"])
def test_near_singular_covariance_stays_finite(method):
    rng = np.random.default_rng(3)
    # 10 samples in 64 dimensions: rank-9 covariances, as with a tiny validation set.
    x = FeatureStats.from_features(rng.standard_normal((10, 64)))
    y = FeatureStats.from_features(rng.standard_normal((10, 64)) + 0.3)
    d = x.distance(y, method=method)
    assert np.isfinite(d) and d > 0
    # exactly singular: a zero-variance feature set
    z = FeatureStats(np.zeros(64), np.zeros((64, 64)), 10)
    assert np.isfinite(frechet_distance(z.mu, z.sigma, y.mu, y.sigma, method=method))


def test_float64_from_float32_tensors_and_roundtrip(tmp_path):
    feats = torch.randn(100, 8)
    s = FeatureStats.from_features(feats)
    assert s.mu.dtype == np.float64 and s.sigma.dtype == np.float64
    p = tmp_path / "s.npz"
    s.save(p, {"k": 1})
    t = FeatureStats.load(p)
    assert t.n == 100 and np.array_equal(t.sigma, s.sigma)


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(2), np.array([[np.nan, 0], [0, 1]]), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError):
        FeatureStats.from_features(np.array([[np.inf, 1.0], [0.0, 1.0]]))


def test_cache_path_depends_on_split_resolution_and_weights(tmp_path):
    a = stats_cache_path(tmp_path, "fid", "ade20k", tmp_path, "val", (256, 256), "w1", None)
    assert a != stats_cache_path(tmp_path, "fid", "ade20k", tmp_path, "train", (256, 256), "w1", None)
    assert a != stats_cache_path(tmp_path, "fid", "ade20k", tmp_path, "val", (128, 128), "w1", None)
    assert a != stats_cache_path(tmp_path, "fid", "ade20k", tmp_path, "val", (256, 256), "w2", None)
