"""SN-GAN (Miyato et al. 2018): spectral normalisation on every discriminator layer, hinge loss.

Images: the paper's "standard CNN" (its Table 3, for 32 px), generalised to any power-of-two size:
G: z -> linear to 4x4 x (ngf*8) -> [4x4 stride-2 transposed conv, BN, ReLU] x log2(res/4) -> 3x3 conv -> tanh.
D: [3x3 conv, LReLU 0.1, 4x4 stride-2 conv, LReLU 0.1] x log2(res/4) -> 3x3 conv -> linear, each layer
spectrally normalised. Widths: ngf = ndf = 64 in the paper; 32 below 64 px by default here, as in
dcgan, for CPU speed (`--set ngf=64` restores them). Optimiser: Adam(2e-4, 0.5, 0.999), one D step
per G step (setting C of the paper's Table 1). Conditional (`--cond`): class embedding concatenated
to z, projection discriminator (Miyato & Koyama 2018).
Point data: MLPs (LeakyReLU 0.2) with spectral norm on every layer of D.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..errors import ConfigError
from ..nn.conditional import add_projection, concat_label
from ..nn.mlp import point_precision
from .adversarial import AdversarialFamily, adversarial_step, mode_seeking_weight, standard
from .base import Batch, Capabilities, DataSpec, Networks, StepContext

SN_LOSSES = ("hinge", "nonsaturating")


def _sn(layer: nn.Module) -> nn.Module:
    """W / sigma(W), sigma estimated by one power iteration per forward pass (Miyato et al. 2018, Algorithm 1)."""
    return nn.utils.parametrizations.spectral_norm(layer)


@dataclass
class SNGANConfig:
    nz: int = 0  # latent size (0: 128 for images, as in the paper; 2 for points)
    ngf: int = 0  # image G width: channels of its last hidden layer (the 4x4 one has 8x); 0: 64 from 64 px, 32 below
    ndf: int = 0  # image D width: channels of its first layer (the last has 8x); 0: as ngf
    width: int = 128  # units per MLP layer (point data)
    layers: int = 3  # hidden MLP layers in G and D (point data)
    loss: str = "hinge"  # hinge (Lim & Ye 2017; the paper's best) | nonsaturating
    n_dis: int = 1  # D updates per G update
    lr: float = 2e-4  # Adam learning rate (setting C)
    beta1: float = 0.5  # Adam beta1 (setting C)
    beta2: float = 0.999  # Adam beta2 (setting C)
    embed_dim: int = 0  # class embedding size for conditional image G (0: nz // 2)
    mode_seeking: float = -1.0  # MSGAN's mode-seeking weight; -1: 1.0 with --cond, else 0


class SNGenerator(nn.Module):
    def __init__(self, nz: int, ngf: int, channels: int, resolution: int, num_classes: int = 0, embed_dim: int = 0):
        super().__init__()
        n_up = int(math.log2(resolution)) - 2
        widths = [ngf * 2 ** max(3 - i, 0) for i in range(n_up + 1)]  # e.g. 512, 256, 128, 64 for 32 px
        self.c0 = widths[0]
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes else None
        self.fc = nn.Linear(nz + (embed_dim if num_classes else 0), 4 * 4 * widths[0])
        layers: list[nn.Module] = [nn.BatchNorm2d(widths[0]), nn.ReLU(True)]
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout), nn.ReLU(True)]
        layers += [nn.Conv2d(widths[-1], channels, 3, 1, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        z = concat_label(z, self.embed, labels)
        h = self.fc(z).view(z.shape[0], self.c0, 4, 4)  # (B, 16*C) -> (B, C, 4, 4)
        return self.net(h)  # (B, channels, res, res)


class SNDiscriminator(nn.Module):
    def __init__(self, ndf: int, channels: int, resolution: int, num_classes: int = 0):
        super().__init__()
        n_down = int(math.log2(resolution)) - 2
        widths = [ndf * 2 ** min(i, 3) for i in range(n_down + 1)]  # e.g. 64, 128, 256, 512 for 32 px
        layers: list[nn.Module] = []
        cin = channels
        for i in range(n_down):
            layers += [
                _sn(nn.Conv2d(cin, widths[i], 3, 1, 1)), nn.LeakyReLU(0.1, True),
                _sn(nn.Conv2d(widths[i], widths[i], 4, 2, 1)), nn.LeakyReLU(0.1, True),
            ]
            cin = widths[i]
        layers += [_sn(nn.Conv2d(cin, widths[-1], 3, 1, 1)), nn.LeakyReLU(0.1, True)]
        self.features = nn.Sequential(*layers)  # (B, C, 4, 4)
        self.out = _sn(nn.Linear(widths[-1] * 16, 1))
        self.embed = _sn(nn.Embedding(num_classes, widths[-1])) if num_classes else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        logit = self.out(h.flatten(1)).flatten()  # (B, C, 4, 4) -> (B, 16*C) -> (B,)
        return add_projection(logit, h, self.embed, labels)


class SNGAN(AdversarialFamily):
    capabilities = Capabilities(generator_terms=True)  # its step is adversarial_step: --constraint / --topk apply
    name = "sngan"
    Config = SNGANConfig
    data_kinds = ("image", "points")

    def _resolved(self, cfg: SNGANConfig, spec: DataSpec) -> SNGANConfig:
        return replace(cfg, nz=cfg.nz or (2 if spec.kind == "points" else 128))

    def check(self, cfg: SNGANConfig, spec: DataSpec) -> None:
        super().check(cfg, spec)
        if cfg.loss not in SN_LOSSES:
            raise ConfigError(f"unknown loss '{cfg.loss}' for sngan: use one of {', '.join(SN_LOSSES)}")
        self.check_resolution(spec)

    def latent_shape(self, cfg: SNGANConfig, spec: DataSpec) -> tuple[int, ...]:
        return (self._resolved(cfg, spec).nz,)

    def build(self, cfg: SNGANConfig, spec: DataSpec) -> Networks:
        r = self._resolved(cfg, spec)
        if spec.kind == "points":
            return Networks(self.point_nets(r.nz, r.width, r.layers, spec, act="lrelu", spectral=True), cfg=r, spec=spec)
        embed = r.embed_dim or max(r.nz // 2, 1)
        auto = 64 if spec.resolution >= 64 else 32  # the paper's 64; 32 below 64 px for CPU speed, as dcgan
        ngf, ndf = r.ngf or auto, r.ndf or r.ngf or auto
        return Networks(
            {
                "G": SNGenerator(r.nz, ngf, spec.channels, spec.resolution, spec.num_classes, embed),
                "D": SNDiscriminator(ndf, spec.channels, spec.resolution, spec.num_classes),
            },
            cfg=r, spec=spec,
        )

    def train_step(self, nets: Networks, opts, batch: Batch, step: int, ctx: StepContext) -> dict[str, float]:
        cfg: SNGANConfig = nets.cfg
        real = batch["points"] if nets.spec.kind == "points" else batch["image"]
        labels = batch.get("label") if nets.spec.num_classes else None
        with point_precision(nets.spec, ctx.device):
            objective = standard(cfg.loss)
            objective.mode_seeking = mode_seeking_weight(cfg.mode_seeking, nets.spec)
            return adversarial_step(nets["G"], nets["D"], opts, ctx, [(real, labels)] * cfg.n_dis, cfg.nz, objective)
