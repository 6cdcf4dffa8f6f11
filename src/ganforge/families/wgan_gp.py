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

from dataclasses import dataclass, replace

from ..errors import ConfigError
from ..nn.dcgan import Discriminator as ConvCritic
from ..nn.dcgan import Generator as ConvGenerator
from ..nn.dcgan import default_widths
from ..nn.dcgan import init_weights as init_dcgan_weights
from ..nn.mlp import point_precision
from .adversarial import AdversarialFamily, adversarial_step, gradient_penalty, mode_seeking_weight, standard
from .base import Batch, Capabilities, DataSpec, Networks, StepContext


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
    mode_seeking: float = -1.0  # MSGAN's mode-seeking weight; -1: 1.0 with --cond, else 0


class WGANGP(AdversarialFamily):
    capabilities = Capabilities(generator_terms=True)  # its step is adversarial_step: --constraint / --topk apply
    name = "wgan-gp"
    Config = WGANGPConfig
    data_kinds = ("image", "points")

    def _resolved(self, cfg: WGANGPConfig, spec: DataSpec) -> WGANGPConfig:
        return replace(cfg, nz=cfg.nz or (2 if spec.kind == "points" else 100))

    def check(self, cfg: WGANGPConfig, spec: DataSpec) -> None:
        super().check(cfg, spec)
        if cfg.n_critic < 1:
            raise ConfigError(f"n_critic must be 1 or more, not {cfg.n_critic}")
        self.check_resolution(spec)

    def latent_shape(self, cfg: WGANGPConfig, spec: DataSpec) -> tuple[int, ...]:
        return (self._resolved(cfg, spec).nz,)

    def build(self, cfg: WGANGPConfig, spec: DataSpec) -> Networks:
        r = self._resolved(cfg, spec)
        if spec.kind == "points":
            return Networks(self.point_nets(r.nz, r.width, r.layers, spec, act="relu"), cfg=r, spec=spec)
        embed = r.embed_dim or max(r.nz // 2, 1)
        ngf, ndf = default_widths(r.ngf, r.ndf, spec.resolution)  # as dcgan's
        nets = Networks(
            {
                "G": ConvGenerator(r.nz, ngf, spec.channels, spec.resolution, r.max_mult, spec.num_classes, embed),
                "D": ConvCritic(ndf, spec.channels, spec.resolution, r.max_mult, "layer", spec.num_classes),
            },
            cfg=r, spec=spec,
        )
        nets.apply(init_dcgan_weights)  # DCGAN's N(0, 0.02) (Radford et al. 2015, sec. 4)
        return nets

    def train_step(self, nets: Networks, opts, batch: Batch, step: int, ctx: StepContext) -> dict[str, float]:
        cfg: WGANGPConfig = nets.cfg
        real = batch["points"] if nets.spec.kind == "points" else batch["image"]
        labels = batch.get("label") if nets.spec.num_classes else None
        if real.shape[0] < cfg.n_critic:
            raise ConfigError(f"--batch {real.shape[0]} is smaller than n_critic={cfg.n_critic}; use a larger batch")
        # One minibatch of real samples per critic iteration (Algorithm 1, line 3); critic updates
        # maximise E[D(x)] - E[D(G(z))] - lambda * GP (lines 2-9), then G minimises -E[D(G(z))] (10-11).
        reals = real.chunk(cfg.n_critic)
        chunks = list(zip(reals, labels.chunk(cfg.n_critic) if labels is not None else [None] * len(reals)))
        objective = standard("wgan-gp")
        objective.penalty = gradient_penalty(nets["D"], cfg.gp_weight)
        objective.mode_seeking = mode_seeking_weight(cfg.mode_seeking, nets.spec)
        with point_precision(nets.spec, ctx.device):
            logs = adversarial_step(nets["G"], nets["D"], opts, ctx, chunks, cfg.nz, objective)
        # The negated critic loss (without the penalty) estimates the Wasserstein-1 distance.
        logs["wdist"] = logs["score_real"] - logs["score_fake"]
        return logs
