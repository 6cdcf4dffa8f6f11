"""Two small image-input families that exist only in the tests: they prove that a paired translation
family and a super-resolution family plug into the real loop, checkpoints, previews, inference and CLI
through the seams alone (no special case anywhere in src/)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.families.base import Batch, Capabilities, DataSpec, Family, Networks, StepContext
from ganforge.spec import ImageRequest


@dataclass
class ToyConfig:
    nf: int = 8  # hidden channels
    lr: float = 2e-3  # Adam learning rate
    scale: int = 2  # super-resolution factor (toy-sr)
    crop: int = 8  # HR crop side (toy-sr)


class _ConvFamily(Family):
    Config = ToyConfig

    def optimizers(self, nets: Networks, cfg: ToyConfig) -> dict[str, torch.optim.Optimizer]:
        return {"G": torch.optim.Adam(nets["G"].parameters(), lr=cfg.lr)}

    def train_step(self, nets: Networks, opts, batch: Batch, step: int, ctx: StepContext) -> dict[str, float]:
        out = nets["G"](batch["source"])
        loss = F.l1_loss(out.float(), batch["target"].float())
        opts["G"].zero_grad(set_to_none=True)
        ctx.backward(loss)
        grad = ctx.grad_norm(nets["G"], opts["G"])
        ctx.step(opts["G"])
        return {"loss_L1": loss.item(), "grad_G": grad}

    def translate(self, nets: Networks, request: ImageRequest) -> torch.Tensor:
        return self.generator_net(nets)(request.images)


class ToyTranslator(_ConvFamily):
    """Paired translation (pix2pix's setting without the GAN): three convolutions and an L1 loss."""

    name = "toy-pix"
    data_kinds = ("paired",)
    capabilities = Capabilities(inputs="image", directions=("AtoB",), fully_convolutional=True)

    def build(self, cfg: ToyConfig, spec: DataSpec) -> Networks:
        g = nn.Sequential(
            nn.Conv2d(spec.source_channels, cfg.nf, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(cfg.nf, cfg.nf, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(cfg.nf, spec.channels, 3, 1, 1), nn.Tanh(),
        )
        return Networks({"G": g}, cfg=cfg, spec=spec)


class ToySuperRes(_ConvFamily):
    """2x super-resolution: convolutions and a pixel shuffle (ESPCN's layout, tiny)."""

    name = "toy-sr"
    data_kinds = ("superres",)
    capabilities = Capabilities(inputs="image", directions=("AtoB",), fully_convolutional=True)
    ema: dict[str, str] = {}  # noqa: RUF012  (no EMA copy: exercises the raw-generator path)

    def data_options(self, cfg: ToyConfig) -> dict[str, Any]:
        return {"scale": cfg.scale, "crop": cfg.crop}

    def build(self, cfg: ToyConfig, spec: DataSpec) -> Networks:
        r = spec.resolution // spec.source_resolution
        g = nn.Sequential(
            nn.Conv2d(spec.source_channels, cfg.nf, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(cfg.nf, spec.channels * r * r, 3, 1, 1), nn.PixelShuffle(r), nn.Tanh(),
        )
        return Networks({"G": g}, cfg=cfg, spec=spec)
