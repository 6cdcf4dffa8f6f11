"""3D-GAN (Wu, Zhang, Xue, Freeman & Tenenbaum, NeurIPS 2016): voxel shapes from noise, optionally class-conditional.

G: z (200, the paper's) -> 4^3 transposed conv -> [stride-2 transposed 3-D conv (4^3 kernels), BN, ReLU] x
log2(R/4) -> sigmoid occupancy at R^3 (the paper: 512-256-128-64 channels to 64^3). The occupancy p is returned
as 2p - 1, in [-1, 1] like every sample in ganforge (`spec` DATA_KINDS: voxels), so occupied is `x > 0`.
D mirrors G: [stride-2 3-D conv, BN (not on the first layer), LeakyReLU 0.2] down to 4^3 -> 4^3 conv -> logit.
Adam with beta1 0.5 (the paper's); G's rate is the paper's 0.0025, D's 1e-3 rather than the paper's 1e-5 (at
batch 100 and 64 channels): at 16 channels and batch 32, 1e-5 left D too weak to shape anything (noise).
With `--cond`, MSGAN's mode-seeking term is on by default (`mode_seeking` -1 = 1.0 with labels, as dcgan):
measured on shapes3d at 16^3, 3000 steps (`benchmarks/shapes3d.py`), coverage of held-out shapes 0.065 without it
(G ignored z: one shape per class) and 0.345 with it, against 0.565 for training shapes.
The paper's balance rule: "the discriminator is updated only if its accuracy in the last batch is not higher than
80 %" (sec. 3.1, `d_gate`). Here D's accuracy is measured on every step's batch (reals with D(x) > 0, fakes with
D(G(z)) < 0; 0.5 as the boundary under lsgan), and the next step updates D only while it is at most `d_gate`; a
step without a D update trains G alone (and still measures D on the batch). It applies to the classifier losses
(nonsaturating, the paper's; hinge; lsgan), not to wgan-gp, whose critic has no decision boundary.
`loss` picks the adversarial loss as in dcgan; with wgan-gp the critic normalises per sample (GroupNorm with one
group, a layer norm) since the gradient penalty is per sample (Gulrajani et al. 2017, sec. 4).
Conditional (`--cond`): G concatenates a learned class embedding to z; D is a projection discriminator (Miyato &
Koyama 2018): logit + <embed(y), sum-pooled features>.
Widths default to 16 channels below 64^3 (CPU-sized; the paper's 64 at 64^3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from .. import losses
from ..errors import ConfigError
from .adversarial import (
    AdversarialFamily,
    Objective,
    adversarial_step,
    gradient_penalty,
    mode_seeking_weight,
    set_trainable,
    standard,
)
from .base import Batch, Capabilities, DataSpec, Networks, StepContext

LOSSES = losses.LOSSES  # nonsaturating | hinge | lsgan | wgan-gp, as the other adversarial families (--loss)
GATED = ("nonsaturating", "hinge", "lsgan")  # losses whose D is a classifier, so the accuracy gate applies


@dataclass
class GAN3DConfig:
    nz: int = 200  # latent size (the paper's 200)
    ngf: int = 0  # G width: channels of its last hidden layer (0: 64, the paper's, at 64^3; 16 below, CPU-sized)
    ndf: int = 0  # D width: channels of its first layer (0: as ngf)
    max_mult: int = 8  # widths are capped at ngf*max_mult / ndf*max_mult
    loss: str = "nonsaturating"  # nonsaturating (the paper's) | hinge | lsgan | wgan-gp
    gp_weight: float = 10.0  # gradient penalty weight (wgan-gp)
    n_critic: int = 1  # D updates per G update (5 is usual for wgan-gp)
    d_gate: float = (
        0.8  # D is updated only while its accuracy on the last batch is at most this (the paper's 0.8); 1: always
    )
    lr: float = 0.0  # one learning rate for both networks when set (0: lr_g and lr_d)
    lr_g: float = 0.0025  # generator learning rate (the paper's)
    lr_d: float = 1e-3  # discriminator learning rate (the paper's 1e-5 is too slow at CPU widths)
    beta1: float = 0.5  # Adam beta1 (the paper's)
    beta2: float = 0.999  # Adam beta2
    embed_dim: int = 0  # class embedding size for conditional G (0: nz // 4)
    mode_seeking: float = -1.0  # MSGAN's mode-seeking weight (-1: 1.0 with --cond, else 0; 0: off)


def _widths(cfg: GAN3DConfig, resolution: int) -> tuple[int, int]:
    ngf = cfg.ngf or (64 if resolution >= 64 else 16)
    return ngf, cfg.ndf or ngf


def _norm(kind: str, c: int) -> nn.Module:
    return nn.BatchNorm3d(c) if kind == "batch" else nn.GroupNorm(1, c)


class VoxelGenerator(nn.Module):
    """z (B, nz) [+ labels] -> occupancy as 2p - 1, (B, 1, R, R, R)."""

    def __init__(
        self, nz: int, ngf: int, resolution: int, max_mult: int, num_classes: int = 0, embed_dim: int = 0
    ) -> None:
        super().__init__()
        n_up = int(math.log2(resolution // 4))
        widths = [min(ngf * 2 ** (n_up - 1 - i), ngf * max_mult) for i in range(n_up)]  # at 4^3, 8^3, ..., R/2^3
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes else None
        cin = nz + (embed_dim if num_classes else 0)
        layers: list[nn.Module] = [
            nn.ConvTranspose3d(cin, widths[0], 4, 1, 0, bias=False),
            nn.BatchNorm3d(widths[0]),
            nn.ReLU(True),
        ]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.ConvTranspose3d(a, b, 4, 2, 1, bias=False), nn.BatchNorm3d(b), nn.ReLU(True)]
        layers.append(nn.ConvTranspose3d(widths[-1], 1, 4, 2, 1, bias=False))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            if labels is None:
                raise ConfigError("this model is class-conditional: give a class")
            z = torch.cat([z, self.embed(labels)], dim=1)
        x = self.net(z[:, :, None, None, None])  # (B, nz, 1, 1, 1) -> (B, 1, R, R, R)
        return torch.sigmoid(x.float()) * 2 - 1  # occupancy p in [0, 1] as 2p - 1 (the paper's sigmoid output)


class VoxelDiscriminator(nn.Module):
    """(B, 1, R, R, R) in [-1, 1] [+ labels] -> logits (B,)."""

    def __init__(self, ndf: int, resolution: int, max_mult: int, norm: str = "batch", num_classes: int = 0) -> None:
        super().__init__()
        n_down = int(math.log2(resolution // 4))
        widths = [min(ndf * 2**i, ndf * max_mult) for i in range(n_down)]  # at R/2, R/4, ..., 4
        layers: list[nn.Module] = [nn.Conv3d(1, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv3d(a, b, 4, 2, 1, bias=False), _norm(norm, b), nn.LeakyReLU(0.2, True)]
        self.features = nn.Sequential(*layers)
        self.out = nn.Conv3d(widths[-1], 1, 4, 1, 0)
        self.embed = nn.Embedding(num_classes, widths[-1]) if num_classes else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)  # (B, C, 4, 4, 4)
        logit = self.out(h).flatten()  # (B,)
        if self.embed is not None and labels is not None:
            logit = logit + (self.embed(labels) * h.sum(dim=(2, 3, 4))).sum(1)  # projection term
        return logit


def init_weights(m: nn.Module) -> None:
    """N(0, 0.02) weights, BN scales N(1, 0.02) (the DCGAN initialisation 3D-GAN builds on)."""
    if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.BatchNorm3d, nn.GroupNorm)):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def d_accuracy(loss: str, d_real: torch.Tensor, d_fake: torch.Tensor) -> float:
    """Fraction of a batch of reals and fakes that D classifies right (half each)."""
    t = 0.5 if loss == "lsgan" else 0.0
    return 0.5 * (
        (d_real.detach().float() > t).float().mean().item() + (d_fake.detach().float() < t).float().mean().item()
    )


class GAN3D(AdversarialFamily):
    capabilities = Capabilities(generator_terms=True)  # its step is adversarial_step: --constraint / --topk apply
    name = "gan3d"
    Config = GAN3DConfig
    data_kinds = ("voxels",)
    # Its D sees volumes, which the loop's 2-D augmentations (--aug) do not apply to.
    adversarial = False
    # G-only steps (gate closed) take the whole batch at once.
    accumulates = False
    # 3-D convolutions were not measured under bf16 on a CPU.
    cpu_bf16 = False
    loop_defaults: ClassVar[dict[str, Any]] = {
        "data": "shapes3d",
        "resolution": 16,
        "batch": 32,
        "channels_last": False,
    }

    def check(self, cfg: GAN3DConfig, spec: DataSpec) -> None:
        super().check(cfg, spec)
        r = spec.resolution
        if r < 8 or r > 128 or r & (r - 1):
            raise ConfigError(
                f"gan3d needs a power-of-two grid from 8 to 128 voxels a side, not {r}; use --resolution 16 or 32"
            )
        if cfg.loss not in LOSSES:
            raise ConfigError(f"unknown loss '{cfg.loss}' for gan3d: use one of {', '.join(LOSSES)}")
        if not 0.5 <= cfg.d_gate <= 1.0:
            raise ConfigError(f"d_gate is an accuracy from 0.5 to 1 (1: always update D), not {cfg.d_gate}")
        if cfg.n_critic < 1:
            raise ConfigError(f"n_critic must be 1 or more, not {cfg.n_critic}")

    def learning_rates(self, cfg: GAN3DConfig) -> dict[str, float]:
        return {"G": cfg.lr or cfg.lr_g, "D": cfg.lr or cfg.lr_d}

    def learning_rate(self, cfg: GAN3DConfig) -> float:
        return float(cfg.lr or cfg.lr_g)

    def latent_shape(self, cfg: GAN3DConfig, spec: DataSpec) -> tuple[int, ...]:
        return (cfg.nz,)

    def build(self, cfg: GAN3DConfig, spec: DataSpec) -> Networks:
        ngf, ndf = _widths(cfg, spec.resolution)
        embed = cfg.embed_dim or max(cfg.nz // 4, 1)
        norm = "group" if cfg.loss == "wgan-gp" else "batch"
        nets = Networks(
            {
                "G": VoxelGenerator(cfg.nz, ngf, spec.resolution, cfg.max_mult, spec.num_classes, embed),
                "D": VoxelDiscriminator(ndf, spec.resolution, cfg.max_mult, norm, spec.num_classes),
            },
            cfg=cfg,
            spec=spec,
        )
        nets.apply(init_weights)
        nets.state["d_acc"] = 0.0  # D's accuracy on the last batch (the gate's input)
        return nets

    def train_step(self, nets: Networks, opts, batch: Batch, step: int, ctx: StepContext) -> dict[str, float]:
        cfg: GAN3DConfig = nets.cfg
        real = batch["image"]  # (B, 1, R, R, R) in {-1, 1}
        labels = batch.get("label") if nets.spec.num_classes else None
        objective = standard(cfg.loss)
        objective.mode_seeking = mode_seeking_weight(cfg.mode_seeking, nets.spec)
        if cfg.loss == "wgan-gp":
            objective.penalty = gradient_penalty(nets["D"], cfg.gp_weight)
        gated = cfg.loss in GATED and cfg.d_gate < 1.0
        if gated and float(nets.state["d_acc"]) > cfg.d_gate:
            logs = self._generator_step(nets, opts, real, labels, ctx, objective)
            logs["d_updated"] = 0.0
        else:
            seen: list[float] = []
            d_loss = objective.d_loss

            def measured(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
                seen.append(d_accuracy(cfg.loss, d_real, d_fake))
                return d_loss(d_real, d_fake)

            objective.d_loss = measured
            logs = adversarial_step(nets["G"], nets["D"], opts, ctx, [(real, labels)] * cfg.n_critic, cfg.nz, objective)
            nets.state["d_acc"] = seen[-1]
            logs["d_updated"] = 1.0
        logs["d_acc"] = float(nets.state["d_acc"])
        return logs

    def _generator_step(
        self,
        nets: Networks,
        opts,
        real: torch.Tensor,
        labels: torch.Tensor | None,
        ctx: StepContext,
        objective: Objective,
    ) -> dict[str, float]:
        """A step with D held (the gate closed): G's update through the frozen D, and D's accuracy on the batch."""
        G, D = nets["G"], nets["D"]
        set_trainable(D, False)
        opts["G"].zero_grad(set_to_none=True)
        z = ctx.randn(real.shape[0], nets.cfg.nz, device=real.device)
        fake = G(z, labels)
        d_fake = D(fake, labels)
        loss_g = objective.g_loss(d_fake)
        ctx.backward(loss_g)
        grad_g = ctx.grad_norm(G, opts["G"])
        ctx.step(opts["G"])
        with torch.no_grad():
            d_real = D(real, labels)
        set_trainable(D, True)
        nets.state["d_acc"] = d_accuracy(nets.cfg.loss, d_real, d_fake)
        logs = {"loss_G": loss_g.item(), "grad_G": grad_g}
        if objective.report == "score":
            logs.update(score_real=d_real.float().mean().item(), score_fake=d_fake.detach().float().mean().item())
        else:
            logs.update(
                D_real=losses.probabilities(objective.report, d_real),
                D_fake=losses.probabilities(objective.report, d_fake.detach()),
            )
        return logs

    def state_dict(self, nets: Networks) -> dict[str, Any]:
        return {"d_acc": float(nets.state["d_acc"])}

    def load_state_dict(self, nets: Networks, state: dict[str, Any]) -> None:
        if "d_acc" in state:
            nets.state["d_acc"] = float(state["d_acc"])
