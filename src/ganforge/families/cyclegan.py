"""CycleGAN (Zhu et al. 2017): unpaired translation between two domains A and B.

G_AB: A -> B and G_BA: B -> A, ResNet generators (Johnson et al. 2016; CycleGAN appendix 7.2):
c7s1-64, d128, d256, R256 x n_blocks (6 at 128 px and below, 9 at 256 px and above), u128, u64,
c7s1-3; reflection padding, instance norm, ReLU, tanh out.
D_A judges domain A (real A against G_BA(B)), D_B domain B (real B against G_AB(A)): 70x70 PatchGANs
with instance norm. (The authors' code names the networks by the generator they judge: their D_A is
this D_B.)
Objective (eq. 3 and sec. 4): LSGAN losses (Mao et al. 2017) + 10 * cycle consistency
|G_BA(G_AB(a)) - a|_1 + |G_AB(G_BA(b)) - b|_1 + 0.5 * 10 * identity |G_AB(b) - b|_1 + |G_BA(a) - a|_1;
each D is updated on a history of 50 generated images (Shrivastava et al. 2017), its loss halved;
Adam(2e-4, 0.5, 0.999), the learning rate constant for the first half of training and then decayed
linearly to 0 (sec. 4: 100 + 100 epochs). Batch 1 is the paper's; `ganforge train` uses 4 (faster on
small images; `--batch 1` for the paper's).

The learning-rate schedule is a pure function of the step and the run's length, so a resumed run
follows it exactly; the image pools are family state (tensors in the checkpoint), so resuming is
bit-identical.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import losses
from ..errors import ConfigError
from ..nn.image2image import (
    PatchDiscriminator,
    eval_mode,
    gan_d_loss,
    gan_g_loss,
    init_normal,
    norm_layer,
    patch_layers,
)
from ..spec import ImageRequest, Request
from ..vocab import DIRECTIONS
from .adversarial import set_trainable
from .base import Batch, Capabilities, DataSpec, Family, Networks, StepContext


@dataclass
class CycleGANConfig:
    ngf: int = 64  # generator width: channels of its first layer (x2 and x4 after the two down-samplings)
    ndf: int = 64  # PatchGAN width: channels of its first layer
    n_blocks: int = 0  # residual blocks in G; 0: 6 below 256 px, 9 from 256 px (the paper's)
    n_layers: int = 3  # PatchGAN stride-2 layers (3: 70x70 patches); fewer on inputs below 24 px
    norm: str = "instance"  # instance | batch | none, in G and D
    loss: str = "lsgan"  # lsgan | vanilla
    cycle_weight: float = 10.0  # lambda of the cycle-consistency terms (eq. 3)
    identity_weight: float = 0.5  # identity loss weight, as a fraction of cycle_weight (sec. 5.2; 0: off)
    pool_size: int = 50  # generated images each D's history buffer holds (0: no buffer)
    lr: float = 2e-4  # Adam learning rate of both generators and both discriminators
    beta1: float = 0.5  # Adam beta1
    beta2: float = 0.999  # Adam beta2
    lr_decay_from: float = 0.5  # fraction of training at constant LR, then linear decay to 0 (1: no decay)
    schedule_steps: int = 0  # training length the LR schedule spans; 0: the run's (when the loop tells it)


def lr_factor(step: int, total: int, decay_from: float) -> float:
    """The learning-rate multiplier at 0-based `step` of `total`: 1 for the first `decay_from` of training,
    then linearly down to 0 at `total` (CycleGAN sec. 4). 1 when the length is unknown (total <= 0)."""
    if total <= 0:
        return 1.0
    start = int(round(decay_from * total))
    if step < start:
        return 1.0
    return max(0.0, 1.0 - (step - start) / max(total - start, 1))


class ImagePool:
    """A history of generated images for the discriminator (Shrivastava et al. 2017, sec. 2.3), as
    CycleGAN uses it: until it is full, each image is stored and returned; then each image is returned
    with probability 1/2, or else stored in place of a random stored image, which is returned instead.
    Random draws come from torch's global generator (restored on resume); the buffer is family state."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.images: torch.Tensor | None = None  # (size, C, H, W) float32, the first `count` rows filled
        self.count = 0

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size <= 0:
            return images
        images = images.detach()
        if self.images is None:
            self.images = torch.zeros((self.size, *images.shape[1:]), dtype=torch.float32, device=images.device)
        elif self.images.device != images.device:
            self.images = self.images.to(images.device)
        out = []
        for img in images:
            if self.count < self.size:
                self.images[self.count] = img
                self.count += 1
                out.append(img)
            elif float(torch.rand(())) < 0.5:
                i = int(torch.randint(self.size, ()))
                old = self.images[i].clone()
                self.images[i] = img
                out.append(old.to(img.dtype))
            else:
                out.append(img)
        return torch.stack(out)

    def state(self) -> torch.Tensor | None:
        return None if self.images is None or self.count == 0 else self.images[: self.count]

    def load(self, images: torch.Tensor | None) -> None:
        self.images, self.count = None, 0
        if images is None or images.shape[0] == 0:
            return
        n = min(int(images.shape[0]), self.size)
        self.images = torch.zeros((self.size, *images.shape[1:]), dtype=torch.float32, device=images.device)
        self.images[:n] = images[:n].float()
        self.count = n


class ResnetBlock(nn.Module):
    """R256: reflect-pad, 3x3 conv, norm, ReLU, reflect-pad, 3x3 conv, norm, plus the input."""

    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        bias = norm != "batch"
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            norm_layer(norm, channels),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            norm_layer(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """c7s1-ngf, d(2 ngf), d(4 ngf), R(4 ngf) x n_blocks, u(2 ngf), u(ngf), c7s1-out, tanh."""

    def __init__(
        self, in_channels: int, out_channels: int, ngf: int = 64, n_blocks: int = 9, norm: str = "instance"
    ) -> None:
        super().__init__()
        bias = norm != "batch"
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7, bias=bias),
            norm_layer(norm, ngf),
            nn.ReLU(True),
        ]
        for mult in (1, 2):  # two stride-2 down-samplings
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, 3, 2, 1, bias=bias),
                norm_layer(norm, ngf * mult * 2),
                nn.ReLU(True),
            ]
        layers += [ResnetBlock(ngf * 4, norm) for _ in range(n_blocks)]
        for mult in (4, 2):  # two fractionally strided convolutions back up
            layers += [
                nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, 2, 1, output_padding=1, bias=bias),
                norm_layer(norm, ngf * mult // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _Pair(nn.Module):
    """Two networks seen as one module (for one optimizer's gradient norm)."""

    def __init__(self, a: nn.Module, b: nn.Module) -> None:
        super().__init__()
        self.a, self.b = a, b


class CycleGAN(Family):
    name = "cyclegan"
    Config = CycleGANConfig
    data_kinds = ("unpaired",)
    capabilities = Capabilities(inputs="image", directions=DIRECTIONS, fully_convolutional=True, size_multiple=4)  # two stride-2 layers
    generator_nets = ("G_AB", "G_BA")
    ema: dict[str, str] = {}  # noqa: RUF012  (the paper keeps no average of G)
    adversarial = True
    loop_defaults = {"data": "day2night", "batch": 4, "xflip": True}  # noqa: RUF012
    def check(self, cfg: CycleGANConfig, spec: DataSpec) -> None:
        super().check(cfg, spec)
        if cfg.loss not in ("lsgan", "vanilla", "nonsaturating"):
            raise ConfigError(f"unknown loss '{cfg.loss}' for cyclegan: use lsgan or vanilla")
        if spec.resolution < 8:
            raise ConfigError(f"cyclegan needs images of 8 px or more, not {spec.resolution}")
        if spec.source_channels != spec.channels:
            raise ConfigError("cyclegan needs both domains with one channel count; prepare them at one --channels")
        try:
            norm_layer(cfg.norm, 1)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    @staticmethod
    def blocks(cfg: CycleGANConfig, spec: DataSpec) -> int:
        return cfg.n_blocks or (9 if spec.resolution >= 256 else 6)

    def build(self, cfg: CycleGANConfig, spec: DataSpec) -> Networks:
        """The networks, with the config they were built with: `n_blocks` 0 resolved (the saved config keeps 0)."""
        c, nb = spec.channels, self.blocks(cfg, spec)
        nl = patch_layers(spec.resolution, cfg.n_layers)
        nets = Networks(
            {
                "G_AB": ResnetGenerator(c, c, cfg.ngf, nb, cfg.norm),
                "G_BA": ResnetGenerator(c, c, cfg.ngf, nb, cfg.norm),
                "D_A": PatchDiscriminator(c, cfg.ndf, nl, cfg.norm),
                "D_B": PatchDiscriminator(c, cfg.ndf, nl, cfg.norm),
            },
            cfg=replace(cfg, n_blocks=nb), spec=spec,
        )
        nets.state["pools"] = {"A": ImagePool(cfg.pool_size), "B": ImagePool(cfg.pool_size)}
        nets.apply(init_normal)
        return nets

    def optimizers(self, nets: Networks, cfg: CycleGANConfig) -> dict[str, torch.optim.Optimizer]:
        """One Adam for both generators and one for both discriminators (the authors' code)."""
        betas = (cfg.beta1, cfg.beta2)
        g_params = [*nets["G_AB"].parameters(), *nets["G_BA"].parameters()]
        d_params = [*nets["D_A"].parameters(), *nets["D_B"].parameters()]
        return {
            "G": torch.optim.Adam(g_params, lr=cfg.lr, betas=betas),
            "D": torch.optim.Adam(d_params, lr=cfg.lr, betas=betas),
        }

    def train_step(self, nets: Networks, opts, batch: Batch, step: int, ctx: StepContext) -> dict[str, float]:
        cfg = nets.cfg
        G_AB, G_BA, D_A, D_B = nets["G_AB"], nets["G_BA"], nets["D_A"], nets["D_B"]
        real_a, real_b = batch["A"], batch["B"]

        # The learning rate for this step (constant, then linear decay), from the step alone.
        total = cfg.schedule_steps or ctx.total_steps
        scale = lr_factor(step, total, cfg.lr_decay_from)
        for opt in opts.values():
            for group in opt.param_groups:
                group["lr"] = cfg.lr * scale

        # Translate both ways and back.
        fake_b, fake_a = G_AB(real_a), G_BA(real_b)
        rec_a, rec_b = G_BA(fake_b), G_AB(fake_a)

        # Update both generators through frozen discriminators.
        set_trainable(D_A, False)
        set_trainable(D_B, False)
        loss_gan_ab = gan_g_loss(cfg.loss, D_B(ctx.augment(fake_b)))
        loss_gan_ba = gan_g_loss(cfg.loss, D_A(ctx.augment(fake_a)))
        loss_cycle = F.l1_loss(rec_a.float(), real_a.float()) + F.l1_loss(rec_b.float(), real_b.float())
        loss_g = loss_gan_ab + loss_gan_ba + cfg.cycle_weight * loss_cycle
        logs: dict[str, float] = {}
        if cfg.identity_weight > 0:  # G_AB should leave B images alone, G_BA A images (sec. 5.2)
            loss_idt = F.l1_loss(G_AB(real_b).float(), real_b.float()) + F.l1_loss(G_BA(real_a).float(), real_a.float())
            loss_g = loss_g + cfg.identity_weight * cfg.cycle_weight * loss_idt
            logs["loss_idt"] = loss_idt.item()
        opts["G"].zero_grad(set_to_none=True)
        ctx.backward(loss_g)
        grad_g = ctx.grad_norm(_Pair(G_AB, G_BA), opts["G"])
        ctx.step(opts["G"])
        set_trainable(D_A, True)
        set_trainable(D_B, True)

        # Update both discriminators on reals and on fakes drawn from their histories.
        pools = nets.state["pools"]
        pool_a, pool_b = pools["A"].query(fake_a), pools["B"].query(fake_b)
        d_real_a, d_fake_a = D_A(ctx.augment(real_a)), D_A(ctx.augment(pool_a))
        d_real_b, d_fake_b = D_B(ctx.augment(real_b)), D_B(ctx.augment(pool_b))
        ctx.observe_real(torch.cat([d_real_a.flatten(), d_real_b.flatten()]))
        loss_d_a = gan_d_loss(cfg.loss, d_real_a, d_fake_a)
        loss_d_b = gan_d_loss(cfg.loss, d_real_b, d_fake_b)
        opts["D"].zero_grad(set_to_none=True)
        ctx.backward(loss_d_a + loss_d_b)
        grad_d = ctx.grad_norm(_Pair(D_A, D_B), opts["D"])
        ctx.step(opts["D"])

        report = "lsgan" if cfg.loss == "lsgan" else "nonsaturating"
        logs.update(
            loss_D=(loss_d_a + loss_d_b).item(),
            loss_D_A=loss_d_a.item(),
            loss_D_B=loss_d_b.item(),
            loss_G=loss_g.item(),
            loss_G_AB=loss_gan_ab.item(),
            loss_G_BA=loss_gan_ba.item(),
            loss_cycle=loss_cycle.item(),
            D_real=0.5 * (losses.probabilities(report, d_real_a) + losses.probabilities(report, d_real_b)),
            D_fake=0.5 * (losses.probabilities(report, d_fake_a) + losses.probabilities(report, d_fake_b)),
            grad_D=grad_d,
            grad_G=grad_g,
            lr_scale=scale,
        )
        return logs

    def translate(self, nets: Networks, request: ImageRequest) -> torch.Tensor:
        G = self.generator_net(nets, "G_AB" if request.direction == "AtoB" else "G_BA")
        with eval_mode(G):
            return G(request.images)

    def preview_rows(self, nets: Networks, generate: Callable[[Request], torch.Tensor], batch: Batch) -> list[torch.Tensor]:
        """A | G_AB(A) | B | G_BA(B)."""
        a, b = batch["A"], batch["B"]
        n = min(a.shape[0], b.shape[0])
        a, b = a[:n], b[:n]
        return [a, generate(ImageRequest(a, direction="AtoB")), b, generate(ImageRequest(b, direction="BtoA"))]

    def state_dict(self, nets: Networks) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for side, pool in nets.state["pools"].items():
            images = pool.state()
            if images is not None:
                out[f"pool_{side}"] = images
        return out

    def load_state_dict(self, nets: Networks, state: dict[str, Any]) -> None:
        for side, pool in nets.state["pools"].items():
            pool.load(state.get(f"pool_{side}"))
