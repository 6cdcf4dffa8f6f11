"""Precision/recall (k=3) and density/coverage (k=5): identical sets, disjoint manifolds, a dropped mode,
brute-force and torch-fidelity parity, and the prdc package's published sanity numbers (slow)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganforge.metrics.prdc import density_coverage, knn_radii, prdc, precision_recall


def test_identical_sets_give_one():
    x = np.random.default_rng(0).standard_normal((300, 16))
    out = prdc(x, x)
    assert out["precision"] == 1.0 and out["recall"] == 1.0 and out["coverage"] == 1.0
    assert out["density"] == pytest.approx(1.0, abs=0.05)


def test_disjoint_manifolds_give_zero():
    rng = np.random.default_rng(1)
    real = rng.standard_normal((300, 16))
    fake = rng.standard_normal((300, 16)) + 100.0
    out = prdc(real, fake)
    assert out == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_coverage_and_recall_detect_a_dropped_mode():
    rng = np.random.default_rng(2)
    centers = np.eye(8)[:4] * 50.0  # 4 well-separated modes
    real = np.concatenate([c + rng.standard_normal((250, 8)) for c in centers])
    full = prdc(real, np.concatenate([c + rng.standard_normal((250, 8)) for c in centers]))
    dropped = prdc(real, np.concatenate([c + rng.standard_normal((330, 8)) for c in centers[:3]]))  # mode 4 dropped
    assert full["coverage"] > 0.95
    # A quarter of the real balls (and real samples) lose their generated neighbours; precision does not notice.
    assert dropped["coverage"] == pytest.approx(0.75 * full["coverage"], abs=0.04)
    assert dropped["recall"] == pytest.approx(0.75 * full["recall"], abs=0.05)
    assert dropped["precision"] == pytest.approx(full["precision"], abs=0.05)


def _brute(real, fake, k_pr=3, k_dc=5):
    d_rr = np.linalg.norm(real[:, None] - real[None], axis=-1)
    d_ff = np.linalg.norm(fake[:, None] - fake[None], axis=-1)
    d_fr = np.linalg.norm(fake[:, None] - real[None], axis=-1)
    r_pr = np.sort(d_rr, 1)[:, k_pr]
    f_pr = np.sort(d_ff, 1)[:, k_pr]
    r_dc = np.sort(d_rr, 1)[:, k_dc]
    return {
        "precision": float((d_fr <= r_pr[None]).any(1).mean()),  # Kynkäänniemi et al. 2019, eq. 1
        "recall": float((d_fr.T <= f_pr[None]).any(1).mean()),
        "density": float((d_fr < r_dc[None]).sum(1).mean() / k_dc),  # Naeem et al. 2020, eq. 3
        "coverage": float((d_fr.min(0) < r_dc).mean()),  # eq. 4
    }


def test_matches_brute_force_definitions():
    rng = np.random.default_rng(3)
    real = rng.standard_normal((120, 6))
    fake = rng.standard_normal((90, 6)) * 1.3 + 0.2
    ours, ref = prdc(real, fake), _brute(real, fake)
    for k in ref:
        assert ours[k] == pytest.approx(ref[k], abs=1e-9), k
    p, r = precision_recall(real, fake)
    d, c = density_coverage(real, fake)
    assert (p, r, d, c) == pytest.approx((ref["precision"], ref["recall"], ref["density"], ref["coverage"]))
    # Precomputed real radii give the same result.
    radii = knn_radii(real, [3, 5])
    assert prdc(real, fake, real_radii=radii) == ours


def test_precision_recall_matches_torch_fidelity():
    prc = pytest.importorskip("torch_fidelity.metric_prc")
    rng = np.random.default_rng(4)
    real = rng.standard_normal((400, 32)).astype(np.float32)
    fake = (rng.standard_normal((350, 32)) * 1.2).astype(np.float32)
    # torch-fidelity's convention: features_1 generated, features_2 real.
    p, r = prc.calculate_precision_recall_full(torch.from_numpy(fake), torch.from_numpy(real), neighborhood=3)
    assert precision_recall(real, fake) == pytest.approx((p, r), abs=1e-6)  # theirs: float32 means


def test_too_few_samples_is_a_clear_error():
    x = np.zeros((3, 4))
    with pytest.raises(ValueError, match="need more than 3 samples"):
        precision_recall(x, x)


@pytest.mark.slow
def test_prdc_package_sanity_numbers():
    """The prdc package's README: two independent 10k samples of N(0, I) in 1000-D, k = 5 ->
    precision 0.477, recall 0.471, density 1.056, coverage 0.974 (their sample; ours differs by noise)."""
    rng = np.random.default_rng(0)
    real = rng.standard_normal((10000, 1000)).astype(np.float32)
    fake = rng.standard_normal((10000, 1000)).astype(np.float32)
    out = prdc(real, fake, pr_k=5, dc_k=5)
    assert out["precision"] == pytest.approx(0.477, abs=0.02)
    assert out["recall"] == pytest.approx(0.471, abs=0.02)
    assert out["density"] == pytest.approx(1.056, abs=0.03)
    assert out["coverage"] == pytest.approx(0.974, abs=0.01)
