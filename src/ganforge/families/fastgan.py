"""FastGAN (Liu et al., ICLR 2021): a light generator with skip-layer excitation and a discriminator that is
also a self-supervised auto-encoder, for few-shot image synthesis. Networks: `ganforge.nn.fastgan`.

Losses (paper, sec. 3.2 and eq. 4): D minimises the hinge loss E[relu(1 - D(x))] + E[relu(1 + D(G(z)))] on its
patch logits plus the reconstruction loss of its two decoders on real images only (the whole image from the 8x8
features, a random quarter from that quarter of the 16x16 features, one quarter per step for the whole batch);
G minimises -E[D(G(z))]. The paper's reconstruction loss is LPIPS, whose pretrained weights this toolkit does
not carry: the loss here is L1 at full, 1/2 and 1/4 scale (`nn.fastgan.recon_loss`), and the checkpointed
family state `recon_loss` says so. The decoders rebuild the images D saw, after the loop's augmentation.
Adam(2e-4, betas (0.5, 0.999)) for both networks (the paper's); an EMA copy of G samples. The paper trains with
DiffAugment, so `ganforge train --model fastgan` uses `--aug diffaugment` unless --aug is given.

Departures from the reference code, for a smaller first version: no spectral normalisation, no second
discriminator branch on a 128 px copy of the image, no SLE inside D, and the plain hinge margin (the reference
draws it in [0.8, 1]).

`--set d=projected` replaces D with the projected discriminator (Sauer et al. 2021; `ganforge.nn.projected`, the
generator the Projected GAN authors recommend for small sets): hinge loss on the patch logits of its four heads, no
reconstruction. The fakes' features are computed once per step: D's update sees them detached, G's update
backpropagates through the frozen feature network into G (the same augmented fakes for both updates).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from .. import losses
from ..errors import ConfigError
from ..nn.fastgan import Discriminator, Generator, init_weights, recon_loss, recon_targets
from ..nn.projected import init_heads
from . import projected
from .adversarial import AdversarialFamily, set_trainable
from .base import Batch, DataSpec, Networks, StepContext

RECON_NOTE = "l1 + 2x/4x average-pooled l1 on pixels (LPIPS weights not on this machine)"


@dataclass
class FastGANConfig:
    nz: int = 0  # latent size; 0: 256 (the paper's) from 128 px, 128 below
    ngf: int = 0  # generator base width (x the per-resolution multiplier); 0: 64 (the paper's) from 128 px, 16 below
    ndf: int = 0  # discriminator base width; 0: as ngf
    noise: bool = True  # per-pixel noise injection in G's two-convolution blocks (training steps only; 0 when sampling)
    recon_weight: float = 1.0  # weight of the decoders' reconstruction loss in D's loss
    lr: float = 2e-4  # Adam learning rate of G and D (the paper's)
    beta1: float = 0.5  # Adam beta1
    beta2: float = 0.999  # Adam beta2
    embed_dim: int = 0  # class embedding size for conditional G (0: nz // 2)
    d: str = "fastgan"  # the discriminator: fastgan (self-supervised, the paper's) | projected (frozen EfficientNet-Lite0 features)
    proj_size: int = 0  # d=projected: the feature network's input side in px (0: 2x the image side, 64 to 224)
    proj_width: float = 1.0  # d=projected: multiplier of the heads' widths


class FastGAN(AdversarialFamily):
    name = "fastgan"
    Config = FastGANConfig
    data_kinds = ("image",)
    adversarial = True
    accumulates = False
    loop_defaults: ClassVar[dict[str, Any]] = {"aug": "diffaugment"}

    def check(self, cfg: FastGANConfig, spec: DataSpec) -> None:
        super().check(cfg, spec)
        r = spec.resolution
        if r < 32 or r > 1024 or r & (r - 1):
            raise ConfigError(f"fastgan needs a power-of-two resolution from 32 to 1024, not {r}; use --resolution 32, 64 or 256")
        if cfg.recon_weight < 0:
            raise ConfigError(f"recon_weight = {cfg.recon_weight}: use 0 (no self-supervision) or more")
        projected.check(cfg, spec, "fastgan")

    def resolve_config(self, cfg: FastGANConfig, spec: DataSpec, batch: int) -> FastGANConfig:
        """Fill the widths and latent size left at 0: the paper's (64, 256) from 128 px, narrower below (for CPUs)."""
        big = spec.resolution >= 128
        if not cfg.nz:
            cfg.nz = 256 if big else 128
        if not cfg.ngf:
            cfg.ngf = 64 if big else 16
        if not cfg.ndf:
            cfg.ndf = cfg.ngf
        projected.resolve(cfg, spec)
        return cfg

    def latent_shape(self, cfg: FastGANConfig, spec: DataSpec) -> tuple[int, ...]:
        if not cfg.nz:
            self.resolve_config(cfg, spec, 8)
        return (cfg.nz,)

    def build(self, cfg: FastGANConfig, spec: DataSpec) -> Networks:
        self.resolve_config(cfg, spec, 8)  # idempotent: a no-op for a resolved config
        embed = cfg.embed_dim or max(cfg.nz // 2, 1)
        nets = Networks(
            {
                "G": Generator(cfg.nz, cfg.ngf, spec.channels, spec.resolution, spec.num_classes, embed, cfg.noise),
                "D": projected.build_d(cfg, spec) if projected.wanted(cfg)
                else Discriminator(cfg.ndf, spec.channels, spec.resolution, spec.num_classes),
            },
            cfg=cfg, spec=spec,
        )
        # N(0, 0.02) leaves the class embeddings alone (D's starts at N(0, 0.02)); the projected heads keep
        # PyTorch's initialisation under spectral norm (`nn.projected.init_heads`).
        nets["G"].apply(init_weights)
        nets["D"].apply(init_heads if projected.wanted(cfg) else init_weights)
        if not projected.wanted(cfg):
            nets.state["recon_loss"] = RECON_NOTE
        return nets

    def setup_training(self, nets: Networks, device: torch.device) -> None:
        projected.setup(nets, device)

    def train_step(self, nets: Networks, opts, batch: Batch, step: int, ctx: StepContext) -> dict[str, float]:
        cfg: FastGANConfig = nets.cfg
        G, D = nets["G"], nets["D"]
        real, labels = batch["image"], batch.get("label")
        z = ctx.randn(real.shape[0], cfg.nz, device=real.device)
        fake = G(z, labels)  # one G forward per step: D sees it detached, G's update reuses its graph
        if projected.wanted(cfg):
            return self._projected_step(nets, opts, real, labels, fake, ctx)

        # D: hinge loss on real and fake patch logits + reconstruction of the reals it saw.
        set_trainable(D, True)
        opts["D"].zero_grad(set_to_none=True)
        part = int(torch.randint(4, ()).item())  # the quarter rebuilt this step
        real_seen = ctx.augment(real)
        d_real, rec_all, rec_part = D(real_seen, labels, part=part)
        ctx.observe_real(d_real)
        d_fake = D(ctx.augment(fake.detach()), labels)
        target_all, target_part = recon_targets(real_seen.detach(), part, D.recon_side)
        loss_recon = recon_loss(rec_all, target_all) + recon_loss(rec_part, target_part)
        loss_adv = losses.d_loss("hinge", d_real, d_fake)
        loss_d = loss_adv + cfg.recon_weight * loss_recon
        ctx.backward(loss_d)
        grad_d = ctx.grad_norm(D, opts["D"])
        ctx.step(opts["D"])

        # G: -E[D(G(z))] through a frozen D.
        set_trainable(D, False)
        opts["G"].zero_grad(set_to_none=True)
        loss_g = losses.g_loss("hinge", D(ctx.augment(fake), labels))
        ctx.backward(loss_g)
        grad_g = ctx.grad_norm(G, opts["G"])
        ctx.step(opts["G"])
        set_trainable(D, True)

        return {
            "loss_D": loss_d.item(),
            "loss_D_adv": loss_adv.item(),
            "loss_recon": loss_recon.item(),
            "loss_G": loss_g.item(),
            "D_real": losses.probabilities("hinge", d_real),
            "D_fake": losses.probabilities("hinge", d_fake),
            "score_real": float(d_real.detach().float().mean()),
            "score_fake": float(d_fake.detach().float().mean()),
            "grad_D": grad_d,
            "grad_G": grad_g,
        }

    @staticmethod
    def _projected_step(nets: Networks, opts, real, labels, fake, ctx: StepContext) -> dict[str, float]:
        G, D = nets["G"], nets["D"]
        set_trainable(D, True)
        opts["D"].zero_grad(set_to_none=True)
        with torch.no_grad():
            feats_real = D.features(ctx.augment(real))
        feats_fake = D.features(ctx.augment(fake))  # kept with its graph for G's update
        d_real = D.score(feats_real, labels)
        ctx.observe_real(d_real)
        d_fake = D.score([f.detach() for f in feats_fake], labels)
        loss_d = losses.d_loss("hinge", d_real, d_fake)
        ctx.backward(loss_d)
        grad_d = ctx.grad_norm(D, opts["D"])
        ctx.step(opts["D"])

        set_trainable(D, False)
        opts["G"].zero_grad(set_to_none=True)
        loss_g = losses.g_loss("hinge", D.score(feats_fake, labels))
        ctx.backward(loss_g)
        grad_g = ctx.grad_norm(G, opts["G"])
        ctx.step(opts["G"])
        set_trainable(D, True)
        return {
            "loss_D": loss_d.item(), "loss_G": loss_g.item(),
            "D_real": losses.probabilities("hinge", d_real), "D_fake": losses.probabilities("hinge", d_fake),
            "score_real": float(d_real.detach().float().mean()), "score_fake": float(d_fake.detach().float().mean()),
            "grad_D": grad_d, "grad_G": grad_g,
        }

    def state_dict(self, nets: Networks) -> dict[str, Any]:
        if projected.wanted(nets.cfg):
            return {}
        return {"recon_loss": nets.state.get("recon_loss", RECON_NOTE)}

    def load_state_dict(self, nets: Networks, state: dict[str, Any]) -> None:
        if "recon_loss" in state:
            nets.state["recon_loss"] = state["recon_loss"]
