"""Manifold metrics from k-nearest-neighbour balls in feature space.

- Improved precision and recall (Kynkäänniemi et al. 2019, eq. 1-2; k = 3 as StyleGAN2-ADA's `pr50k3`):
  a sample lies on a set's manifold when it falls in some ball B(φ, NND_k(φ)) around one of the set's
  samples (boundary included, as in the authors' code). Precision: the share of generated samples on
  the real manifold; recall: the share of real samples on the generated manifold.
- Density and coverage (Naeem et al. 2020, eq. 3-4; k = 5): density counts how many real balls contain
  each generated sample (divided by k); coverage is the share of real balls that contain at least one
  generated sample. Strict inequality, as in the authors' `prdc` code.

All four come out of a single pass over the generated-to-real distance matrix, in row blocks so that
memory stays at (block x N_real). The radii of the real set do not depend on the generator, so callers
may compute them once (`knn_radii`) and pass them in.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

_BLOCK = 2048  # rows of the distance matrix held at once


def _as_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float32)) if not isinstance(x, torch.Tensor) else x.float().cpu()


def knn_radii(features: np.ndarray | torch.Tensor, ks: Iterable[int] = (3,)) -> dict[int, torch.Tensor]:
    """Distance from each sample to its k-th nearest neighbour in the same set (itself excluded), for each k."""
    x = _as_tensor(features)
    ks = sorted(set(int(k) for k in ks))
    n = x.shape[0]
    if n <= ks[-1]:
        raise ValueError(f"{ks[-1]}-nearest-neighbour radii need more than {ks[-1]} samples, got {n}")
    out: dict[int, list[torch.Tensor]] = {k: [] for k in ks}
    for i in range(0, n, _BLOCK):
        d = torch.cdist(x[i : i + _BLOCK], x)  # (b, n); the zero self-distance is the smallest
        kth = d.topk(ks[-1] + 1, dim=1, largest=False).values  # (b, kmax + 1), ascending
        for k in ks:
            out[k].append(kth[:, k])
    return {k: torch.cat(v) for k, v in out.items()}


def prdc(
    real: np.ndarray | torch.Tensor,
    fake: np.ndarray | torch.Tensor,
    *,
    pr_k: int | None = 3,
    dc_k: int | None = 5,
    real_radii: dict[int, torch.Tensor] | None = None,
) -> dict[str, float]:
    """Precision/recall (with `pr_k`) and density/coverage (with `dc_k`); pass None to skip either pair.
    `real_radii` may hold precomputed `knn_radii(real, ...)` for those k."""
    r, f = _as_tensor(real), _as_tensor(fake)
    if r.ndim != 2 or f.ndim != 2 or r.shape[1] != f.shape[1]:
        raise ValueError(f"need (N, D) features of the same D, got {tuple(r.shape)} and {tuple(f.shape)}")
    ks_real = [k for k in (pr_k, dc_k) if k is not None]
    radii = dict(real_radii or {})
    missing = [k for k in ks_real if k not in radii]
    if missing:
        radii.update(knn_radii(r, missing))
    r_fake = knn_radii(f, [pr_k])[pr_k] if pr_k is not None else None  # generated balls, for recall

    n_real, n_fake = r.shape[0], f.shape[0]
    on_real = torch.zeros(n_fake, dtype=torch.bool)  # precision: fake sample inside some real ball
    real_on_fake = torch.zeros(n_real, dtype=torch.bool)  # recall: real sample inside some fake ball
    density_count = torch.zeros(n_fake, dtype=torch.float64)
    nearest_fake = torch.full((n_real,), float("inf"))  # coverage: distance from each real to its nearest fake
    for i in range(0, n_fake, _BLOCK):
        d = torch.cdist(f[i : i + _BLOCK], r)  # (b, n_real)
        if pr_k is not None:
            on_real[i : i + _BLOCK] = (d <= radii[pr_k][None, :]).any(1)
            real_on_fake |= (d <= r_fake[i : i + _BLOCK, None]).any(0)
        if dc_k is not None:
            density_count[i : i + _BLOCK] = (d < radii[dc_k][None, :]).sum(1).double()
            nearest_fake = torch.minimum(nearest_fake, d.min(0).values)
    out: dict[str, float] = {}
    if pr_k is not None:
        out["precision"] = float(on_real.double().mean())
        out["recall"] = float(real_on_fake.double().mean())
    if dc_k is not None:
        out["density"] = float(density_count.mean() / dc_k)
        out["coverage"] = float((nearest_fake < radii[dc_k]).double().mean())
    return out


def precision_recall(
    real: np.ndarray | torch.Tensor, fake: np.ndarray | torch.Tensor, k: int = 3
) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN balls."""
    out = prdc(real, fake, pr_k=k, dc_k=None)
    return out["precision"], out["recall"]


def density_coverage(
    real: np.ndarray | torch.Tensor, fake: np.ndarray | torch.Tensor, k: int = 5
) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020) with k-NN balls around the real samples."""
    out = prdc(real, fake, pr_k=None, dc_k=k)
    return out["density"], out["coverage"]
