"""Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs", eq. 4 and Sec. 4).

The unbiased estimate of the squared MMD with the cubic polynomial kernel k(x, y) = (xᵀy / d + 1)³,
averaged over random subsets. The subset draws follow torch-fidelity's order and seed (numpy
RandomState(2020); a subset of the first set, then of the second, per round) so that, with the same
features, the numbers agree with torch-fidelity's `calculate_metrics` to rounding.
"""

from __future__ import annotations

import numpy as np
import torch


def _poly_kernel(x: torch.Tensor, y: torch.Tensor, gamma: float, coef0: float, degree: int) -> torch.Tensor:
    return (x @ y.T * gamma + coef0) ** degree  # (m, m)


def mmd2_unbiased(k_xx: torch.Tensor, k_xy: torch.Tensor, k_yy: torch.Tensor) -> float:
    """Unbiased MMD² from kernel matrices (Gretton et al. 2012, eq. 3): diagonals of K_XX, K_YY are excluded."""
    m = k_xx.shape[0]
    kxx = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    kyy = (k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    kxy = k_xy.sum() / (m * m)
    return float(kxx + kyy - 2 * kxy)


def kernel_inception_distance(
    features1: np.ndarray | torch.Tensor,
    features2: np.ndarray | torch.Tensor,
    *,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int = 2020,
    gram: bool | None = None,
) -> tuple[float, float]:
    """KID mean and std over `subsets` random subsets of min(subset_size, n1, n2) samples each, so that small
    datasets (a few hundred images) still get a number instead of an error about subset sizes.
    gram: precompute the full Gram matrices once (None: when that is cheaper, for sets up to 4096).
    By torch-fidelity's convention features1 are the generated ones and features2 the real ones."""
    f1 = torch.as_tensor(np.asarray(features1, dtype=np.float32))
    f2 = torch.as_tensor(np.asarray(features2, dtype=np.float32))
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise ValueError(f"KID needs (N, D) features of the same D, got {tuple(f1.shape)} and {tuple(f2.shape)}")
    n1, n2 = f1.shape[0], f2.shape[0]
    m = min(subset_size, n1, n2)
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples in each set, got {n1} and {n2}")
    g = 1.0 / f1.shape[1] if gamma is None else gamma  # gamma = 1/d (Bińkowski et al. 2018, Sec. 4)
    rng = np.random.RandomState(seed)
    # Small sets: one Gram matrix per pair of sets, indexed per subset, beats 3 x `subsets` matmuls.
    full = gram if gram is not None else max(n1, n2) <= 4096 and n1 * n1 + n2 * n2 + n1 * n2 < 3 * subsets * m * m
    if full:
        g11, g22, g12 = f1 @ f1.T, f2 @ f2.T, f1 @ f2.T  # (n1, n1), (n2, n2), (n1, n2)
    mmds = np.zeros(subsets)
    for i in range(subsets):
        ix = torch.from_numpy(rng.choice(n1, m, replace=False))
        iy = torch.from_numpy(rng.choice(n2, m, replace=False))
        if full:
            k_xx = (g11[ix][:, ix] * g + coef0) ** degree
            k_yy = (g22[iy][:, iy] * g + coef0) ** degree
            k_xy = (g12[ix][:, iy] * g + coef0) ** degree
        else:
            x, y = f1[ix], f2[iy]
            k_xx = _poly_kernel(x, x, g, coef0, degree)
            k_yy = _poly_kernel(y, y, g, coef0, degree)
            k_xy = _poly_kernel(x, y, g, coef0, degree)
        mmds[i] = mmd2_unbiased(k_xx.double(), k_xy.double(), k_yy.double())
    return float(mmds.mean()), float(mmds.std())
