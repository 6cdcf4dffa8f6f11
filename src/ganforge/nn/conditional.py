"""Class conditioning shared by the convolutional families (dcgan, sngan, wgan-gp).

Generator: a learned class embedding concatenated to z (as in cGAN, Mirza & Osindero 2014, with an
embedding instead of a one-hot vector). Discriminator: the projection term of Miyato & Koyama 2018,
logit(x, y) = psi(phi(x)) + <embed(y), phi(x)>, with phi(x) D's features sum-pooled over space.
"""

from __future__ import annotations

import torch
from torch import nn


def concat_label(z: torch.Tensor, embed: nn.Module | None, labels: torch.Tensor | None) -> torch.Tensor:
    """z, or z with the labels' embedding appended (B, nz + embed_dim) when the generator is conditional."""
    if embed is None:
        return z
    if labels is None:
        raise ValueError("this generator is class-conditional: pass labels")
    return torch.cat([z, embed(labels).to(z.dtype)], dim=1)


def add_projection(
    logit: torch.Tensor, features: torch.Tensor, embed: nn.Module | None, labels: torch.Tensor | None
) -> torch.Tensor:
    """logit (B,) plus the projection term from features (B, C, H, W), when D is conditional."""
    if embed is None:
        return logit
    if labels is None:
        raise ValueError("this discriminator is class-conditional: pass labels")
    pooled = features.sum(dim=(2, 3))  # (B, C)
    return logit + (embed(labels).to(pooled.dtype) * pooled).sum(1)
