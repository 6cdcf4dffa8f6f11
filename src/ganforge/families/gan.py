"""The original GAN (Goodfellow et al. 2014): fully connected G and D, on flattened images or points.

Images (MNIST-like): the paper's MNIST model (its released `mnist.yaml`): z of 100, G with two ReLU
layers of 1200 units, D with two maxout layers of 240 units x 5 pieces; G ends in tanh here because
images are in [-1, 1]. Point data: the VEEGAN / PacGAN 2-D architecture (PacGAN sec. 5.1): z of 2,
G with four ReLU+BatchNorm layers of 400 units, D with three maxout layers of 200 units. Settings
left at 0 / "auto" take these per-data-kind values.

Options beyond the paper, all off by default: `pack` (PacGAN, Lin et al. 2018), `r1` (zero-centred
gradient penalty on real data, Mescheder et al. 2018), `lr_halflife` (exponential learning-rate
decay), and `loss` (the non-saturating loss of the paper's sec. 3 by default; "minimax" is eq. 1 as
written; hinge / lsgan as in dcgan).
Class-conditional (`--cond`): the one-hot label is concatenated to z (Mirza & Osindero 2014); D
adds a projection term (Miyato & Koyama 2018), or with `d_cond=concat` takes the one-hot label at
its input as in the cGAN paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from .. import losses
from ..errors import ConfigError
from ..nn.mlp import MLPDiscriminator, MLPGenerator, point_precision, sample_shape
from .adversarial import AdversarialFamily, Objective, adversarial_step
from .base import Batch, Capabilities, DataSpec, Networks, StepContext

LOSS_CHOICES = ("nonsaturating", "minimax", "hinge", "lsgan")

# Per-data-kind values of the settings left at 0 / "auto" (see the module docstring for sources).
_AUTO = {
    "image": {"nz": 100, "g_width": 1200, "g_layers": 2, "g_norm": "none", "d_width": 240, "d_layers": 2},
    "points": {"nz": 2, "g_width": 400, "g_layers": 4, "g_norm": "batch", "d_width": 200, "d_layers": 3},
}


@dataclass
class GANConfig:
    nz: int = 0  # latent size (0: 100 for images, 2 for points)
    g_width: int = 0  # units per generator layer (0: 1200 for images, 400 for points)
    g_layers: int = 0  # hidden generator layers (0: 2 for images, 4 for points)
    g_norm: str = "auto"  # generator normalisation: auto | batch | layer | none (auto: none for images, batch for points)
    d_width: int = 0  # units per discriminator layer (0: 240 for images, 200 for points)
    d_layers: int = 0  # hidden discriminator layers (0: 2 for images, 3 for points)
    d_act: str = "maxout"  # discriminator activation: maxout | lrelu | relu
    maxout_pieces: int = 5  # linear pieces per maxout unit (Goodfellow et al. 2014)
    d_dropout: float = 0.0  # dropout in D (the paper's MNIST model used 0.5 after each layer)
    loss: str = "nonsaturating"  # nonsaturating | minimax | hinge | lsgan
    pack: int = 1  # PacGAN degree: D judges this many samples at once (batch must be a multiple)
    r1: float = 0.0  # R1 penalty weight gamma: + gamma/2 * E||grad D(x)||^2 on real data (0: off)
    r1_every: int = 1  # lazy R1 (Karras et al. 2020): the penalty every this many steps, weighted by it
    lr: float = 2e-4  # learning rate of both networks, unless lr_g / lr_d are set
    lr_g: float = 0.0  # generator learning rate (0: use lr)
    lr_d: float = 0.0  # discriminator learning rate (0: use lr)
    beta1: float = 0.5  # Adam beta1
    beta2: float = 0.999  # Adam beta2
    n_critic: int = 1  # D updates per G update (each with fresh noise, on the step's real batch)
    lr_halflife: int = 0  # steps over which both learning rates halve, exponentially (0: constant)
    mixture: int = 0  # > 0: G's latent is a learnable mixture of this many Gaussians (DeLiGAN / GM-GAN)
    mixture_std: float = 0.1  # initial std of each mixture component
    # Conditional D: projection (Miyato & Koyama 2018) | concat (one-hot label at D's input, the cGAN
    # paper). On digits, concat's D barely sees 10 label inputs beside 1,024 pixels and G ignores the
    # label (12.6 % of samples show the asked digit, vs 93.3 % with projection; digits benchmark).
    # A packed D (pack > 1) judges several samples at once, so it always takes the labels at its input.
    d_cond: str = "projection"


def resolve(cfg: GANConfig, spec: DataSpec) -> GANConfig:
    """The config with 0 / "auto" settings replaced by the values for this kind of data."""
    auto = _AUTO["points" if spec.kind == "points" else "image"]
    values = {k: v for k, v in auto.items() if getattr(cfg, k) in (0, "auto")}
    return replace(cfg, **values)


def adversarial_losses(kind: str, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """D loss, with the saturating minimax loss (same D loss as non-saturating) added to `losses`' set."""
    return losses.d_loss("nonsaturating" if kind == "minimax" else kind, d_real, d_fake)


def generator_loss(kind: str, d_fake: torch.Tensor) -> torch.Tensor:
    if kind == "minimax":  # Goodfellow et al. 2014, eq. 1: G minimises log(1 - D(G(z))) = -softplus(logit)
        return -F.softplus(d_fake.float()).mean()
    return losses.g_loss(kind, d_fake)


class GAN(AdversarialFamily):
    capabilities = Capabilities(generator_terms=True)  # its step is adversarial_step: --constraint / --topk apply
    name = "gan"
    Config = GANConfig
    data_kinds = ("image", "points")

    def check(self, cfg: GANConfig, spec: DataSpec) -> None:
        super().check(cfg, spec)
        if cfg.loss not in LOSS_CHOICES:
            raise ConfigError(f"unknown loss '{cfg.loss}' for gan: use one of {', '.join(LOSS_CHOICES)}")
        if cfg.r1_every < 1:
            raise ConfigError(f"r1_every must be 1 or more, not {cfg.r1_every}")
        if cfg.pack < 1:
            raise ConfigError(f"pack must be 1 or more, not {cfg.pack}")
        if cfg.mixture < 0 or (cfg.mixture > 0 and 0 < cfg.nz < 2):
            raise ConfigError(f"mixture={cfg.mixture} needs mixture >= 0 and nz >= 2 (one coordinate picks the component)")
        if cfg.d_cond not in ("concat", "projection"):
            raise ConfigError(f"unknown d_cond '{cfg.d_cond}': use concat or projection")
        if cfg.d_act not in ("maxout", "lrelu", "relu"):
            raise ConfigError(f"unknown d_act '{cfg.d_act}': use maxout, lrelu or relu")
        if cfg.g_norm not in ("auto", "batch", "layer", "none"):
            raise ConfigError(f"unknown g_norm '{cfg.g_norm}': use auto, batch, layer or none")
        if spec.kind == "image" and spec.channels * spec.resolution**2 > 64 * 64 * 3:
            raise ConfigError(
                f"gan is a fully connected model for small images; {spec.resolution}px is too large "
                "(use --resolution 32 or 64, or --model dcgan)"
            )

    def learning_rates(self, cfg: GANConfig) -> dict[str, float]:
        return {"G": cfg.lr_g or cfg.lr, "D": cfg.lr_d or cfg.lr}  # "0: use lr"

    def latent_shape(self, cfg: GANConfig, spec: DataSpec) -> tuple[int, ...]:
        return (resolve(cfg, spec).nz,)

    def build(self, cfg: GANConfig, spec: DataSpec) -> Networks:
        r = resolve(cfg, spec)
        shape = sample_shape(spec)
        return Networks(
            {
                "G": MLPGenerator(
                    r.nz, shape, r.g_width, r.g_layers, norm=r.g_norm,
                    out_act="tanh" if spec.kind == "image" else "none", num_classes=spec.num_classes,
                    mixture=r.mixture, mixture_std=r.mixture_std,
                ),
                "D": MLPDiscriminator(
                    math.prod(shape), r.d_width, r.d_layers, act=r.d_act, pieces=r.maxout_pieces,
                    dropout=r.d_dropout, pack=r.pack, num_classes=spec.num_classes, projection=r.d_cond == "projection" and r.pack == 1,
                ),
            },
            cfg=r, spec=spec,
        )

    def train_step(self, nets: Networks, opts, batch: Batch, step: int, ctx: StepContext) -> dict[str, float]:
        cfg: GANConfig = nets.cfg
        if cfg.lr_halflife > 0:
            # A function of the step alone, so that a resumed run follows the same schedule.
            decay = 0.5 ** (step / cfg.lr_halflife)
            for name, base in self.learning_rates(cfg).items():
                for group in opts[name].param_groups:
                    group["lr"] = base * decay
        with point_precision(nets.spec, ctx.device):
            return self._step(nets, opts, batch, step, ctx)

    def _step(self, nets: Networks, opts, batch: Batch, step: int, ctx: StepContext) -> dict[str, float]:
        cfg: GANConfig = nets.cfg
        real = batch["points"] if nets.spec.kind == "points" else batch["image"]
        labels = batch.get("label") if nets.spec.num_classes else None
        b = real.shape[0] - real.shape[0] % cfg.pack  # whole packs only
        if b == 0:
            raise ConfigError(f"batch {real.shape[0]} is smaller than pack={cfg.pack}; use a larger --batch")
        real = real[:b]
        labels = labels[:b] if labels is not None else None
        objective = Objective(
            d_loss=lambda r, f: adversarial_losses(cfg.loss, r, f),
            g_loss=lambda f: generator_loss(cfg.loss, f),
            report="score" if cfg.loss == "hinge" else ("lsgan" if cfg.loss == "lsgan" else "nonsaturating"),
        )
        if cfg.r1 > 0 and step % cfg.r1_every == 0:
            objective.penalty, objective.real_grad = _r1_penalty(cfg.r1 * cfg.r1_every), True
        return adversarial_step(nets["G"], nets["D"], opts, ctx, [(real, labels)] * cfg.n_critic, cfg.nz, objective)



def _r1_penalty(weight: float):
    """R1, Mescheder et al. 2018, eq. 9: gamma/2 * E||grad_x D(x)||^2 on real data, with `weight` = gamma times
    the lazy interval (every r1_every steps it is scaled by r1_every, as StyleGAN2 does)."""

    def penalty(real: torch.Tensor, d_real: torch.Tensor, fake: torch.Tensor, labels) -> tuple[torch.Tensor, dict[str, float]]:
        r1 = losses.r1_penalty(d_real, real)
        return 0.5 * weight * r1, {"r1": r1.item()}

    return penalty
