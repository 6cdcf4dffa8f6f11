"""WGAN-GP (Gulrajani et al. 2017): a Wasserstein critic kept 1-Lipschitz by a gradient penalty.

Algorithm 1 of the paper, with its defaults: lambda = 10, n_critic = 5, Adam(1e-4, beta1 = 0, beta2 = 0.9).
Each critic iteration sees its own real samples: the loop's batch of `--batch` real samples is split
into `n_critic` minibatches, one per critic update (so `--batch 320` gives the paper's m = 64), and
the generator update uses a minibatch of the same size. A step therefore consumes exactly `--batch`
real samples, which keeps kimg honest.

Images: the DCGAN generator and a DCGAN critic without batch norm (the penalty is per sample, so the
critic must not couple samples; layer norm instead, as the paper recommends in sec. 4). Conditional
(`--cond`): class embedding in G, projection critic (Miyato & Koyama 2018), as in dcgan.
Point data: ReLU MLPs as in the paper's toy experiments (its `gan_toy.py`: 3 layers, z of 2); the
toy code's 512 units are scaled to 128 by default so that CPU runs stay short.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from .. import losses
from ..errors import ConfigError
from ..nn.mlp import MLPDiscriminator, MLPGenerator, point_precision, sample_shape
from .base import Batch, DataSpec, Family, StepContext
from .dcgan import DCGAN
from .dcgan import Discriminator as ConvCritic
from .dcgan import Generator as ConvGenerator


@dataclass
class WGANGPConfig:
    nz: int = 0  # latent size (0: 100 for images, 2 for points)
    ngf: int = 0  # image generator width (channels of its last hidden layer); 0: as dcgan (64 from 64 px, 32 below)
    ndf: int = 0  # image critic width (channels of its first layer); 0: as ngf
    max_mult: int = 8  # image widths are capped at ngf*max_mult / ndf*max_mult
    width: int = 128  # units per MLP layer (point data)
    layers: int = 3  # hidden MLP layers in G and in the critic (point data)
    gp_weight: float = 10.0  # lambda, Gulrajani et al. 2017, Algorithm 1
    n_critic: int = 5  # critic updates per generator update (Algorithm 1)
    lr: float = 1e-4  # Adam learning rate alpha (Algorithm 1)
    beta1: float = 0.0  # Adam beta1 (Algorithm 1)
    beta2: float = 0.9  # Adam beta2 (Algorithm 1)
    embed_dim: int = 0  # class embedding size for conditional image G (0: nz // 2)


class WGANGP(Family):
    name = "wgan-gp"
    Config = WGANGPConfig
    data_kinds = ("image", "points")

    def _resolved(self, cfg: WGANGPConfig, spec: DataSpec) -> WGANGPConfig:
        return replace(cfg, nz=cfg.nz or (2 if spec.kind == "points" else 100))

    def check(self, cfg: WGANGPConfig, spec: DataSpec) -> None:
        super().check(cfg, spec)
        if cfg.n_critic < 1:
            raise ConfigError(f"n_critic must be 1 or more, not {cfg.n_critic}")
        r = spec.resolution
        if spec.kind == "image" and (r < 8 or r > 1024 or r & (r - 1)):
            raise ConfigError(f"wgan-gp needs a power-of-two resolution from 8 to 1024, not {r}; use --resolution 32 or 64")

    def latent_shape(self, cfg: WGANGPConfig, spec: DataSpec) -> tuple[int, ...]:
        return (self._resolved(cfg, spec).nz,)

    def build(self, cfg: WGANGPConfig, spec: DataSpec) -> nn.ModuleDict:
        r = self._resolved(cfg, spec)
        self.cfg, self.spec = r, spec
        if spec.kind == "points":
            shape = sample_shape(spec)
            return nn.ModuleDict(
                {
                    "G": MLPGenerator(r.nz, shape, r.width, r.layers),
                    "D": MLPDiscriminator(math.prod(shape), r.width, r.layers, act="relu"),
                }
            )
        embed = r.embed_dim or max(r.nz // 2, 1)
        ngf, ndf = DCGAN.widths(r, spec)  # type: ignore[arg-type]  # same fields as DCGANConfig
        nets = nn.ModuleDict(
            {
                "G": ConvGenerator(r.nz, ngf, spec.channels, spec.resolution, r.max_mult, spec.num_classes, embed),
                "D": ConvCritic(ndf, spec.channels, spec.resolution, r.max_mult, "layer", spec.num_classes),
            }
        )
        nets.apply(_dcgan_init)
        return nets

    def optimizers(self, nets: nn.ModuleDict, cfg: WGANGPConfig) -> dict[str, torch.optim.Optimizer]:
        betas = (cfg.beta1, cfg.beta2)
        return {
            "G": torch.optim.Adam(nets["G"].parameters(), lr=cfg.lr, betas=betas),
            "D": torch.optim.Adam(nets["D"].parameters(), lr=cfg.lr, betas=betas),
        }

    def train_step(self, nets: nn.ModuleDict, opts, batch: Batch, step: int, ctx: StepContext) -> dict[str, float]:
        with point_precision(self.spec, ctx.device):
            return self._step(nets, opts, batch, ctx)

    def _step(self, nets: nn.ModuleDict, opts, batch: Batch, ctx: StepContext) -> dict[str, float]:
        cfg: WGANGPConfig = self.cfg
        G, D = nets["G"], nets["D"]
        real_all = batch["points"] if self.spec.kind == "points" else batch["image"]
        labels_all = batch.get("label") if self.spec.num_classes else None
        if real_all.shape[0] < cfg.n_critic:
            raise ConfigError(f"--batch {real_all.shape[0]} is smaller than n_critic={cfg.n_critic}; use a larger batch")
        # One minibatch of real samples per critic iteration (Algorithm 1, line 3).
        reals = real_all.chunk(cfg.n_critic)
        labels = labels_all.chunk(cfg.n_critic) if labels_all is not None else [None] * len(reals)
        logs: dict[str, float] = {}

        # Critic updates: maximise E[D(x)] - E[D(G(z))] - lambda * GP (Algorithm 1, lines 2-9).
        D.requires_grad_(True)
        for real, lab in zip(reals, labels):
            z = torch.randn(real.shape[0], cfg.nz, device=real.device)
            with torch.no_grad():
                fake = G(z, lab)
            d_real, d_fake = D(real, lab), D(fake, lab)
            with ctx.full_precision():
                gp = losses.gradient_penalty(D, real, fake, lab)
            loss_d = losses.d_loss("wgan-gp", d_real, d_fake) + cfg.gp_weight * gp
            opts["D"].zero_grad(set_to_none=True)
            ctx.backward(loss_d)
            logs["grad_D"] = losses.grad_norm(D)
            ctx.step(opts["D"])

        # Generator update: minimise -E[D(G(z))] (Algorithm 1, lines 10-11).
        D.requires_grad_(False)
        b = reals[0].shape[0]
        lab = labels[0]
        z = torch.randn(b, cfg.nz, device=real_all.device)
        loss_g = losses.g_loss("wgan-gp", D(G(z, lab), lab))
        opts["G"].zero_grad(set_to_none=True)
        ctx.backward(loss_g)
        logs["grad_G"] = losses.grad_norm(G)
        ctx.step(opts["G"])
        D.requires_grad_(True)

        # The negated critic loss (without the penalty) estimates the Wasserstein-1 distance.
        w = (d_real.detach().float().mean() - d_fake.detach().float().mean()).item()
        logs.update(
            loss_D=loss_d.item(), loss_G=loss_g.item(), gp=gp.item(), wdist=w,
            score_real=d_real.detach().float().mean().item(), score_fake=d_fake.detach().float().mean().item(),
        )
        return logs

    def sample(self, nets: nn.ModuleDict, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        with point_precision(self.spec, z.device):
            return self.generator_net(nets)(z, labels)


def _dcgan_init(m: nn.Module) -> None:
    """DCGAN's initialisation (Radford et al. 2015, sec. 4): weights ~ N(0, 0.02), norm scales ~ N(1, 0.02)."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)
