"""Latents addressed by seed, like StyleGAN's `--seeds`: seed s always gives the same latent.

Each latent is drawn on the CPU from its own generator, so an image depends only on its seed, not on
the batch it was generated in or the device.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..spec import NoiseRequest


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


def noise_request(
    seeds: Sequence[int],
    latent_shape: tuple[int, ...],
    num_classes: int = 0,
    label: int | None = None,
    *,
    truncation: float = 1.0,
    noise_mode: str = "const",
) -> NoiseRequest:
    """The request for images addressed by seed: seed s gets latent `latents_for_seeds([s])` and, for
    conditional models, class `label` (or s % num_classes)."""
    return NoiseRequest(
        z=latents_for_seeds(seeds, latent_shape),
        labels=labels_for_seeds(seeds, num_classes, label),
        truncation=truncation,
        noise_mode=noise_mode,
    )
