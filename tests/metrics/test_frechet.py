"""FID: zero for a set with itself, the closed form for Gaussians, rank-deficient covariances, no silent
complex parts, and agreement with torch-fidelity's formula."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from ganforge.metrics.frechet import (
    feature_statistics,
    frechet_distance,
    frechet_distance_to_features,
    trace_sqrt_product,
)


def _random_cov(rng, d, scale=1.0):
    a = rng.standard_normal((d, d)) * scale
    return a @ a.T / d + 0.1 * np.eye(d)


def _reference(mu1, s1, mu2, s2):
    """The textbook formula with scipy's sqrtm (Heusel et al. 2017, eq. 6)."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


def test_fid_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(0).standard_normal((500, 64)).astype(np.float32)
    mu, sigma = feature_statistics(x)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance_to_features(mu, sigma, x) == pytest.approx(0.0, abs=1e-8)


def test_fid_equals_closed_form_for_gaussians():
    rng = np.random.default_rng(1)
    d = 32
    # Diagonal covariances: d^2 = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2 exactly.
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    a, b = rng.uniform(0.5, 2, d), rng.uniform(0.5, 2, d)
    closed = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(closed, rel=1e-10)
    # Full covariances: the sqrtm formula.
    s1, s2 = _random_cov(rng, d), _random_cov(rng, d, 2.0)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_reference(mu1, s1, mu2, s2), rel=1e-9)
    # Features sampled from those Gaussians: the sample FID approaches the population value.
    n = 20000
    x = rng.multivariate_normal(mu1, s1, n)
    y = rng.multivariate_normal(mu2, s2, n)
    m1, c1 = feature_statistics(x)
    m2, c2 = feature_statistics(y)
    assert frechet_distance(m1, c1, m2, c2) == pytest.approx(_reference(mu1, s1, mu2, s2), rel=0.02)


def test_fid_rank_deficient_covariances():
    """Fewer samples than dimensions (tiny test sets): both covariances singular, still exact and real."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((20, 64))
    y = rng.standard_normal((30, 64)) * 1.5 + 0.3
    m1, c1 = feature_statistics(x)
    m2, c2 = feature_statistics(y)
    full = frechet_distance(m1, c1, m2, c2)
    assert full == pytest.approx(_reference(m1, c1, m2, c2), rel=1e-6)
    assert frechet_distance_to_features(m1, c1, y) == pytest.approx(full, rel=1e-7)
    assert frechet_distance(m2, c2, m1, c1) == pytest.approx(full, rel=1e-7)  # symmetric


def test_fid_raises_instead_of_dropping_complex_parts():
    s1 = np.eye(4)
    s2 = np.diag([1.0, 1.0, 1.0, -5.0])  # not a covariance: sqrtm(S1 S2) would be complex
    with pytest.raises(ValueError, match="negative eigenvalue"):
        trace_sqrt_product(s1, s2)


def test_fid_matches_torch_fidelity_formula():
    fid_mod = pytest.importorskip("torch_fidelity.metric_fid")
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((300, 48)), rng.standard_normal((400, 48)) * 1.2 + 0.1
    m1, c1 = feature_statistics(x)
    m2, c2 = feature_statistics(y)
    theirs = fid_mod.fid_statistics_to_metric({"mu": m1, "sigma": c1}, {"mu": m2, "sigma": c2}, False)
    assert frechet_distance(m1, c1, m2, c2) == pytest.approx(theirs["frechet_inception_distance"], rel=1e-9)
