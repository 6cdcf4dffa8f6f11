"""Layers and losses that the image-to-image families (pix2pix, CycleGAN) share: the PatchGAN
discriminator, their weight initialisation, their norm layers and their GAN objective.

PatchGAN (Isola et al. 2017, sec. 3.2.2 and appendix 6.1.2): a fully convolutional D whose every output
judges one N x N patch of its input; with 3 strided layers each output sees 70 x 70 pixels.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from .. import losses

GAN_LOSSES = ("vanilla", "nonsaturating", "lsgan")  # "nonsaturating" is the toolkit's name for "vanilla"


def norm_layer(kind: str, channels: int) -> nn.Module:
    """batch (pix2pix), instance (CycleGAN: no affine parameters, no running statistics, as the
    authors' code) or none."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm '{kind}': use batch, instance or none")


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """Weights ~ N(0, 0.02), biases 0, batch-norm scales ~ N(1, 0.02) (pix2pix sec. 3.3; CycleGAN's code).
    Use as `nets.apply(init_normal)`."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, std)
        nn.init.zeros_(module.bias)


def patch_layers(resolution: int, n_layers: int) -> int:
    """The number of strided layers a PatchGAN can have on `resolution`-pixel inputs: at most `n_layers`,
    fewer when the input is too small for the two final stride-1 4x4 convolutions (which need 3 pixels:
    a 70x70 PatchGAN needs 24 px inputs; at 16 px it keeps 2 strided layers, a 34x34 receptive field)."""
    n = n_layers
    while n > 1 and resolution / 2**n < 3:
        n -= 1
    return n


class PatchDiscriminator(nn.Module):
    """C64-C128-C256-C512 (4x4 convolutions, LeakyReLU 0.2, no norm on the first), then a 1-channel
    convolution: one logit per patch, (B, 1, h, w)."""

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch") -> None:
        super().__init__()
        bias = norm != "batch"  # batch norm's shift makes a conv bias redundant
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, 2, 1, bias=bias),
                norm_layer(norm, ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        prev, mult = mult, min(2**n_layers, 8)
        layers += [
            nn.Conv2d(ndf * prev, ndf * mult, 4, 1, 1, bias=bias),
            norm_layer(norm, ndf * mult),
            nn.LeakyReLU(0.2, True),
        ]
        layers += [nn.Conv2d(ndf * mult, 1, 4, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, 1, h, w) patch logits


def gan_d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """D's loss as the pix2pix/CycleGAN code computes it: (loss(real, 1) + loss(fake, 0)) / 2, the
    objective halved "to slow down the rate at which D learns relative to G" (pix2pix sec. 3.3), with
    binary cross-entropy ("vanilla") or the squared error of LSGAN."""
    if kind == "lsgan":
        return losses.d_loss("lsgan", real, fake)  # already 0.5 * (E(D(x)-1)^2 + E D(G(z))^2)
    return 0.5 * losses.d_loss("nonsaturating", real, fake)


def gan_g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """G's adversarial loss: loss(D(G(x)), 1), cross-entropy or squared error (not halved)."""
    if kind == "lsgan":
        return 2.0 * losses.g_loss("lsgan", fake)  # E (D(G(x)) - 1)^2
    return losses.g_loss("nonsaturating", fake)


@contextlib.contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Modules in eval mode inside (batch norm from running statistics, no dropout), their mode restored
    after: translation never changes training state, whichever mode the loop left the networks in."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)


def luminance(x: torch.Tensor) -> torch.Tensor:
    """ITU-R BT.601 luma of RGB images in [-1, 1], (B, 3, H, W) -> (B, 1, H, W) in [-1, 1]; 1-channel
    images are returned as they are."""
    if x.shape[1] == 1:
        return x
    w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)
