"""Fréchet distance between Gaussians fitted to two feature sets (FID, Heusel et al. 2017, eq. 6).

    d² = ||mu1 - mu2||² + Tr(S1 + S2 - 2 (S1 S2)^(1/2))

The usual implementation takes `scipy.linalg.sqrtm(S1 @ S2)` of a non-symmetric product and then drops
whatever imaginary part rounding left, silently. Here the trace of the square root is computed from a
symmetric matrix instead: with S1 = L Lᵀ, the eigenvalues of S1 S2 equal those of the symmetric
positive semi-definite Lᵀ S2 L, so Tr (S1 S2)^(1/2) = Σ sqrt(λᵢ(Lᵀ S2 L)), all real. Eigenvalues below
zero can only be rounding; tiny ones are clipped, large ones mean the inputs are not covariances, and
that raises. It is also several times faster than sqrtm or a general eigen-solver on 2048x2048.
"""

from __future__ import annotations

import numpy as np
import torch

# A negative eigenvalue larger than this fraction of the largest one is not rounding.
_NEG_TOL = 1e-6


def feature_statistics(features: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of (N, D) features, in float64 (as numpy.cov)."""
    x = torch.as_tensor(np.asarray(features) if not isinstance(features, torch.Tensor) else features)
    x = x.detach().cpu().double()  # (N, D)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors of shape (N, D), got {tuple(x.shape)}")
    mu = x.mean(0)
    xc = x - mu
    sigma = xc.T @ xc / (x.shape[0] - 1)
    return mu.numpy(), sigma.numpy()


def _cholesky(sigma: torch.Tensor) -> torch.Tensor | None:
    L, info = torch.linalg.cholesky_ex(sigma)
    return L if int(info) == 0 else None


def _check_eigenvalues(lam: torch.Tensor) -> torch.Tensor:
    """Clip rounding-level negative eigenvalues to 0; raise on genuinely negative ones (the inputs were not
    covariance matrices) rather than silently dropping the imaginary parts they would cause in sqrtm."""
    if lam.numel() == 0:
        return lam
    top, low = float(lam.abs().max()), float(lam.min())
    if low < -_NEG_TOL * max(top, 1e-300) and low < -1e-10:
        raise ValueError(
            f"Fréchet distance: S1 S2 has a negative eigenvalue {low:.3g} (largest {top:.3g}); "
            "the statistics are not valid covariance matrices (corrupt cache file?)"
        )
    return lam.clamp_min(0)


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr (S1 S2)^(1/2) for covariance matrices S1, S2, through a symmetric eigenproblem (see module doc).

    Factorises whichever of S1, S2 is positive definite (Cholesky, cheap); when both are singular (fewer
    samples than dimensions), the symmetric eigen-factor of S1 is used instead."""
    s1 = torch.from_numpy(np.ascontiguousarray(sigma1, dtype=np.float64))
    s2 = torch.from_numpy(np.ascontiguousarray(sigma2, dtype=np.float64))
    L = _cholesky(s1)
    if L is None:
        s1, s2 = s2, s1  # eig(S1 S2) = eig(S2 S1)
        L = _cholesky(s1)
    if L is None:
        w, v = torch.linalg.eigh(s1)
        L = v * w.clamp_min(0).sqrt()  # (D, D): L Lᵀ = S1
    m = L.T @ s2 @ L
    lam = _check_eigenvalues(torch.linalg.eigvalsh((m + m.T) / 2))
    return float(lam.sqrt().sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """FID / FD between N(mu1, sigma1) and N(mu2, sigma2) (Heusel et al. 2017, eq. 6)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"mismatched statistics: {mu1.shape}, {sigma1.shape} vs {mu2.shape}, {sigma2.shape}")
    diff = mu1 - mu2
    d2 = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2))
    # Rounding can leave -1e-12 for identical inputs; a distance is never negative.
    return max(d2, 0.0)


def frechet_distance_to_features(mu1: np.ndarray, sigma1: np.ndarray, features2: np.ndarray | torch.Tensor) -> float:
    """The Fréchet distance between N(mu1, sigma1) and the Gaussian fitted to `features2` (N, D), exact and
    cheap when N <= D: with S2 = BᵀB for the centred, scaled features B (N, D), the non-zero eigenvalues of
    S1 S2 are those of the small symmetric B S1 Bᵀ (N, N). Otherwise the same as `frechet_distance`."""
    x = (
        torch.as_tensor(np.asarray(features2) if not isinstance(features2, torch.Tensor) else features2)
        .detach()
        .cpu()
        .double()
    )
    n, d = x.shape
    mu2, sigma2 = feature_statistics(x)
    if n > d:
        return frechet_distance(mu1, sigma1, mu2, sigma2)
    b = (x - x.mean(0)) / (n - 1) ** 0.5  # (N, D), Bᵀ B = S2
    s1 = torch.from_numpy(np.ascontiguousarray(sigma1, dtype=np.float64))
    m = b @ s1 @ b.T  # (N, N)
    lam = _check_eigenvalues(torch.linalg.eigvalsh((m + m.T) / 2))
    diff = np.asarray(mu1, np.float64) - mu2
    d2 = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * float(lam.sqrt().sum()))
    return max(d2, 0.0)


class RunningStatistics:
    """Mean and covariance of feature vectors seen batch by batch, in float64: what the Fréchet distance
    needs, in O(D²) memory whatever the number of images (50k Inception features would be 400 MB; the
    statistics are 32 MB). Each batch is centred on its own mean and merged with the pairwise update of
    Chan, Golub & LeVeque (1979), so no large sum of squares is ever subtracted from another: the result
    equals `feature_statistics` of all the rows to rounding (about 1e-15 relative)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: torch.Tensor | None = None  # (D,) float64
        self.m2: torch.Tensor | None = None  # (D, D) float64: sum of outer products of centred rows

    def add(self, features: np.ndarray | torch.Tensor) -> None:
        """Add rows (N, D)."""
        x = torch.as_tensor(np.asarray(features) if not isinstance(features, torch.Tensor) else features)
        x = x.detach().cpu().double()
        if x.ndim != 2:
            raise ValueError(f"need feature vectors of shape (N, D), got {tuple(x.shape)}")
        if x.shape[0] == 0:
            return
        mean = x.mean(0)
        xc = x - mean
        self.merge(x.shape[0], mean, xc.T @ xc)

    def merge(self, n: int, mean: torch.Tensor, m2: torch.Tensor) -> None:
        """Add the statistics of n other rows: their mean (D,) and sum of centred outer products (D, D)."""
        if n <= 0:
            return
        mean, m2 = mean.detach().cpu().double(), m2.detach().cpu().double()
        if self.mean is None or self.m2 is None:
            self.n, self.mean, self.m2 = int(n), mean.clone(), m2.clone()
            return
        if mean.shape != self.mean.shape:
            raise ValueError(f"feature sizes differ: {tuple(self.mean.shape)} and {tuple(mean.shape)}")
        total = self.n + int(n)
        delta = mean - self.mean
        self.m2 += m2 + torch.outer(delta, delta) * (self.n * int(n) / total)
        self.mean += delta * (int(n) / total)
        self.n = total

    def statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean (D,) and unbiased covariance (D, D), in float64 (as `feature_statistics`)."""
        if self.mean is None or self.m2 is None or self.n < 2:
            raise ValueError(f"need at least 2 feature vectors, got {self.n}")
        return self.mean.numpy().copy(), (self.m2 / (self.n - 1)).numpy()
