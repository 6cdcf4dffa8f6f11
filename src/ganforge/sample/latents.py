"""Latents addressed by seed, like StyleGAN's `--seeds`: seed s always gives the same latent.

Each latent is drawn on the CPU from its own generator, so an image depends only on its seed, not on
the batch it was generated in or the device.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..spec import NoiseRequest, encode_text


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


# Offsets the seed of a label draw from the seed of the latent, so that z and the class are independent.
_LABEL_SEED_OFFSET = 0x1ABE1


def labels_by_frequency(seeds: Sequence[int], counts: Sequence[float], device="cpu") -> torch.Tensor:
    """One class per seed, drawn with the frequencies `counts` (the real data's class histogram) and
    fixed by the seed: how conditional models are evaluated. StyleGAN2-ADA's metrics draw the labels of
    real images; with seed % num_classes, a class-imbalanced set (emoji: 60 % people) would be compared
    with a generator forced to draw every class equally often."""
    p = torch.as_tensor(counts, dtype=torch.float64).clamp(min=0)
    if p.ndim != 1 or p.numel() == 0 or float(p.sum()) <= 0:
        raise ValueError("class counts must be a non-empty list with a positive sum")
    cdf = (p / p.sum()).cumsum(0)
    u = torch.stack(
        [torch.rand((), dtype=torch.float64, generator=torch.Generator().manual_seed(int(s) + _LABEL_SEED_OFFSET)) for s in seeds]
    ) if len(seeds) else torch.zeros(0, dtype=torch.float64)
    idx = torch.searchsorted(cdf, u, right=True).clamp(max=p.numel() - 1)
    return idx.to(device=device, dtype=torch.long)


def noise_request(
    seeds: Sequence[int],
    latent_shape: tuple[int, ...],
    num_classes: int = 0,
    label: int | None = None,
    *,
    truncation: float = 1.0,
    noise_mode: str = "const",
    label_counts: Sequence[float] | None = None,
    prompt: str | None = None,
    captions: Sequence[str] = (),
) -> NoiseRequest:
    """The request for images addressed by seed: seed s gets latent `latents_for_seeds([s])` and, for
    conditional models, class `label`, else a class drawn with frequencies `label_counts` (one count per
    class; see `labels_by_frequency`), else s % num_classes. Text-conditioned models: `prompt` for every
    seed, else caption s % len(captions) of the examples `captions`; no text when both are empty."""
    if num_classes > 0 and label is None and label_counts is not None:
        labels = labels_by_frequency(seeds, label_counts)
    else:
        labels = labels_for_seeds(seeds, num_classes, label)
    text = None
    if prompt is not None:
        text = encode_text([prompt] * len(seeds))
    elif captions:
        text = encode_text([captions[int(s) % len(captions)] for s in seeds])
    return NoiseRequest(
        z=latents_for_seeds(seeds, latent_shape),
        labels=labels,
        truncation=truncation,
        noise_mode=noise_mode,
        text=text,
    )
