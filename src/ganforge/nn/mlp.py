"""Fully connected generator and discriminator shared by `gan`, `wgan-gp` and `sngan`.

They model flattened images (the MNIST experiments of Goodfellow et al. 2014) and low-dimensional
point data (the 2-D mixtures of VEEGAN / PacGAN and the toy experiments of WGAN-GP). The families
differ in how they configure them (activation, normalisation, spectral norm, packing), not in code.
`sample_shape` and `point_precision` are the two data-kind helpers those families share.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from ..families.base import DataSpec


class Maxout(nn.Module):
    """Linear layer followed by a max over `pieces` linear pieces per unit (Goodfellow et al. 2013),
    the activation of the original GAN's discriminator."""

    def __init__(self, cin: int, cout: int, pieces: int) -> None:
        super().__init__()
        self.cout, self.pieces = cout, pieces
        self.linear = nn.Linear(cin, cout * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear(x)  # (B, cout * pieces)
        return h.view(h.shape[0], self.cout, self.pieces).amax(dim=2)  # (B, cout)


def _maybe_sn(layer: nn.Module, spectral: bool) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018): W / sigma(W), sigma from one power iteration per step."""
    return nn.utils.parametrizations.spectral_norm(layer) if spectral else layer


class MixtureLatent(nn.Module):
    """Turns a standard normal z (B, nz) into a sample of a learnable K-component Gaussian mixture in
    nz - 1 dimensions (DeLiGAN, Gurumurthy et al. 2017; GM-GAN, Ben-Yosef & Weinshall 2018).

    The first coordinate picks the component (k = floor(K * Phi(z_0)), so every k is equally likely and
    a seed still fully determines the sample); the rest is the component's noise: mu_k + sigma_k * z_1:.
    A generator fed a mixture can put its mass on disconnected modes without the "bridges" that a
    continuous map of one Gaussian must leave between them."""

    def __init__(self, nz: int, components: int, std: float = 0.1, spread: float = 1.0) -> None:
        super().__init__()
        if nz < 2:
            raise ValueError("a mixture latent needs nz >= 2 (one coordinate picks the component)")
        self.components = components
        g = torch.Generator().manual_seed(0)  # the loop seeds the rest; means start spread over the space
        self.mu = nn.Parameter(spread * torch.randn(components, nz - 1, generator=g))
        self.log_std = nn.Parameter(torch.full((components,), math.log(std)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        u = 0.5 * (1.0 + torch.erf(z[:, 0].float() / math.sqrt(2.0)))  # Phi(z_0), uniform on (0, 1)
        k = (u * self.components).long().clamp_(0, self.components - 1)
        return self.mu[k] + self.log_std[k].exp().unsqueeze(1) * z[:, 1:]  # (B, nz - 1)


class MLPGenerator(nn.Module):
    """z (B, nz) [+ one-hot label] -> `layers` hidden layers [Linear, norm, ReLU] -> Linear -> out_shape.

    `out_act` is "tanh" for images (they live in [-1, 1]) and "none" for points (unbounded).
    `mixture` > 0 feeds the layers a learnable mixture of that many Gaussians (`MixtureLatent`)."""

    def __init__(
        self,
        nz: int,
        out_shape: tuple[int, ...],
        width: int,
        layers: int,
        *,
        norm: str = "none",
        out_act: str = "none",
        num_classes: int = 0,
        mixture: int = 0,
        mixture_std: float = 0.1,
    ) -> None:
        super().__init__()
        self.out_shape, self.num_classes, self.out_act = tuple(out_shape), num_classes, out_act
        self.mixture = MixtureLatent(nz, mixture, mixture_std) if mixture > 0 else None
        blocks: list[nn.Module] = []
        cin = nz - (1 if mixture > 0 else 0) + num_classes
        for _ in range(layers):
            blocks.append(nn.Linear(cin, width, bias=norm != "batch"))
            if norm == "batch":
                blocks.append(nn.BatchNorm1d(width))
            elif norm == "layer":
                blocks.append(nn.LayerNorm(width))
            blocks.append(nn.ReLU(inplace=True))
            cin = width
        blocks.append(nn.Linear(cin, math.prod(self.out_shape)))
        self.net = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        b = z.shape[0]
        if self.mixture is not None:
            z = self.mixture(z)
        if self.num_classes:
            if labels is None:
                raise ValueError("this generator is class-conditional: pass labels")
            # Conditional GAN input (Mirza & Osindero 2014): noise and one-hot label side by side.
            z = torch.cat([z, F.one_hot(labels, self.num_classes).to(z.dtype)], dim=1)
        out = self.net(z)
        if self.out_act == "tanh":
            out = torch.tanh(out)
        return out.view(b, *self.out_shape)  # (B, D) -> (B, *out_shape)


class MLPDiscriminator(nn.Module):
    """x (B, ...) flattened [+ one-hot label] -> packed -> hidden layers -> one logit per pack.

    `pack` > 1 is PacGAN (Lin et al. 2018): the discriminator judges `pack` samples at once, all real
    or all fake, concatenated into one input, which lets it see (and penalise) a lack of diversity.
    Returns (B // pack,) logits; B must be a multiple of `pack`.
    """

    def __init__(
        self,
        in_dim: int,
        width: int,
        layers: int,
        *,
        act: str = "lrelu",
        pieces: int = 5,
        dropout: float = 0.0,
        spectral: bool = False,
        pack: int = 1,
        num_classes: int = 0,
        projection: bool = False,
    ) -> None:
        super().__init__()
        if projection and pack > 1:
            raise ValueError("a projection discriminator judges one labelled sample at a time: use pack=1")
        self.pack, self.num_classes = pack, num_classes
        # Conditioning: the one-hot label concatenated to the input (Mirza & Osindero 2014), or a
        # projection term <embed(y), h> on the last hidden features (Miyato & Koyama 2018).
        self.embed = None
        if num_classes and projection:
            self.embed = _maybe_sn(nn.Embedding(num_classes, width), spectral)
            nn.init.normal_(self.embed.weight, 0.0, 0.02)
        blocks: list[nn.Module] = []
        cin = (in_dim + (num_classes if self.embed is None else 0)) * pack
        for _ in range(layers):
            if act == "maxout":
                blocks.append(Maxout(cin, width, pieces))
                if spectral:
                    blocks[-1].linear = _maybe_sn(blocks[-1].linear, True)
            else:
                blocks.append(_maybe_sn(nn.Linear(cin, width), spectral))
                blocks.append(nn.LeakyReLU(0.2, inplace=True) if act == "lrelu" else nn.ReLU(inplace=True))
            if dropout > 0:
                blocks.append(nn.Dropout(dropout))
            cin = width
        blocks.append(_maybe_sn(nn.Linear(cin, 1), spectral))
        self.net = nn.Sequential(*blocks)  # hidden layers, then the logit layer net[-1]

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = x.reshape(x.shape[0], -1)  # (B, C, H, W) or (B, D) -> (B, in_dim)
        if self.embed is not None:
            if labels is None:
                raise ValueError("this discriminator is class-conditional: pass labels")
            f = self.net[:-1](h)  # (B, width)
            return self.net[-1](f).flatten() + (self.embed(labels).to(f.dtype) * f).sum(1)
        if self.num_classes:
            if labels is None:
                raise ValueError("this discriminator is class-conditional: pass labels")
            h = torch.cat([h, F.one_hot(labels, self.num_classes).to(h.dtype)], dim=1)
        if self.pack > 1:
            if h.shape[0] % self.pack:
                raise ValueError(f"batch {h.shape[0]} is not a multiple of pack={self.pack}")
            h = h.reshape(h.shape[0] // self.pack, -1)  # (B, F) -> (B / pack, pack * F)
        return self.net(h).flatten()  # (B / pack,)


def sample_shape(spec: DataSpec) -> tuple[int, ...]:
    """Shape of one sample: (dim,) for points, (C, H, W) for images."""
    return (spec.dim,) if spec.kind == "points" else (spec.channels, spec.resolution, spec.resolution)


@contextlib.contextmanager
def point_precision(spec: DataSpec, device: torch.device) -> Iterator[None]:
    """Full precision for point data. The ring's modes have std 0.01 at radius 1, and bf16 keeps 8 bits
    of mantissa (steps of 0.004-0.008 near 1), which would blur them; tiny MLPs gain nothing from bf16."""
    if spec.kind == "points":
        with torch.autocast(device.type, enabled=False):
            yield
    else:
        yield
