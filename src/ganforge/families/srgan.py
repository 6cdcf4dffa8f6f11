"""SRGAN (Ledig et al. 2017): photo-realistic single-image super-resolution with a GAN.

G (SRResNet, fig. 4): a 9x9 convolution and PReLU; 16 residual blocks (3x3 conv, BN, PReLU, 3x3 conv,
BN, plus the input); a 3x3 conv and BN added to the first layer's output (the long skip); log2(scale)
stages of a 3x3 conv to 4x the channels, a pixel shuffle x2 (Shi et al. 2016) and PReLU; a 9x9
convolution to the image, tanh out. Fully convolutional: any input size, output = scale x input.
`residual` (the default) adds one change: G predicts a correction to the bicubic upsampling of its input
(global residual learning, Kim et al. 2016, VDSR), its last convolution starts at zero and there is no tanh,
so training starts at bicubic quality instead of below it (measured: the paper's form was 3.6 dB below
bicubic after 3 CPU minutes of PSNR training, see benchmarks/sr_quality.py); `residual=False` is the paper's G.
D (fig. 4): eight 3x3 convolutions, 64-64-128-128-256-256-512-512 channels, stride 2 on every second,
BN (not on the first), LeakyReLU 0.2; a dense layer of 1024, LeakyReLU, a dense layer to one logit.
Training: first a PSNR-oriented phase (`pretrain_steps`) in which only the pixel loss trains G (D is
not run nor updated: SRResNet), then the GAN phase with G's perceptual loss (eq. 3) = content loss
+ 1e-3 * adversarial loss -log D(G(x)). The content loss is the VGG19 feature loss (phi_5,4, feature
maps scaled by 1/12.75, sec. 2.2.1) when torchvision's ImageNet VGG19 weights are on this machine (the
torch hub cache; they are never downloaded), else the pixel loss alone: the logged key `content_vgg`
(1/0) and the checkpointed family state `content_loss` say which. Adam(1e-4, 0.9, 0.999) (sec. 3.2).

No EMA copy of G: G has batch norm, whose running statistics an average of weights does not match
(the loop recalibrates only noise families), and the paper evaluates the trained G itself.
Input and output images are in [-1, 1] (the paper feeds LR images in [0, 1]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import losses
from ..errors import ConfigError
from ..nn.image2image import eval_mode, init_normal
from ..spec import ImageRequest
from .adversarial import set_trainable
from .base import Batch, Capabilities, DataSpec, Family, Networks, StepContext

VGG19_FILE = "vgg19-dcbb9e9d.pth"  # torchvision's ImageNet VGG19 weights, as the torch hub cache names them
VGG54_LAYERS = 36  # vgg19.features[:36]: through conv5_4 and its ReLU, before the 5th max-pool (phi_5,4)
PRETRAIN_FALLBACK = 1000  # PSNR-phase steps when pretrain_steps is -1 and the loop does not give the run's length


@dataclass
class SRGANConfig:
    scale: int = 4  # upscaling factor: 2, 4 or 8 (pixel-shuffle x2 stages)
    crop: int = 96  # HR training crop side in pixels (the paper's 96; the LR input is crop / scale)
    ngf: int = 64  # generator width
    n_blocks: int = 16  # residual blocks in G
    ndf: int = 64  # discriminator width (its first layers; x8 at the last)
    d_dense: int = 1024  # discriminator's dense layer width
    pixel_loss: str = "l1"  # l1 | mse: the PSNR phase's loss (and the content loss without VGG)
    vgg: str = (
        "auto"  # auto: VGG19 feature loss when its weights are on this machine | off | on (an error without them)
    )
    vgg_weight: float = 1.0  # weight of the VGG feature loss (its features already scaled by 1/12.75)
    gan_pixel_weight: float = (
        -1.0
    )  # pixel-loss weight in the GAN phase; -1: 0 with the VGG loss (SRGAN-VGG54), 1 without
    adv_weight: float = 1e-3  # weight of the adversarial loss in G's perceptual loss (eq. 3)
    residual: bool = True  # G predicts a correction to bicubic upsampling (VDSR's global residual); False: the paper's G
    pretrain_steps: int = (
        -1
    )  # PSNR-only steps before the GAN phase; -1: half of training (1000 when the length is unknown)
    schedule_steps: int = 0  # training length for pretrain_steps = -1; 0: the run's (when the loop tells it)
    lr: float = 1e-4  # Adam learning rate of G and D
    beta1: float = 0.9  # Adam beta1
    beta2: float = 0.999  # Adam beta2


class ResidualBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, 1, 1, bias=False),
            nn.BatchNorm2d(c),
            nn.PReLU(c),
            nn.Conv2d(c, c, 3, 1, 1, bias=False),
            nn.BatchNorm2d(c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SRResNet(nn.Module):
    def __init__(
        self, in_channels: int, out_channels: int, scale: int = 4, ngf: int = 64, n_blocks: int = 16, residual: bool = False
    ) -> None:
        super().__init__()
        self.scale = scale
        self.residual = residual and in_channels == out_channels
        self.head = nn.Sequential(nn.Conv2d(in_channels, ngf, 9, 1, 4), nn.PReLU(ngf))
        self.body = nn.Sequential(
            *[ResidualBlock(ngf) for _ in range(n_blocks)],
            nn.Conv2d(ngf, ngf, 3, 1, 1, bias=False),
            nn.BatchNorm2d(ngf),
        )
        up: list[nn.Module] = []
        for _ in range(int(math.log2(scale))):
            up += [
                nn.Conv2d(ngf, ngf * 4, 3, 1, 1),
                nn.PixelShuffle(2),
                nn.PReLU(ngf),
            ]  # (B, 4c, h, w) -> (B, c, 2h, 2w)
        self.up = nn.Sequential(*up)
        if self.residual:
            last = nn.Conv2d(ngf, out_channels, 9, 1, 4)
            nn.init.zeros_(last.weight)  # starts as bicubic upsampling
            nn.init.zeros_(last.bias)
            self.tail = nn.Sequential(last)
        else:
            self.tail = nn.Sequential(nn.Conv2d(ngf, out_channels, 9, 1, 4), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        y = self.tail(self.up(h + self.body(h)))
        if self.residual:  # (B, C, h, w) -> (B, C, scale*h, scale*w), plus the learned correction
            y = y + F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
            if not self.training:
                y = y.clamp(-1.0, 1.0)  # images leave G in [-1, 1]; training sees the unclamped sum (gradients)
        return y


def _conv_out(n: int, stride: int) -> int:
    return (n + 2 - 3) // stride + 1  # 3x3 convolution, padding 1


class SRDiscriminator(nn.Module):
    def __init__(self, in_channels: int, resolution: int, ndf: int = 64, dense: int = 1024) -> None:
        super().__init__()
        widths = [ndf, ndf, ndf * 2, ndf * 2, ndf * 4, ndf * 4, ndf * 8, ndf * 8]
        layers: list[nn.Module] = []
        side, cin = resolution, in_channels
        for i, w in enumerate(widths):
            stride = 2 if i % 2 else 1
            layers.append(nn.Conv2d(cin, w, 3, stride, 1, bias=i == 0))
            if i:
                layers.append(nn.BatchNorm2d(w))
            layers.append(nn.LeakyReLU(0.2, True))
            side, cin = _conv_out(side, stride), w
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(cin * side * side, dense), nn.LeakyReLU(0.2, True), nn.Linear(dense, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).flatten()  # (B,) logits


def vgg_weights_path() -> Path | None:
    """torchvision's VGG19 ImageNet weights in the torch hub cache, or None (nothing is downloaded)."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE
    return path if path.is_file() else None


def load_vgg_features(path: Path, device: torch.device) -> nn.Module:
    """VGG19's convolutional layers through conv5_4 + ReLU, frozen, from a local weights file."""
    from torchvision.models import vgg19

    net = vgg19(weights=None)
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.features[:VGG54_LAYERS].to(device).eval().requires_grad_(False)


class VGGLoss(nn.Module):
    """MSE between VGG19 phi_5,4 features of two images in [-1, 1], the features scaled by 1/12.75
    (Ledig et al. sec. 2.2.1 and their code), computed in full precision."""

    def __init__(self, features: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def _phi(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = ((x.float() + 1) / 2 - self.mean) / self.std  # [-1, 1] -> ImageNet-normalised
        return self.features(x) / 12.75

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self._phi(real)
        return F.mse_loss(self._phi(fake), target)


class SRGAN(Family):
    name = "srgan"
    Config = SRGANConfig
    data_kinds = ("superres",)
    capabilities = Capabilities(inputs="image", directions=("AtoB",), fully_convolutional=True, size_multiple=1)
    ema: dict[str, str] = {}  # noqa: RUF012  (see the module docstring)
    adversarial = True
    loop_defaults = {"batch": 16}  # noqa: RUF012  (the paper's)
    def check(self, cfg: SRGANConfig, spec: DataSpec) -> None:
        super().check(cfg, spec)
        r = spec.resolution // max(spec.source_resolution, 1)
        if r < 2 or r & (r - 1) or r * spec.source_resolution != spec.resolution:
            raise ConfigError(
                f"srgan upscales by 2, 4 or 8 (pixel-shuffle x2 stages), not {spec.resolution}/{spec.source_resolution}"
            )
        if cfg.pixel_loss not in ("l1", "mse"):
            raise ConfigError(f"unknown pixel_loss '{cfg.pixel_loss}': use l1 or mse")
        if cfg.vgg not in ("auto", "on", "off"):
            raise ConfigError(f"vgg = '{cfg.vgg}': use auto, on or off")

    def data_options(self, cfg: SRGANConfig) -> dict[str, Any]:
        return {"scale": cfg.scale, "crop": cfg.crop}

    def build(self, cfg: SRGANConfig, spec: DataSpec) -> Networks:
        scale = spec.resolution // spec.source_resolution
        nets = Networks(
            {
                "G": SRResNet(spec.source_channels, spec.channels, scale, cfg.ngf, cfg.n_blocks, cfg.residual),
                "D": SRDiscriminator(spec.channels, spec.resolution, cfg.ndf, cfg.d_dense),
            },
            cfg=cfg, spec=spec,
        )
        nets.state["content_loss"] = "not trained yet"
        # N(0, 0.02) for D (DCGAN's); G keeps PyTorch's default (Kaiming-uniform) initialisation, which
        # a 16-block residual network trains from far faster than N(0, 0.02).
        nets["D"].apply(init_normal)
        return nets

    def setup_training(self, nets: Networks, device: torch.device) -> None:
        """The frozen VGG19 of the content loss (`nets.frozen["vgg"]`), when its weights are on this machine."""
        cfg: SRGANConfig = nets.cfg
        nets.frozen.pop("vgg", None)
        path = vgg_weights_path() if cfg.vgg != "off" else None
        if path is not None:
            nets.frozen["vgg"] = VGGLoss(load_vgg_features(path, device)).to(device)
            nets.state["content_loss"] = f"VGG19 phi_5,4 feature loss ({path})"
        elif cfg.vgg == "on":
            raise ConfigError(
                f"vgg=on needs torchvision's VGG19 ImageNet weights at {Path(torch.hub.get_dir()) / 'checkpoints' / VGG19_FILE}; "
                "put them there, or use vgg=auto to train with the pixel loss alone"
            )
        elif cfg.vgg == "off":
            nets.state["content_loss"] = f"pixel loss ({cfg.pixel_loss}): VGG loss turned off (vgg=off)"
        else:
            nets.state["content_loss"] = (
                f"pixel loss ({cfg.pixel_loss}): VGG19 ImageNet weights not found in "
                f"{Path(torch.hub.get_dir()) / 'checkpoints'} (never downloaded)"
            )

    def optimizers(self, nets: Networks, cfg: SRGANConfig) -> dict[str, torch.optim.Optimizer]:
        betas = (cfg.beta1, cfg.beta2)
        return {
            "G": torch.optim.Adam(nets["G"].parameters(), lr=cfg.lr, betas=betas),
            "D": torch.optim.Adam(nets["D"].parameters(), lr=cfg.lr, betas=betas),
        }

    @staticmethod
    def pretrain_steps(cfg: SRGANConfig, ctx: StepContext) -> int:
        if cfg.pretrain_steps >= 0:
            return cfg.pretrain_steps
        total = cfg.schedule_steps or ctx.total_steps
        return total // 2 if total > 0 else PRETRAIN_FALLBACK

    @staticmethod
    def pixel_loss(cfg: SRGANConfig, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        if cfg.pixel_loss == "mse":
            return F.mse_loss(fake.float(), real.float())
        return F.l1_loss(fake.float(), real.float())

    def train_step(self, nets: Networks, opts, batch: Batch, step: int, ctx: StepContext) -> dict[str, float]:
        cfg = nets.cfg
        G, D = nets["G"], nets["D"]
        lr_img, hr = batch["source"], batch["target"]
        fake = G(lr_img)
        pixel = self.pixel_loss(cfg, fake, hr)
        vgg_loss = nets.frozen.get("vgg")
        use_vgg = vgg_loss is not None
        logs: dict[str, float] = {"content_vgg": float(use_vgg), "loss_pixel": pixel.item()}

        if step < self.pretrain_steps(cfg, ctx):
            # PSNR phase (SRResNet): the pixel loss alone trains G; D is neither run nor updated.
            opts["G"].zero_grad(set_to_none=True)
            ctx.backward(pixel)
            logs["grad_G"] = ctx.grad_norm(G, opts["G"])
            ctx.step(opts["G"])
            logs.update(loss_G=pixel.item(), gan_phase=0.0)
            return logs

        # GAN phase. Update D on HR images against detached SR images.
        set_trainable(D, True)
        d_real, d_fake = D(ctx.augment(hr)), D(ctx.augment(fake.detach()))
        ctx.observe_real(d_real)
        loss_d = losses.d_loss("nonsaturating", d_real, d_fake)
        opts["D"].zero_grad(set_to_none=True)
        ctx.backward(loss_d)
        logs["grad_D"] = ctx.grad_norm(D, opts["D"])
        ctx.step(opts["D"])

        # Update G through the frozen D: content loss + 1e-3 * adversarial loss (eq. 3).
        set_trainable(D, False)
        adv = losses.g_loss("nonsaturating", D(ctx.augment(fake)))  # -log D(G(x)), eq. 6
        pixel_w = cfg.gan_pixel_weight if cfg.gan_pixel_weight >= 0 else (0.0 if use_vgg else 1.0)
        content = pixel_w * pixel
        if vgg_loss is not None:
            with ctx.full_precision():
                vgg = vgg_loss(fake, hr)
            content = content + cfg.vgg_weight * vgg
            logs["loss_vgg"] = vgg.item()
        loss_g = content + cfg.adv_weight * adv
        opts["G"].zero_grad(set_to_none=True)
        ctx.backward(loss_g)
        logs["grad_G"] = ctx.grad_norm(G, opts["G"])
        ctx.step(opts["G"])
        set_trainable(D, True)
        logs.update(
            loss_D=loss_d.item(),
            loss_G=loss_g.item(),
            loss_content=content.item(),
            loss_adv=adv.item(),
            gan_phase=1.0,
            D_real=losses.probabilities("nonsaturating", d_real),
            D_fake=losses.probabilities("nonsaturating", d_fake),
        )
        return logs

    def translate(self, nets: Networks, request: ImageRequest) -> torch.Tensor:
        G = self.generator_net(nets)
        with eval_mode(G):
            return G(request.images)

    def state_dict(self, nets: Networks) -> dict[str, Any]:
        return {"content_loss": nets.state["content_loss"]}

    def load_state_dict(self, nets: Networks, state: dict[str, Any]) -> None:
        pass  # the note describes the session that trains; setup_training writes it again
