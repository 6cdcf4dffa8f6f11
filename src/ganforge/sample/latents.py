"""Latents addressed by seed, like StyleGAN's `--seeds`: seed s always gives the same latent.

Each latent is drawn on the CPU from its own generator, so an image depends only on its seed, not on
the batch it was generated in or the device.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def latents_for_seeds(seeds: Sequence[int], shape: tuple[int, ...], device: torch.device | str = "cpu") -> torch.Tensor:
    zs = [torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    return torch.stack(zs).to(device)  # (B, *shape)


def labels_for_seeds(seeds: Sequence[int], num_classes: int, label: int | None = None, device="cpu") -> torch.Tensor | None:
    """Class labels for conditional models: `label` for every seed, or seed % num_classes."""
    if num_classes <= 0:
        return None
    if label is not None:
        return torch.full((len(seeds),), int(label), dtype=torch.long, device=device)
    return torch.tensor([int(s) % num_classes for s in seeds], dtype=torch.long, device=device)
