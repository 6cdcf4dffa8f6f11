"""Built-in 2-D mixtures of Gaussians and the mode counting of the mode-collapse benchmark.

The protocol follows PacGAN (Lin et al., NeurIPS 2018, sec. 5.1 and its released configs), which in
turn follows VEEGAN (Srivastava et al., NeurIPS 2017, sec. 5):

- ring8: 8 Gaussians at angles 2*pi*k/8 (k = 0..7) on a circle of radius 1, std 0.01.
- grid25: 25 Gaussians with means on {-4, -2, 0, 2, 4}^2, std 0.05.
- Evaluation: 2,500 generated samples. A sample is high quality (HQ) when it lies within 3 std of its
  nearest mode; a mode is covered when it is the nearest mode of at least one HQ sample.

Both sets are drawn once, from a fixed seed, as 100,000 points with every component equally likely,
so any run sees exactly the same data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import DataError
from . import builtin
from .kinds import PointDataset

NUM_POINTS = 100_000  # size of the fixed training sample
DATA_SEED = 2018  # seed of the fixed training sample (PacGAN's year; any fixed value would do)
EVAL_SAMPLES = 2_500  # generated samples per evaluation (VEEGAN sec. 5; PacGAN sec. 5.1)
HQ_STDS = 3.0  # a sample within this many std of its nearest mode is high quality (same sources)

RING_RADIUS = 1.0  # PacGAN / VEEGAN ring: radius 1 ...
RING_STD = 0.01  # ... and std 0.01
GRID_SPACING = 2.0  # PacGAN / VEEGAN grid: means {-4, -2, 0, 2, 4}^2 ...
GRID_STD = 0.05  # ... and std 0.05


def ring_centers(n: int = 8, radius: float = RING_RADIUS) -> torch.Tensor:
    """(n, 2) means evenly spaced on a circle. Angles are 2*pi*k/n for k < n: `linspace(0, 2*pi, n)`
    would put the last mode on top of the first and leave only n - 1 distinct modes."""
    angles = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n
    return (radius * torch.stack([angles.cos(), angles.sin()], dim=1)).float()


def grid_centers(side: int = 5, spacing: float = GRID_SPACING) -> torch.Tensor:
    """(side*side, 2) means on a square lattice centred on the origin (5x5, spacing 2: {-4..4}^2)."""
    ticks = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    xx, yy = torch.meshgrid(ticks, ticks, indexing="ij")
    return torch.stack([xx.flatten(), yy.flatten()], dim=1).float()


def sample_mixture(centers: torch.Tensor, std: float, n: int, seed: int) -> torch.Tensor:
    """n points from the equal-weight isotropic Gaussian mixture with these means, drawn from `seed`."""
    rng = np.random.default_rng(seed)
    c = centers.double().numpy()
    which = rng.integers(0, len(c), n)
    pts = c[which] + std * rng.standard_normal((n, c.shape[1]))  # (n, 2)
    return torch.from_numpy(pts.astype(np.float32))


def _loader(name: str, centers: torch.Tensor, std: float):
    def load(resolution: int | None, channels: int | None) -> PointDataset:
        if resolution is not None or channels is not None:
            raise DataError(f"{name} is 2-D point data, not images; drop --resolution / --channels")
        return PointDataset(sample_mixture(centers, std, NUM_POINTS, DATA_SEED), centers, std, name)

    return load


builtin.register(
    "ring8",
    _loader("ring8", ring_centers(), RING_STD),
    "2-D points: 8 Gaussians on a circle of radius 1, std 0.01 (VEEGAN / PacGAN mode-collapse benchmark)",
)
builtin.register(
    "grid25",
    _loader("grid25", grid_centers(), GRID_STD),
    "2-D points: 5x5 Gaussians at {-4,-2,0,2,4}^2, std 0.05 (VEEGAN / PacGAN mode-collapse benchmark)",
)


@dataclass
class ModeStats:
    """How a set of generated points covers a mixture's modes."""

    modes: int  # modes that are the nearest mode of >= min_count high-quality samples
    num_modes: int  # modes in the mixture
    hq_fraction: float  # fraction of samples within HQ_STDS std of their nearest mode
    counts: list[int]  # HQ samples per mode
    kl: float  # KL(HQ-sample mode histogram || uniform), in nats; 0 = perfectly balanced

    def to_dict(self) -> dict:
        return {"modes": self.modes, "num_modes": self.num_modes, "hq": self.hq_fraction, "kl": self.kl, "counts": self.counts}


def mode_stats(
    samples: torch.Tensor, centers: torch.Tensor, std: float, *, hq_stds: float = HQ_STDS, min_count: int = 1
) -> ModeStats:
    """Mode coverage and sample quality of generated points, by the VEEGAN / PacGAN rules.

    Each sample is assigned to its nearest mode; it is high quality when that distance is at most
    `hq_stds * std`. A mode is covered when at least `min_count` HQ samples are assigned to it (the
    papers use 1). KL compares the histogram of HQ samples over modes with the uniform one (the
    Stacked-MNIST statistic of VEEGAN, applied to the 2-D modes).
    """
    x = samples.detach().float().cpu().reshape(samples.shape[0], -1)  # (N, D)
    c = centers.detach().float().cpu()
    if x.shape[0] == 0:
        return ModeStats(0, len(c), 0.0, [0] * len(c), float("inf"))
    dist = torch.cdist(x, c)  # (N, M)
    near_d, near = dist.min(dim=1)
    hq = near_d <= hq_stds * std
    counts = torch.bincount(near[hq], minlength=len(c))
    modes = int((counts >= min_count).sum())
    total = int(counts.sum())
    if total:
        p = counts.double() / total
        nz = p > 0
        kl = float((p[nz] * (p[nz] * len(c)).log()).sum())
    else:
        kl = float("inf")
    return ModeStats(modes, len(c), float(hq.float().mean()), counts.tolist(), kl)
