"""DCGAN (Radford, Metz & Chintala 2015), optionally class-conditional.

G: latent (nz) -> 4x4 transposed conv -> [stride-2 transposed conv, BN, ReLU] x log2(res/4) -> tanh.
D: [stride-2 conv, BN (not on the first layer), LeakyReLU 0.2] x log2(res/4) -> 4x4 conv -> logit.
Weights ~ N(0, 0.02), BN scales ~ N(1, 0.02) (paper, sec. 4); Adam(2e-4, beta1=0.5), 3e-4 below 64 px (measured).
Conditional (`--cond`): G concatenates a learned class embedding to z; D is a projection
discriminator (Miyato & Koyama 2018): logit + <embed(y), sum-pooled features>.
`loss` picks the adversarial loss; with wgan-gp the critic uses layer norm instead of batch norm,
since the gradient penalty is per-sample (Gulrajani et al. 2017, sec. 4).
`--set d=projected`: the projected discriminator (Sauer et al. 2021, `ganforge.nn.projected`) in place of D,
trained with the chosen loss on its patch logits (not with wgan-gp, whose penalty its batch norm breaks).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import losses
from ..errors import ConfigError
from ..nn.dcgan import Discriminator, Generator, default_widths, init_weights
from ..nn.projected import init_heads
from . import projected
from .adversarial import AdversarialFamily, adversarial_step, gradient_penalty, mode_seeking_weight, standard
from .base import Batch, Capabilities, DataSpec, Networks, StepContext


@dataclass
class DCGANConfig:
    nz: int = 100  # latent size
    ngf: int = 0  # generator width (channels of its last hidden layer); 0: 64 (the paper's) from 64 px, 32 below
    ndf: int = 0  # discriminator width (channels of its first layer); 0: as ngf
    max_mult: int = 8  # widths are capped at ngf*max_mult / ndf*max_mult
    loss: str = "nonsaturating"  # nonsaturating | hinge | lsgan | wgan-gp
    gp_weight: float = 10.0  # gradient penalty weight (wgan-gp)
    n_critic: int = 1  # D updates per G update (5 is usual for wgan-gp)
    lr: float = 0.0  # learning rate of both networks, unless lr_g / lr_d are set (0: 2e-4, the paper's, from 64 px; 3e-4 below)
    lr_g: float = 0.0  # generator learning rate (0: use lr)
    lr_d: float = 0.0  # discriminator learning rate (0: use lr)
    beta1: float = 0.5  # Adam beta1
    beta2: float = 0.999  # Adam beta2
    embed_dim: int = 0  # class embedding size for conditional G (0: nz // 2)
    mode_seeking: float = -1.0  # MSGAN's mode-seeking weight; -1: 1.0 (the paper's) with --cond, else 0
    d: str = "dcgan"  # the discriminator: dcgan (the paper's) | projected (frozen EfficientNet-Lite0 features)
    proj_size: int = 0  # d=projected: the feature network's input side in px (0: 2x the image side, 64 to 224)
    proj_width: float = 1.0  # d=projected: multiplier of the heads' widths


class DCGAN(AdversarialFamily):
    capabilities = Capabilities(generator_terms=True)  # its step is adversarial_step: --constraint / --topk apply
    name = "dcgan"
    Config = DCGANConfig
    data_kinds = ("image",)

    def check(self, cfg: DCGANConfig, spec: DataSpec) -> None:
        super().check(cfg, spec)
        self.check_resolution(spec)
        if cfg.loss not in losses.LOSSES:
            raise ConfigError(f"unknown loss '{cfg.loss}': use one of {', '.join(losses.LOSSES)}")
        projected.check(cfg, spec, "dcgan")
        if projected.wanted(cfg) and cfg.loss == "wgan-gp":
            raise ConfigError("d=projected cannot train with loss=wgan-gp (its heads use batch norm); use loss=hinge or nonsaturating")

    def resolve_config(self, cfg: DCGANConfig, spec: DataSpec, batch: int) -> DCGANConfig:
        """lr 0: the paper's 2e-4 from 64 px, 3e-4 below. On emoji at 32 px, 4000 steps of batch 64, classifier
        FD 5.16 / 5.09 (seeds 0 / 1) at 3e-4 against 7.29 / 7.88 at 2e-4 (2-core AVX2 CPU, 2,000 samples)."""
        if not cfg.lr:
            cfg.lr = 2e-4 if spec.resolution >= 64 else 3e-4
        projected.resolve(cfg, spec)
        return cfg

    def learning_rates(self, cfg: DCGANConfig) -> dict[str, float]:
        return {"G": cfg.lr_g or cfg.lr, "D": cfg.lr_d or cfg.lr}  # "0: use lr"

    def latent_shape(self, cfg: DCGANConfig, spec: DataSpec) -> tuple[int, ...]:
        return (cfg.nz,)

    @staticmethod
    def widths(cfg: DCGANConfig, spec: DataSpec) -> tuple[int, int]:
        return default_widths(cfg.ngf, cfg.ndf, spec.resolution)

    def build(self, cfg: DCGANConfig, spec: DataSpec) -> Networks:
        embed = cfg.embed_dim or max(cfg.nz // 2, 1)
        ngf, ndf = self.widths(cfg, spec)
        norm = "layer" if cfg.loss == "wgan-gp" else "batch"
        nets = Networks(
            {
                "G": Generator(cfg.nz, ngf, spec.channels, spec.resolution, cfg.max_mult, spec.num_classes, embed),
                "D": projected.build_d(cfg, spec) if projected.wanted(cfg)
                else Discriminator(ndf, spec.channels, spec.resolution, cfg.max_mult, norm, spec.num_classes),
            },
            cfg=cfg, spec=spec,
        )
        nets["G"].apply(init_weights)
        nets["D"].apply(init_heads if projected.wanted(cfg) else init_weights)
        return nets

    def setup_training(self, nets: Networks, device) -> None:
        projected.setup(nets, device)

    def train_step(self, nets: Networks, opts, batch: Batch, step: int, ctx: StepContext) -> dict[str, float]:
        cfg: DCGANConfig = nets.cfg
        real, labels = batch["image"], batch.get("label")
        objective = standard(cfg.loss)
        objective.mode_seeking = mode_seeking_weight(cfg.mode_seeking, nets.spec)
        if cfg.loss == "wgan-gp":
            objective.penalty = gradient_penalty(nets["D"], cfg.gp_weight)
        return adversarial_step(nets["G"], nets["D"], opts, ctx, [(real, labels)] * cfg.n_critic, cfg.nz, objective)
