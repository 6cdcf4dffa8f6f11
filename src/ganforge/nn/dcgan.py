"""DCGAN's networks (Radford, Metz & Chintala 2015), shared by the dcgan and wgan-gp families.

G: latent (nz) -> 4x4 transposed conv -> [stride-2 transposed conv, BN, ReLU] x log2(res/4) -> tanh.
D: [stride-2 conv, norm (not on the first layer), LeakyReLU 0.2] x log2(res/4) -> 4x4 conv -> logit, with an
optional projection term for class labels (Miyato & Koyama 2018). Weights ~ N(0, 0.02), norm scales ~ N(1, 0.02)
(paper, sec. 4): `init_weights`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .conditional import add_projection, concat_label


def init_weights(m: nn.Module) -> None:
    """DCGAN's initialisation: weights ~ N(0, 0.02), norm scales ~ N(1, 0.02), biases 0."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class Generator(nn.Module):
    def __init__(self, nz: int, ngf: int, channels: int, resolution: int, max_mult: int, num_classes: int = 0, embed_dim: int = 0):
        super().__init__()
        n_up = int(math.log2(resolution)) - 2  # stride-2 layers after the 4x4 start
        widths = [ngf * min(2 ** (n_up - 1 - i), max_mult) for i in range(n_up)]  # e.g. 512, 256, 128, 64
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes else None
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(nz + (embed_dim if num_classes else 0), widths[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(True),
        ]
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        z = concat_label(z, self.embed, labels)
        return self.net(z[:, :, None, None])  # (B, nz) -> (B, nz, 1, 1) -> (B, C, H, W)


class Discriminator(nn.Module):
    def __init__(self, ndf: int, channels: int, resolution: int, max_mult: int, norm: str, num_classes: int = 0):
        super().__init__()
        n_down = int(math.log2(resolution)) - 2
        widths = [ndf * min(2**i, max_mult) for i in range(n_down)]  # e.g. 64, 128, 256, 512
        layers: list[nn.Module] = [nn.Conv2d(channels, widths[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), norm_layer(norm, cout), nn.LeakyReLU(0.2, True)]
        self.features = nn.Sequential(*layers)  # (B, C, 4, 4)
        self.out = nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False)
        self.embed = None
        if num_classes:
            # Same scale as the other weights (N(0, 0.02)): with nn.Embedding's N(0, 1), the projection
            # term is ~50x the logit from the start, D judges only "does the image match its label",
            # and G learns one prototype per class (measured on digits: within-class diversity 12 %
            # of the data's at 400 steps, loss_D ~ 45).
            self.embed = nn.Embedding(num_classes, widths[-1])
            nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        logit = self.out(h).flatten()  # (B,)
        return add_projection(logit, h, self.embed, labels)


def norm_layer(kind: str, c: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(c)
    if kind == "layer":
        return nn.GroupNorm(1, c)
    return nn.Identity()


def default_widths(ngf: int, ndf: int, resolution: int) -> tuple[int, int]:
    """G and D widths with 0 meaning auto: the paper's 64 at 64 px and up; 32 below, which trains 2.5x faster
    on a CPU with comparable early sample quality at 32 px (measured on the emoji set). D defaults to G's."""
    auto = 64 if resolution >= 64 else 32
    return ngf or auto, ndf or ngf or auto
