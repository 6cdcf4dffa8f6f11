"""pix2pix (Isola et al. 2017): paired image-to-image translation with a conditional GAN.

G: a U-Net (sec. 3.2.1, appendix 6.1.1): `depth` stride-2 4x4 convolutions down to a 1x1 bottleneck
(depth = log2(resolution): 8 is the paper's unet_256, 7 unet_128), C64-C128-C256-C512-C512..., and
transposed convolutions back up, each decoder layer fed the mirrored encoder layer's output (skip
connections). Batch norm everywhere but the first encoder and the last decoder layer and the bottleneck;
LeakyReLU 0.2 down, ReLU up, tanh out; dropout 0.5 in the max-width decoder layers next to the
bottleneck (3 at 256 px, 2 at 128 px, none below 64 px: the authors' code), its only noise source.
D: a conditional 70x70 PatchGAN (sec. 3.2.2) that sees concat(source, image).
Objective (eq. 4): G* = arg min_G max_D L_cGAN(G, D) + 100 * L1(G); the vanilla (cross-entropy) or the
LSGAN loss; D's objective halved; Adam(2e-4, 0.5, 0.999); weights ~ N(0, 0.02) (sec. 3.3).

Inference uses batch norm's running statistics and no dropout (the authors test with the batch's
statistics and dropout on), so a translation depends on nothing but its input.

The `colorize` preset (`--set preset=colorize`) learns grayscale -> colour from any RGB image set: the
source is the luminance of the target, made on the fly from each batch (paired data: its targets;
plain image data: the images), and translation takes RGB or grayscale inputs and uses their luminance.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import losses
from ..errors import ConfigError
from ..nn.image2image import (
    GAN_LOSSES,
    PatchDiscriminator,
    eval_mode,
    gan_d_loss,
    gan_g_loss,
    init_normal,
    luminance,
    norm_layer,
    patch_layers,
)
from ..spec import ImageRequest, Request
from .adversarial import set_trainable
from .base import Batch, Capabilities, DataSpec, Family, Networks, StepContext

PRESETS = ("", "colorize")


@dataclass
class Pix2PixConfig:
    ngf: int = 64  # U-Net width: channels of the first encoder layer (widths double per layer up to 8x)
    ndf: int = 64  # PatchGAN width: channels of its first layer
    depth: int = 0  # U-Net stride-2 layers; 0: log2(resolution), a 1x1 bottleneck (8 = unet_256, 7 = unet_128)
    n_layers: int = 3  # PatchGAN stride-2 layers (3: 70x70 patches); fewer on inputs below 24 px
    norm: str = "batch"  # batch | instance | none, in G and D
    dropout: float = 0.5  # dropout in the decoder layers next to the bottleneck (G's noise, sec. 3.1)
    dropout_layers: int = -1  # how many decoder layers have dropout; -1: depth - 5 (3 at 256 px), the authors' code
    loss: str = "vanilla"  # vanilla (cross-entropy) | lsgan
    l1_weight: float = 100.0  # lambda of the L1 term (eq. 4)
    lr: float = 2e-4  # Adam learning rate of G and D
    beta1: float = 0.5  # Adam beta1
    beta2: float = 0.999  # Adam beta2
    crop: int = 0  # random-crop side of the paired data (the paper's jitter: 286 px stored, 256 crops); 0: none
    preset: str = ""  # "" | colorize: grayscale -> colour from any RGB image set (source = the target's luminance)


class UNet(nn.Module):
    """Encoder-decoder with skip connections between mirrored layers (pix2pix appendix 6.1.1)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        depth: int,
        ngf: int = 64,
        norm: str = "batch",
        dropout: float = 0.5,
        dropout_layers: int = -1,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError("a U-Net needs at least one down-sampling layer")
        widths = [ngf * min(2**i, 8) for i in range(depth)]  # encoder outputs: 64, 128, 256, 512, 512, ...
        n_drop = max(depth - 5, 0) if dropout_layers < 0 else dropout_layers
        # Decoder layers with dropout: the max-width ones just outside the innermost (i = depth-2, depth-3, ...).
        with_dropout = set(range(depth - 1 - n_drop, depth - 1)) if dropout > 0 else set()
        bias = norm != "batch"
        # Activations are not in-place: encoder outputs are also the skips.
        self.downs = nn.ModuleList()
        for i in range(depth):
            cin = in_channels if i == 0 else widths[i - 1]
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(cin, widths[i], 4, 2, 1, bias=bias))
            if 0 < i < depth - 1:  # no norm on the first layer nor on the 1x1 bottleneck
                layers.append(norm_layer(norm, widths[i]))
            self.downs.append(nn.Sequential(*layers))
        self.ups = nn.ModuleList()  # innermost first
        for i in reversed(range(depth)):
            cin = widths[i] if i == depth - 1 else 2 * widths[i]  # skip concatenation doubles the input
            if i == 0:
                self.ups.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(cin, out_channels, 4, 2, 1), nn.Tanh()))
                continue
            layers = [
                nn.ReLU(),
                nn.ConvTranspose2d(cin, widths[i - 1], 4, 2, 1, bias=bias),
                norm_layer(norm, widths[i - 1]),
            ]
            if i in with_dropout:
                layers.append(nn.Dropout(dropout))
            self.ups.append(nn.Sequential(*layers))
        self.depth = depth
        self.num_dropout = len(with_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = x
        for down in self.downs:
            h = down(h)
            skips.append(h)  # d_i: (B, w_i, H / 2^(i+1), W / 2^(i+1))
        h = self.ups[0](skips[-1])
        for k, i in enumerate(reversed(range(self.depth - 1)), start=1):
            h = self.ups[k](torch.cat([skips[i], h], 1))  # (B, 2 w_i, ...) -> (B, w_{i-1}, ...)
        return h


def unet_depth(cfg: Pix2PixConfig, spec: DataSpec) -> int:
    return cfg.depth or int(math.log2(spec.resolution))


class Pix2Pix(Family):
    name = "pix2pix"
    Config = Pix2PixConfig
    # "image" only for the colorize preset (plain images become (luminance, colour) pairs); see `check`.
    data_kinds = ("paired", "image")
    capabilities = Capabilities(inputs="image", directions=("AtoB",), fully_convolutional=True)
    ema: dict[str, str] = {}  # noqa: RUF012  (the paper keeps no average of G)
    adversarial = True  # --aug augments what D sees: concat(source, image), so both sides move together
    loop_defaults = {"data": "edges2shapes", "batch": 16, "xflip": True}  # noqa: RUF012

    def check(self, cfg: Pix2PixConfig, spec: DataSpec) -> None:
        if cfg.preset not in PRESETS:
            raise ConfigError(f"unknown preset '{cfg.preset}': use colorize, or leave it empty")
        if spec.kind == "image" and cfg.preset != "colorize":
            raise ConfigError(
                "pix2pix learns from paired data (a folder with sub-folders A/ and B/ matched by file name, or "
                "side-by-side A|B images, or --data edges2shapes); to learn colourisation from plain images use "
                "--set preset=colorize"
            )
        super().check(cfg, spec)
        if cfg.preset == "colorize" and spec.channels != 3:
            raise ConfigError("the colorize preset needs RGB images; drop --channels 1")
        if cfg.loss not in GAN_LOSSES:
            raise ConfigError(f"unknown loss '{cfg.loss}' for pix2pix: use vanilla or lsgan")
        r, depth = spec.resolution, unet_depth(cfg, spec)
        if r < 2 or r & (r - 1) and not cfg.depth:
            raise ConfigError(
                f"pix2pix's U-Net needs a power-of-two resolution, not {r}; use --resolution 32, 64, 128 or 256"
            )
        if r % 2**depth or depth < 1:
            raise ConfigError(f"a U-Net of depth {depth} needs images whose side is a multiple of {2**depth}, not {r}")
        try:
            norm_layer(cfg.norm, 1)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def data_options(self, cfg: Pix2PixConfig) -> dict[str, Any]:
        opts: dict[str, Any] = {"crop": cfg.crop} if cfg.crop else {}
        if cfg.preset == "colorize":
            opts["colorize"] = True  # a plain image folder is the data: the input is made from it
        return opts

    def in_channels(self, cfg: Pix2PixConfig, spec: DataSpec) -> int:
        return 1 if cfg.preset == "colorize" else spec.source_channels

    def build(self, cfg: Pix2PixConfig, spec: DataSpec) -> Networks:
        depth = unet_depth(cfg, spec)
        cin = self.in_channels(cfg, spec)
        nets = Networks(
            {
                "G": UNet(cin, spec.channels, depth, cfg.ngf, cfg.norm, cfg.dropout, cfg.dropout_layers),
                "D": PatchDiscriminator(
                    cin + spec.channels, cfg.ndf, patch_layers(spec.resolution, cfg.n_layers), cfg.norm
                ),
            },
            cfg=cfg, spec=spec,
        )
        nets.apply(init_normal)
        return nets

    def optimizers(self, nets: Networks, cfg: Pix2PixConfig) -> dict[str, torch.optim.Optimizer]:
        betas = (cfg.beta1, cfg.beta2)
        return {
            "G": torch.optim.Adam(nets["G"].parameters(), lr=cfg.lr, betas=betas),
            "D": torch.optim.Adam(nets["D"].parameters(), lr=cfg.lr, betas=betas),
        }

    def capabilities_for(self, nets: Networks) -> Capabilities:
        """Inputs of any size that is a multiple of 2**depth (the U-Net's stride)."""
        return dataclasses.replace(super().capabilities_for(nets), size_multiple=2 ** unet_depth(nets.cfg, nets.spec))

    @staticmethod
    def pair(cfg: Pix2PixConfig, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(source, target) of a batch: the data's pair, or for colorize (luminance, colour)."""
        target = batch["target"] if "target" in batch else batch["image"]
        if cfg.preset == "colorize":
            return luminance(target), target
        return batch["source"], target

    def train_step(self, nets: Networks, opts, batch: Batch, step: int, ctx: StepContext) -> dict[str, float]:
        cfg = nets.cfg
        G, D = nets["G"], nets["D"]
        source, real = self.pair(cfg, batch)
        fake = G(source)

        # Update D on (source, real) against (source, G(source)), the fake detached.
        set_trainable(D, True)
        d_real = D(ctx.augment(torch.cat([source, real], 1)))
        d_fake = D(ctx.augment(torch.cat([source, fake.detach()], 1)))
        ctx.observe_real(d_real)
        loss_d = gan_d_loss(cfg.loss, d_real, d_fake)
        opts["D"].zero_grad(set_to_none=True)
        ctx.backward(loss_d)
        grad_d = ctx.grad_norm(D, opts["D"])
        ctx.step(opts["D"])

        # Update G through the frozen D: fool it, and stay near the target in L1 (eq. 4).
        set_trainable(D, False)
        loss_gan = gan_g_loss(cfg.loss, D(ctx.augment(torch.cat([source, fake], 1))))
        loss_l1 = F.l1_loss(fake.float(), real.float())
        loss_g = loss_gan + cfg.l1_weight * loss_l1
        opts["G"].zero_grad(set_to_none=True)
        ctx.backward(loss_g)
        grad_g = ctx.grad_norm(G, opts["G"])
        ctx.step(opts["G"])
        set_trainable(D, True)

        report = "lsgan" if cfg.loss == "lsgan" else "nonsaturating"
        return {
            "loss_D": loss_d.item(),
            "loss_G": loss_g.item(),
            "loss_G_gan": loss_gan.item(),
            "loss_L1": loss_l1.item(),
            "D_real": losses.probabilities(report, d_real),
            "D_fake": losses.probabilities(report, d_fake),
            "grad_D": grad_d,
            "grad_G": grad_g,
        }

    def translate(self, nets: Networks, request: ImageRequest) -> torch.Tensor:
        x = request.images
        if nets.cfg.preset == "colorize":
            x = luminance(x)
        G = self.generator_net(nets)
        with eval_mode(G):
            return G(x)

    def preview_rows(self, nets: Networks, generate: Callable[[Request], torch.Tensor], batch: Batch) -> list[torch.Tensor]:
        source, target = self.pair(nets.cfg, batch)
        return [source, generate(ImageRequest(source)), target]
