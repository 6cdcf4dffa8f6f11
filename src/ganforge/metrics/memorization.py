"""Memorisation: does a generator hand back its training images?

Few-shot GANs copy their training set, and FID-like scores reward them for it (a copy of the training set
has the training set's statistics). This module asks the direct question, one generated sample at a time:

    d(g)      = |g - r*|, r* = argmin_r |g - r|           distance from a sample to its nearest real image
    nn(r)     = min_{r' != r} |r - r'|                     that real image's distance to its nearest other one
    ratio(g)  = d(g) / nn(r*)

The denominator makes the ratio scale-free: it compares the sample with how crowded the real data is where
the sample landed. A new image drawn from the same distribution as the real set lands about as far from its
nearest real image as the real images lie from each other, so its ratio is around 1 (the real set scored
against itself, `real_self_memorization`, is the measured ceiling); an exact copy has ratio 0, and a copy
with small changes a ratio well under 1. This is the authenticity test of Alaa et al. (ICML 2022, "How
Faithful is your Synthetic Data?", sec. 3: a sample is unauthentic when it is closer to its nearest real
image than that image is to any other), summarised over the samples rather than thresholded at 1.

Reported: the median ratio, its 10th percentile (a generator that copies only a few images shows there
first) and `copies`, the share of samples with ratio < COPY_RATIO (0.5; see its comment).

The same definition works in any vector space: "pixels" (images as float in [-1, 1], flattened, so only
near-identical images are close) and "features" (an extractor's feature vectors, where a copy that was
shifted or recoloured slightly is still close). Distances are Euclidean, computed in float64 in blocks
(`torch.cdist` on at most BLOCK_BYTES at a time), so 10k x 10k at any image size fits in memory; the
distance of each chosen nearest pair is then recomputed directly, so an exact copy scores exactly 0.

Real images that are exact duplicates of each other would give nn(r) = 0 (and infinite ratios): nn(r)
skips them, i.e. it is the nearest *non-zero* distance (for feature vectors, pass `groups`, the duplicate
groups of the images behind them, since identical images can give features that differ in the last bits).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..errors import DataError

# A sample at less than half its nearest real image's own nearest-neighbour distance sits deep inside the
# empty ball around that image, twice as close to it as any other real image is: a (near) copy. Genuinely
# new images land there rarely, and how rarely depends on the data, so compare with the real set's own share
# (`real_self_memorization`, half against half, seed 0): digits 0.0 % in pixels; emoji 8.2 % in pixels and
# 7.6 % in classifier features (its skin-tone and gender variants of one emoji are near-duplicates of each
# other), and 4.0 % / 6.0 % on its 500-image subset (benchmarks/small_data.py). A share of copies well above
# the real set's own is memorisation, not chance; a copy with small changes (noise of 0.01 on [-1, 1]) has
# ratio ~0.04, an exact copy 0.
COPY_RATIO = 0.5
PERCENTILE = 10  # the low tail reported next to the median
BLOCK_BYTES = 64 * 2**20  # float64 bytes of one block of rows, and of one block of the distance matrix
# Distances below this share of the largest vector norm count as zero (duplicates): float64 distances from
# the matrix-product form |a|^2 + |b|^2 - 2ab carry errors of ~1e-8 of the norms. In pixels at 256x256 it is
# 4e-4, well under the smallest distance between two different uint8 images (one level of one pixel, 0.0078).
ZERO_TOL = 1e-6

Array = np.ndarray | torch.Tensor


def vectors(x: Array) -> torch.Tensor:
    """Rows as a 2-D tensor, dtype and device kept (blocks move to the computing device as they are used):
    images (B, C, H, W) are flattened to (B, C*H*W) (the "pixels" space: uint8 0..255, or float in [-1, 1]);
    feature rows (N, D) pass as they are."""
    t = torch.as_tensor(x) if not isinstance(x, torch.Tensor) else x.detach()
    if t.ndim == 4:
        t = t.flatten(1)  # (B, C*H*W)
    if t.ndim != 2:
        raise DataError(f"expected images (B, C, H, W) or feature rows (N, D), got shape {tuple(t.shape)}")
    if t.dtype != torch.uint8 and not t.is_floating_point():
        raise DataError(f"expected uint8 images or float values, got {t.dtype}")
    return t


def _f64(rows: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Rows in float64 on `device`; uint8 pixels map to [-1, 1] (x / 127.5 - 1)."""
    if rows.dtype == torch.uint8:
        return rows.to(device).double().div_(127.5).sub_(1.0)
    return rows.to(device, torch.float64)


def _device(device: str | torch.device | None) -> torch.device:
    dev = torch.device(device or "cpu")
    return dev if dev.type == "cuda" else torch.device("cpu")  # MPS has no float64


def _block(dim: int, other: int = 1) -> int:
    """Rows per block so that a float64 block of rows, and a block of the distance matrix, stay within BLOCK_BYTES."""
    return max(1, min(BLOCK_BYTES // (8 * max(dim, 1)), BLOCK_BYTES // (8 * max(other, 1))))


def image_groups(images: Array) -> torch.Tensor:
    """Duplicate groups of images (or rows): entry i is the index of the first row with exactly the same values."""
    rows = vectors(images).cpu().contiguous().numpy()
    first: dict[bytes, int] = {}
    out = np.empty(rows.shape[0], dtype=np.int64)
    for i, row in enumerate(rows):
        out[i] = first.setdefault(hashlib.blake2b(row.tobytes(), digest_size=16).digest(), i)
    return torch.from_numpy(out)


def _zero_tol(rows: torch.Tensor, device: torch.device) -> float:
    top = 0.0
    for i in range(0, rows.shape[0], _block(rows.shape[1])):
        top = max(top, float(_f64(rows[i : i + _block(rows.shape[1])], device).norm(dim=1).max()))
    return ZERO_TOL * top


def nearest(
    samples: Array, reference: Array, *, device: str | torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each sample row, the distance to its nearest reference row (float64) and that row's index."""
    q_all, ref = vectors(samples), vectors(reference)
    if q_all.shape[1] != ref.shape[1]:
        raise DataError(
            f"samples have {q_all.shape[1]} values per row and the reference {ref.shape[1]}; they must match"
        )
    if ref.shape[0] < 1:
        raise DataError("the reference set is empty")
    dev = _device(device)
    d_all = torch.empty(q_all.shape[0], dtype=torch.float64)
    i_all = torch.empty(q_all.shape[0], dtype=torch.int64)
    rb = _block(ref.shape[1])
    qb = _block(q_all.shape[1], rb)
    for i in range(0, q_all.shape[0], qb):
        q = _f64(q_all[i : i + qb], dev)
        best = torch.full((q.shape[0],), float("inf"), dtype=torch.float64, device=dev)
        arg = torch.zeros(q.shape[0], dtype=torch.int64, device=dev)
        for j in range(0, ref.shape[0], rb):
            d = torch.cdist(q, _f64(ref[j : j + rb], dev), compute_mode="use_mm_for_euclid_dist")  # (b, c)
            m, a = d.min(1)
            better = m < best
            best = torch.where(better, m, best)
            arg = torch.where(better, a + j, arg)
        # The chosen pair's distance, computed directly: an exact copy gives exactly 0.
        d_all[i : i + qb] = (q - _f64(ref[arg.to(ref.device)], dev)).norm(dim=1).cpu()
        i_all[i : i + qb] = arg.cpu()
    return d_all, i_all


def reference_nn(
    reference: Array,
    *,
    groups: torch.Tensor | None = None,
    device: str | torch.device | None = None,
    check: Callable[[float], None] | None = None,
) -> torch.Tensor:
    """nn(r) for every reference row: the distance to its nearest other row, skipping itself (by index),
    rows of its duplicate group (`groups`, see `image_groups`) and rows at distance zero, so that duplicates
    get their nearest non-zero distance. float64, shape (N,). `check(seconds)` is called once with the
    estimated total time after the first block (it may raise to refuse a computation that would be too long).
    A one-line DataError when every row is a copy of every other (no non-zero distance at all)."""
    import time

    ref = vectors(reference)
    n = ref.shape[0]
    if n < 2:
        raise DataError(f"the real data has {n} image(s); nearest-neighbour distances need at least 2")
    if groups is not None and groups.shape != (n,):
        raise ValueError(f"groups must have shape ({n},), got {tuple(groups.shape)}")
    dev = _device(device)
    tol = _zero_tol(ref, dev)
    g_all = groups.to(dev) if groups is not None else None
    out = torch.empty(n, dtype=torch.float64)
    rb = _block(ref.shape[1])
    qb = _block(ref.shape[1], rb)
    t0 = time.perf_counter()
    for i in range(0, n, qb):
        q = _f64(ref[i : i + qb], dev)
        rows = torch.arange(i, i + q.shape[0], device=dev)
        best = torch.full((q.shape[0],), float("inf"), dtype=torch.float64, device=dev)
        arg = torch.zeros(q.shape[0], dtype=torch.int64, device=dev)
        for j in range(0, n, rb):
            d = torch.cdist(q, _f64(ref[j : j + rb], dev), compute_mode="use_mm_for_euclid_dist")  # (b, c)
            cols = torch.arange(j, j + d.shape[1], device=dev)
            skip = (rows[:, None] == cols[None, :]) | (d <= tol)
            if g_all is not None:
                skip |= g_all[rows][:, None] == g_all[cols][None, :]
            m, a = d.masked_fill(skip, float("inf")).min(1)
            better = m < best
            best = torch.where(better, m, best)
            arg = torch.where(better, a + j, arg)
        if not bool(torch.isfinite(best).all()):
            raise DataError(
                f"all {n} real images are the same image (no two differ), so nothing can be measured against "
                "their spacing; memorization needs real data with at least two different images"
            )
        out[i : i + qb] = (q - _f64(ref[arg.to(ref.device)], dev)).norm(dim=1).cpu()
        if i == 0 and check is not None and qb < n:
            check((time.perf_counter() - t0) * n / qb)
    return out


def memorization_ratios(
    samples: Array,
    reference: Array,
    *,
    reference_nn_dist: torch.Tensor | None = None,
    groups: torch.Tensor | None = None,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """ratio(g) = d(g) / nn(r*) for each sample (float64, (B,)). `reference_nn_dist`: precomputed
    `reference_nn(reference, groups=groups)`, which depends on the reference alone."""
    nn_dist = (
        reference_nn_dist if reference_nn_dist is not None else reference_nn(reference, groups=groups, device=device)
    )
    d, idx = nearest(samples, reference, device=device)
    return d / nn_dist[idx]


def summarize(ratios: Array, *, copy_ratio: float = COPY_RATIO) -> dict[str, float]:
    """median, p10 (the 10th percentile) and copies (the share of ratios below `copy_ratio`) of the ratios."""
    r = np.asarray(ratios.cpu() if isinstance(ratios, torch.Tensor) else ratios, dtype=np.float64).ravel()
    if r.size == 0:
        raise DataError("no samples to score")
    return {
        "median": float(np.median(r)),
        "p10": float(np.percentile(r, PERCENTILE)),
        "copies": float(np.mean(r < copy_ratio)),
    }


def memorization(
    samples: Array,
    reference: Array,
    *,
    reference_nn_dist: torch.Tensor | None = None,
    groups: torch.Tensor | None = None,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """How much `samples` copy `reference` (the training images or their features; rows, or images
    (B, C, H, W) as uint8 or float in [-1, 1] for the pixel space): {"median", "p10", "copies"} of the
    ratios (see the module docstring). ~1 for new images, near 0 for copies, above 1 for samples away from
    all real data (noise)."""
    ratios = memorization_ratios(samples, reference, reference_nn_dist=reference_nn_dist, groups=groups, device=device)
    return summarize(ratios)


def real_self_memorization(
    real: Array,
    *,
    seed: int = 0,
    groups: torch.Tensor | None = None,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """The real set scored against itself: a random half (fixed by `seed`) as the samples, the other half
    as the reference. What a generator that draws genuinely new images from the real distribution scores,
    i.e. the ceiling to compare a generator's numbers with. `real`: images (pixels) or feature rows;
    `groups`: duplicate groups of the images behind feature rows (images compute their own). A duplicate
    pair split between the halves counts as a copy, as it would for a generator."""
    rows = vectors(real)
    n = rows.shape[0]
    if n < 4:
        raise DataError(f"the real data has {n} image(s); scoring half against half needs at least 4")
    if groups is None and rows.dtype == torch.uint8:
        groups = image_groups(rows)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    held, ref = perm[: n // 2], perm[n // 2 :]
    ref_groups = groups[ref] if groups is not None else None
    out: dict[str, Any] = memorization(rows[held], rows[ref], groups=ref_groups, device=device)
    out.update(num_samples=int(held.numel()), num_reference=int(ref.numel()), seed=seed)
    return out
