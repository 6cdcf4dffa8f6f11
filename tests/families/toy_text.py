"""A caption -> image family that exists only in the tests. It declares what the next families need and the
seams must carry without special cases: text conditioning (captions in the batch, prompts in requests) and a
frozen feature network inside its discriminator (attached at training, in no optimizer, not checkpointed).

G: z and a character-level sentence vector (mean of byte embeddings) -> MLP -> image. D: the frozen random
convolution's features -> linear logit + projection onto D's own sentence vector (Miyato & Koyama 2018), trained
with the hinge loss and mismatched captions as extra negatives (Reed et al. 2016), as DF-GAN's D is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.errors import ConfigError
from ganforge.families.base import Batch, Capabilities, DataSpec, Family, Networks, StepContext


@dataclass
class ToyTextConfig:
    nz: int = 8  # latent size
    emb: int = 16  # sentence vector size
    nf: int = 32  # hidden width
    lr: float = 2e-3  # Adam learning rate


class CharEncoder(nn.Module):
    """Captions as uint8 (B, L) UTF-8 bytes, zero-padded -> (B, emb): the mean of the bytes' embeddings."""

    def __init__(self, emb: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(256, emb)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        mask = (text != 0).float().unsqueeze(-1)  # (B, L, 1)
        e = self.embed(text.long()) * mask
        return e.sum(1) / mask.sum(1).clamp(min=1)


class ToyTextG(nn.Module):
    def __init__(self, cfg: ToyTextConfig, spec: DataSpec) -> None:
        super().__init__()
        self.text = CharEncoder(cfg.emb)
        self.shape = (spec.channels, spec.resolution, spec.resolution)
        n_out = spec.channels * spec.resolution**2
        self.mlp = nn.Sequential(nn.Linear(cfg.nz + cfg.emb, cfg.nf), nn.ReLU(), nn.Linear(cfg.nf, n_out), nn.Tanh())

    def forward(self, z: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([z, self.text(text)], 1)).view(-1, *self.shape)


class ToyTextD(nn.Module):
    """Heads over a frozen network's features; the network is passed in, never held (so never saved or trained)."""

    def __init__(self, cfg: ToyTextConfig, spec: DataSpec) -> None:
        super().__init__()
        self.text = CharEncoder(cfg.emb)
        n_feat = 8 * (spec.resolution // 2) ** 2
        self.fc = nn.Linear(n_feat, cfg.emb)
        self.out = nn.Linear(cfg.emb, 1)

    def forward(self, feats: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.fc(feats.flatten(1)), 0.2)
        return self.out(h).squeeze(1) + (h * self.text(text)).sum(1)


def frozen_features(channels: int) -> nn.Module:
    """A fixed random convolution (seeded): the stand-in for a pretrained feature network."""
    g = torch.Generator().manual_seed(1234)
    net = nn.Sequential(nn.Conv2d(channels, 8, 3, 2, 1), nn.LeakyReLU(0.2))
    with torch.no_grad():
        net[0].weight.copy_(torch.randn(net[0].weight.shape, generator=g) * 0.3)
        net[0].bias.zero_()
    return net.eval().requires_grad_(False)


class ToyText(Family):
    name = "toy-text"
    Config = ToyTextConfig
    capabilities = Capabilities(conditioning="text")
    adversarial = True

    def check(self, cfg: ToyTextConfig, spec: DataSpec) -> None:
        super().check(cfg, spec)
        if not spec.captioned:
            raise ConfigError("model 'toy-text' draws from captions; give it captioned data")

    def latent_shape(self, cfg: ToyTextConfig, spec: DataSpec) -> tuple[int, ...]:
        return (cfg.nz,)

    def build(self, cfg: ToyTextConfig, spec: DataSpec) -> Networks:
        torch.manual_seed(0)
        return Networks({"G": ToyTextG(cfg, spec), "D": ToyTextD(cfg, spec)}, cfg=cfg, spec=spec)

    def setup_training(self, nets: Networks, device: torch.device) -> None:
        nets.frozen["features"] = frozen_features(nets.spec.channels).to(device)

    def notes(self, nets: Networks) -> dict[str, str]:
        return {"features": "a fixed random convolution (frozen, not checkpointed)"}

    def optimizers(self, nets: Networks, cfg: ToyTextConfig) -> dict[str, torch.optim.Optimizer]:
        return {k: torch.optim.Adam(nets[k].parameters(), lr=cfg.lr, betas=(0.5, 0.999)) for k in ("G", "D")}

    def _d(self, nets: Networks, x: torch.Tensor, text: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return nets["D"](nets.frozen["features"](ctx.augment(x)), text)

    def train_step(self, nets: Networks, opts, batch: Batch, step: int, ctx: StepContext) -> dict[str, float]:
        real, text = batch["image"], batch["text"]
        n = real.shape[0]
        z = ctx.randn(n, nets.cfg.nz)
        wrong = text.roll(1, 0)  # mismatched captions: real images with another image's caption are negatives
        fake = nets["G"](z, text)
        d_real, d_wrong, d_fake = (self._d(nets, x, t, ctx) for x, t in ((real, text), (real, wrong), (fake.detach(), text)))
        loss_d = F.relu(1 - d_real).mean() + 0.5 * (F.relu(1 + d_wrong).mean() + F.relu(1 + d_fake).mean())
        opts["D"].zero_grad(set_to_none=True)
        ctx.backward(loss_d)
        ctx.step(opts["D"])
        loss_g = -self._d(nets, fake, text, ctx).mean()
        opts["G"].zero_grad(set_to_none=True)
        ctx.backward(loss_g)
        ctx.step(opts["G"])
        return {"loss_D": loss_d.item(), "loss_G": loss_g.item()}

    def sample(self, nets: Networks, z: torch.Tensor, labels=None, text: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator_net(nets)(z, text)
