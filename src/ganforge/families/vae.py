"""A convolutional variational autoencoder (Kingma & Welling 2014), with beta (Higgins et al. 2017).

It shares the loop, data pipeline and run folder with the GANs, so `generate`, `interpolate` and the
evaluation verbs work on it unchanged: `sample` decodes latents from the prior N(0, I). It also
encodes images (`encode`, `reconstruct`), which is what lets `ganforge interpolate --images a b` walk
between two real images through the latent space.

Networks: "E" (encoder) [4x4 stride-2 conv, LeakyReLU 0.2] x log2(res/4) -> linear -> (mu, log var);
"G" (decoder) linear -> 4x4 -> [4x4 stride-2 transposed conv, ReLU] x log2(res/4) -> 3x3 conv -> logits.
No batch norm: encoder and decoder then treat every image on its own, so reconstructions and samples
do not depend on the batch. The decoder's output is a per-pixel Bernoulli mean sigmoid(logit), i.e.
an image tanh(logit / 2) in [-1, 1]. Conditional (`--cond`, a CVAE, Sohn et al. 2015): the one-hot
label is appended to the encoder's features and to the decoder's input.
There is no EMA copy: a VAE is trained by plain maximum likelihood, not a game whose iterates
oscillate, and an averaged decoder would no longer match the encoder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import Batch, Capabilities, DataSpec, Family, Networks, StepContext

RECON_LOSSES = ("bernoulli", "gaussian")


@dataclass
class VAEConfig:
    nz: int = 32  # latent size
    nf: int = 32  # encoder width (channels of its first layer; doubled per halving, capped at nf*8)
    beta: float = 1.0  # weight of the KL term (1: the ELBO; > 1: beta-VAE, Higgins et al. 2017)
    recon: str = "bernoulli"  # pixel likelihood: bernoulli (cross-entropy) | gaussian (squared error)
    sigma: float = 0.1  # std of the gaussian likelihood, in [0, 1] pixel units (recon=gaussian)
    lr: float = 1e-3  # Adam learning rate
    beta1: float = 0.9  # Adam beta1
    beta2: float = 0.999  # Adam beta2


def _widths(nf: int, resolution: int) -> list[int]:
    n = int(math.log2(resolution)) - 2  # stride-2 stages between the image and 4x4
    return [nf * min(2**i, 8) for i in range(n)]  # e.g. 32, 64, 128 for 32 px


class Encoder(nn.Module):
    def __init__(self, nz: int, nf: int, channels: int, resolution: int, num_classes: int = 0):
        super().__init__()
        widths = _widths(nf, resolution)
        layers: list[nn.Module] = []
        cin = channels
        for w in widths:
            layers += [nn.Conv2d(cin, w, 4, 2, 1), nn.LeakyReLU(0.2, True)]
            cin = w
        self.features = nn.Sequential(*layers)  # (B, C, 4, 4)
        self.num_classes = num_classes
        self.head = nn.Linear(cin * 16 + num_classes, 2 * nz)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x).flatten(1)  # (B, C, 4, 4) -> (B, 16*C)
        if self.num_classes:
            if labels is None:
                raise ValueError("this encoder is class-conditional: pass labels")
            h = torch.cat([h, F.one_hot(labels, self.num_classes).to(h.dtype)], dim=1)
        mu, logvar = self.head(h).chunk(2, dim=1)  # (B, 2*nz) -> 2 x (B, nz)
        return mu, logvar


class Decoder(nn.Module):
    def __init__(self, nz: int, nf: int, channels: int, resolution: int, num_classes: int = 0):
        super().__init__()
        widths = _widths(nf, resolution)[::-1]  # e.g. 128, 64, 32
        self.c0, self.num_classes = widths[0], num_classes
        self.fc = nn.Linear(nz + num_classes, widths[0] * 16)
        layers: list[nn.Module] = [nn.ReLU(True)]
        for cin, cout in zip(widths, widths[1:] + [widths[-1]]):
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.ReLU(True)]
        layers += [nn.Conv2d(widths[-1], channels, 3, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of the per-pixel Bernoulli means, (B, C, H, W)."""
        if self.num_classes:
            if labels is None:
                raise ValueError("this decoder is class-conditional: pass labels")
            z = torch.cat([z, F.one_hot(labels, self.num_classes).to(z.dtype)], dim=1)
        h = self.fc(z).view(z.shape[0], self.c0, 4, 4)  # (B, 16*C) -> (B, C, 4, 4)
        return self.net(h)


def kl_to_prior(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) per sample, summed over latent dimensions
    (Kingma & Welling 2014, appendix B: -1/2 sum(1 + log sigma^2 - mu^2 - sigma^2))."""
    return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(dim=1)


def reconstruction_loss(kind: str, logits: torch.Tensor, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """-log p(x | z) per sample, up to a constant; x in [-1, 1], mapped to [0, 1] pixel intensities."""
    target = (x.float() + 1.0) * 0.5
    if kind == "bernoulli":
        nll = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none")
    else:
        nll = (torch.sigmoid(logits.float()) - target).square() / (2 * sigma**2)
    return nll.flatten(1).sum(dim=1)


class VAE(Family):
    accumulates = True
    name = "vae"
    Config = VAEConfig
    data_kinds = ("image",)
    capabilities = Capabilities(encode=True)
    generator_nets = ("G", "E")  # the encoder too: walks between real images need it
    ema: ClassVar[dict[str, str]] = {}

    def check(self, cfg: VAEConfig, spec: DataSpec) -> None:
        super().check(cfg, spec)
        r = spec.resolution
        if r < 8 or r > 512 or r & (r - 1):
            raise ConfigError(f"vae needs a power-of-two resolution from 8 to 512, not {r}; use --resolution 32 or 64")
        if cfg.recon not in RECON_LOSSES:
            raise ConfigError(f"unknown recon '{cfg.recon}': use one of {', '.join(RECON_LOSSES)}")
        if cfg.beta < 0:
            raise ConfigError(f"beta must be >= 0, not {cfg.beta}")

    def latent_shape(self, cfg: VAEConfig, spec: DataSpec) -> tuple[int, ...]:
        return (cfg.nz,)

    def build(self, cfg: VAEConfig, spec: DataSpec) -> Networks:
        args = (cfg.nz, cfg.nf, spec.channels, spec.resolution, spec.num_classes)
        return Networks({"E": Encoder(*args), "G": Decoder(*args)}, cfg=cfg, spec=spec)

    def optimizers(self, nets: Networks, cfg: VAEConfig) -> dict[str, torch.optim.Optimizer]:
        params = list(nets["E"].parameters()) + list(nets["G"].parameters())
        return {"VAE": torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))}

    def train_step(self, nets: Networks, opts, batch: Batch, step: int, ctx: StepContext) -> dict[str, float]:
        cfg: VAEConfig = nets.cfg
        images = batch["image"]
        all_labels = batch.get("label") if nets.spec.num_classes else None
        parts = ctx.micro_batches(images.shape[0])  # --batch-gpu: gradients of the parts add up
        opts["VAE"].zero_grad(set_to_none=True)
        totals = {"loss": 0.0, "loss_rec": 0.0, "loss_kl": 0.0}
        for part in parts:
            x = images[part]
            labels = all_labels[part] if all_labels is not None else None
            w = x.shape[0] / images.shape[0]
            mu, logvar = nets["E"](x, labels)
            mu, logvar = mu.float(), logvar.float()
            # Reparameterisation trick (Kingma & Welling 2014, sec. 2.4): z = mu + sigma * eps.
            z = mu + (0.5 * logvar).exp() * ctx.randn(*mu.shape, device=mu.device)
            logits = nets["G"](z, labels)
            rec = reconstruction_loss(cfg.recon, logits, x, cfg.sigma).mean()
            kl = kl_to_prior(mu, logvar).mean()
            loss = rec + cfg.beta * kl  # negative ELBO (beta = 1), per image
            ctx.backward(loss if len(parts) == 1 else loss * w)
            for k, v in (("loss", loss), ("loss_rec", rec), ("loss_kl", kl)):
                totals[k] += v.item() * w
        grad = ctx.grad_norm(nets["E"], opts["VAE"]) ** 2 + ctx.grad_norm(nets["G"], opts["VAE"]) ** 2
        ctx.step(opts["VAE"])
        return {**totals, "grad": grad**0.5}

    def sample(self, nets: Networks, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Decode latents (from the prior, or from `encode`) to images in [-1, 1]."""
        return torch.tanh(0.5 * nets["G"](z, labels).float())  # 2 * sigmoid(l) - 1

    # ---- what only an autoencoder can do -------------------------------------------------------
    def encode(
        self, nets: Networks, images: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance, each (B, nz), of images in [-1, 1]."""
        mu, logvar = nets["E"](images, labels)
        return mu.float(), logvar.float()

    def reconstruct(self, nets: Networks, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images decoded from their posterior means (deterministic), in [-1, 1]."""
        mu, _ = self.encode(nets, images, labels)
        return self.sample(nets, mu, labels)
