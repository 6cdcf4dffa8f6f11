"""KID: unbiased (about 0) on equal distributions, positive on different ones, small sets, torch-fidelity parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganforge.metrics.kid import kernel_inception_distance


def test_kid_is_unbiased_on_equal_distributions():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((1000, 32)), rng.standard_normal((1000, 32))
    mean, std = kernel_inception_distance(x, y, subsets=30, subset_size=300)
    shifted, _ = kernel_inception_distance(x, y + 0.5, subsets=30, subset_size=300)
    assert abs(mean) < 3 * std + 1e-4
    assert abs(mean) < 0.02 * shifted
    assert shifted > 0


def test_kid_small_dataset_uses_smaller_subsets():
    """A 700-image dataset: subsets of min(1000, n) = 700, no error about subset sizes."""
    rng = np.random.default_rng(1)
    mean, std = kernel_inception_distance(
        rng.standard_normal((700, 16)), rng.standard_normal((900, 16)) + 0.2, subsets=20
    )
    assert np.isfinite(mean) and np.isfinite(std) and mean > 0


def test_kid_matches_torch_fidelity():
    kid_mod = pytest.importorskip("torch_fidelity.metric_kid")
    rng = np.random.default_rng(2)
    x = np.abs(rng.standard_normal((300, 128))).astype(np.float32)  # ReLU-like, as Inception pool features
    y = (np.abs(rng.standard_normal((250, 128))) * 1.1).astype(np.float32)
    ours = kernel_inception_distance(x, y, subsets=20, subset_size=200)
    theirs = kid_mod.kid_features_to_metric(
        torch.from_numpy(x),
        torch.from_numpy(y),
        kid_subsets=20,
        kid_subset_size=200,
        verbose=False,
        kid_kernel="poly",
        kid_kernel_poly_degree=3,
        kid_kernel_poly_gamma=None,
        kid_kernel_poly_coef0=1,
        rng_seed=2020,
    )
    assert ours[0] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-4)
    assert ours[1] == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-3)
    # The per-subset kernels (large sets) and the precomputed Gram matrices (small sets) agree.
    per_subset = kernel_inception_distance(x, y, subsets=20, subset_size=200, gram=False)
    gram = kernel_inception_distance(x, y, subsets=20, subset_size=200, gram=True)
    assert per_subset == pytest.approx(gram, rel=1e-5)
