"""DF-GAN (Tao et al., CVPR 2022): caption -> image in one stage, at CPU size.

G: z (nz) -> linear -> 4x4 -> [upsample x2, DFBlock, conv3x3, DFBlock, conv3x3, + 1x1 shortcut] x log2(R/4)
-> LeakyReLU, conv3x3 (tanh with `output=tanh`). A DFBlock (deep text-image fusion, sec. 3.3) is two stacked (affine, LeakyReLU 0.2)
pairs: the affine scales and shifts each channel of G's features by gamma, beta predicted from the condition by
small MLPs (Linear, ReLU, Linear; gamma starts at 1, beta at 0). The condition is [z, sentence vector], as in the
authors' released code (the paper's fig. 4 shows the sentence alone; `fuse_noise=False` gives that).
D (one-way, sec. 3.2): conv3x3, then residual stride-2 blocks (conv4x4/2, LeakyReLU, conv3x3, LeakyReLU, added
with a learned scale that starts at 0 to an average-pooled 1x1 shortcut) down to 4x4; the features concatenated
with the sentence vector replicated over the 4x4 grid -> conv3x3, LeakyReLU, conv4x4 -> one logit.
Losses (eq. 1-2): hinge, with real images under mismatched captions as a third kind of negative (Reed et al.
2016: D must judge the pair, not only the image); D's fake and mismatched terms weigh 1/2 each. The
matching-aware gradient penalty (MA-GP, eq. 3) is k * E[(||grad_x D(x, e)|| + ||grad_e D(x, e)||)^p] on real
images with their matching sentences, k = 2, p = 6; the code computes the norm of the concatenated gradient,
as the authors' code does. Adam(1e-4 G, 4e-4 D, betas 0.0, 0.9) (sec. 4).
G and D read the sentence vector at unit length x sqrt(dim) (`unit_sentence`).
Where this departs from the paper, by measurement at CPU budgets (64 kimg on emoji, `benchmarks/text_to_image.py`):
- `match_weight` 1: AttnGAN's DAMSM term (Xu et al. 2018, eq. 7) in G's loss, the sentence matching loss of its
  images under the image encoder pretrained with the text encoder (frozen); DF-GAN's paper drops it (0). Held-out
  R-precision 0.130 with it; see the README for the run without it.
- `output` linear: G's last layer unbounded while training, clamped to [-1, 1] when sampling (`tanh`: the
  paper's). A 48 kimg run with tanh ended in all-white images with G's gradient at 6e-5 (saturated).
- widths 16 (`ngf`, `ndf`): 2.4x the images per second of 32 (85 against 35 img/s), which a CPU budget needs more than width.
`ca`: StackGAN's conditioning augmentation (Zhang et al. 2017, sec. 3.1): the sentence vector -> mean and
log-variance of a Gaussian; G is conditioned on a sample during training (the mean when generating), and a KL
term to N(0, I) joins G's loss.

Text encoder: `ganforge.nn.text_encoder` (hashed character n-grams per word, a bi-GRU; no download), pretrained
in this family's own first `text_steps` steps with DAMSM's sentence matching loss against a small image CNN on
the run's own image-caption pairs, then frozen (no gradient, no optimizer step) while G and D train. It is a
network of the run ("E"), checkpointed with it, so `generate --prompt` needs only the run folder; the words it
saw while training (every step's captions) are kept as run state, and a prompt's other words are named in a
warning. It is not one of
`Networks.frozen` (those are rebuilt from a package, never from the run's data).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, UnseenWordsWarning
from ..nn.text_encoder import ImageEncoder, TextEncoder, matching_loss, unseen_words, words
from ..spec import decode_text
from .adversarial import set_trainable
from .base import Batch, Capabilities, DataSpec, Family, Networks, StepContext

TEXT_STEPS_FALLBACK = 500  # encoder pretraining steps when text_steps is -1 and the run's length is unknown
TEXT_STEPS_MAX = 1000  # ...and at most this many when it is known (a fifth of the run)


@dataclass
class DFGANConfig:
    nz: int = 100  # latent size (the paper's 100)
    ngf: int = 16  # generator width at the output resolution (x2 per halving, at most x8); CPU-sized
    ndf: int = 16  # discriminator width at the input resolution (x2 per halving, at most x8); CPU-sized
    sent_dim: int = 64  # sentence vector size (the paper's 256 for CUB)
    fuse_noise: bool = True  # the affine MLPs read [z, sentence] (the authors' code); False: the sentence alone
    ca: bool = False  # StackGAN's conditioning augmentation (sentence -> Gaussian, KL term in G's loss)
    kl_weight: float = 1.0  # weight of the CA KL term (StackGAN's lambda = 1)
    output: str = "linear"  # G's last activation: linear (unbounded in training, clamped when sampling) | tanh (the paper's)
    # AttnGAN's DAMSM term in G's loss (Xu et al. 2018, eq. 7, their lambda 5; DF-GAN drops it): weight x the
    # sentence matching loss of G's images, read by the image encoder trained with the text encoder, against
    # their captions. 0: off (the paper's DF-GAN). Measured at 64 kimg on emoji (benchmarks/text_to_image.py):
    # held-out R-precision 0.130 with it (shuffled 0.009); see the README for the run without it.
    match_weight: float = 1.0
    gp_weight: float = 2.0  # MA-GP weight k (the paper's 2)
    gp_power: float = 6.0  # MA-GP power p (the paper's 6)
    text_steps: int = (
        -1
    )  # encoder pretraining steps; -1: half of the run, at most 1000 (500 when the length is unknown)
    text_buckets: int = 4096  # hashed n-gram buckets of the text encoder
    text_lr: float = 1e-3  # Adam learning rate of the text and image encoders (pretraining)
    lr: float = 1e-4  # generator learning rate (the paper's)
    lr_d: float = 4e-4  # discriminator learning rate (the paper's)
    beta1: float = 0.0  # Adam beta1 (the paper's)
    beta2: float = 0.9  # Adam beta2 (the paper's)


def unit_sentence(s: torch.Tensor) -> torch.Tensor:
    """Sentence vectors as G and D read them: unit length times sqrt(dim), entries of order 1 like z's. The
    encoder is trained under cosine similarity (DAMSM), so only their direction means anything; their raw
    norms came out near 0.2 (entries ~0.03), which left G blind to the text next to z (measured: 4 prompts, 4
    identical grids after 64 kimg)."""
    return F.normalize(s.float(), dim=1).to(s.dtype) * math.sqrt(s.shape[1])


def _width(base: int, res: int, out_res: int) -> int:
    return base * min(8, out_res // res)


class Affine(nn.Module):
    """Channel-wise gamma * h + beta, with gamma and beta predicted from the condition (DF-GAN, eq. 4)."""

    def __init__(self, cond: int, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Sequential(nn.Linear(cond, channels), nn.ReLU(), nn.Linear(channels, channels))
        self.beta = nn.Sequential(nn.Linear(cond, channels), nn.ReLU(), nn.Linear(channels, channels))
        for mlp, bias in ((self.gamma, 1.0), (self.beta, 0.0)):  # the identity at the start, as in the authors' code
            nn.init.zeros_(mlp[2].weight)
            nn.init.constant_(mlp[2].bias, bias)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.gamma(c)[:, :, None, None] * h + self.beta(c)[:, :, None, None]  # (B, C, H, W)


class DFBlock(nn.Module):
    """Deep text-image fusion: (affine, LeakyReLU) twice."""

    def __init__(self, cond: int, channels: int) -> None:
        super().__init__()
        self.a1, self.a2 = Affine(cond, channels), Affine(cond, channels)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.a1(h, c), 0.2)
        return F.leaky_relu(self.a2(h, c), 0.2)


class GBlock(nn.Module):
    def __init__(self, cond: int, cin: int, cout: int) -> None:
        super().__init__()
        self.fuse1, self.conv1 = DFBlock(cond, cin), nn.Conv2d(cin, cout, 3, 1, 1)
        self.fuse2, self.conv2 = DFBlock(cond, cout), nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        r = self.conv2(self.fuse2(self.conv1(self.fuse1(h, c)), c))
        return self.skip(h) + r


class CondAug(nn.Module):
    """StackGAN's conditioning augmentation: sentence -> (mu, log-variance) of a Gaussian over conditions."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, 2 * dim)

    def forward(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = F.leaky_relu(self.fc(s), 0.2).chunk(2, 1)
        return mu, logvar


class Generator(nn.Module):
    def __init__(self, cfg: DFGANConfig, spec: DataSpec) -> None:
        super().__init__()
        R = spec.resolution
        self.nz, self.fuse_noise = cfg.nz, cfg.fuse_noise
        cond = cfg.sent_dim + (cfg.nz if cfg.fuse_noise else 0)
        self.ca = CondAug(cfg.sent_dim) if cfg.ca else None
        c0 = _width(cfg.ngf, 4, R)
        self.fc = nn.Linear(cfg.nz, c0 * 16)
        blocks, res, cin = [], 4, c0
        while res < R:
            res *= 2
            cout = _width(cfg.ngf, res, R)
            blocks.append(GBlock(cond, cin, cout))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.to_rgb = nn.Conv2d(cin, spec.channels, 3, 1, 1)
        self.tanh = cfg.output == "tanh"

    def condition(self, s: torch.Tensor, eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The sentence as G reads it, and the KL term of CA (0 without CA). `eps` samples CA's Gaussian
        (training); without it the mean is used (generation: the same seed and prompt give the same image)."""
        if self.ca is None:
            return s, s.new_zeros(())
        mu, logvar = self.ca(s)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()  # KL(N(mu, sigma) || N(0, I))
        c = mu if eps is None else mu + eps * (0.5 * logvar).exp()
        return c, kl

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """z (B, nz) and the condition (B, sent_dim) from `condition` -> images (B, C, R, R) in [-1, 1]."""
        cond = torch.cat([z, c], 1) if self.fuse_noise else c
        h = self.fc(z).view(z.shape[0], -1, 4, 4)  # (B, C0, 4, 4)
        for block in self.blocks:
            h = block(h, cond)
        x = self.to_rgb(F.leaky_relu(h, 0.2))
        return torch.tanh(x) if self.tanh else x


class DBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.res = nn.Sequential(
            nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.LeakyReLU(0.2),
        )  # fmt: skip
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.skip(x), 2) + self.gamma * self.res(x)


class Discriminator(nn.Module):
    """One-way D: image features and the sentence vector -> one logit per pair."""

    def __init__(self, cfg: DFGANConfig, spec: DataSpec) -> None:
        super().__init__()
        R = spec.resolution
        self.conv_img = nn.Conv2d(spec.channels, cfg.ndf, 3, 1, 1)
        blocks, res, cin = [], R, cfg.ndf
        while res > 4:
            res //= 2
            cout = cfg.ndf * min(8, R // res)
            blocks.append(DBlock(cin, cout))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.joint = nn.Sequential(
            nn.Conv2d(cin + cfg.sent_dim, 2 * cfg.ndf, 3, 1, 1, bias=False), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * cfg.ndf, 1, 4, 1, 0, bias=False),
        )  # fmt: skip

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.conv_img(x))  # (B, C, 4, 4)
        s = s[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])  # (B, S, 4, 4)
        return self.joint(torch.cat([h, s], 1)).flatten()  # (B,)


def ma_gp(d_out: torch.Tensor, images: torch.Tensor, sents: torch.Tensor, weight: float, power: float) -> torch.Tensor:
    """Matching-aware gradient penalty (DF-GAN eq. 3): weight * E[||(grad_x D, grad_e D)||^power] at real
    images x with their matching sentence vectors e (both must require grad and be D's inputs)."""
    gx, ge = torch.autograd.grad(d_out.sum(), (images, sents), create_graph=True)
    norm = torch.cat([gx.flatten(1), ge.flatten(1)], 1).pow(2).sum(1).add(1e-12).sqrt()  # (B,)
    return weight * norm.pow(power).mean()


def mismatched(text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each example, the index of another example's caption (the batch rolled by one), and a mask of the
    pairs that really mismatch (False where the two captions are the same text)."""
    idx = torch.roll(torch.arange(len(text), device=text.device), 1)
    return idx, (text[idx] != text).any(1)


class DFGAN(Family):
    name = "dfgan"
    Config = DFGANConfig
    data_kinds = ("image",)
    capabilities = Capabilities(conditioning="text")
    adversarial = True
    generator_nets: ClassVar[tuple[str, ...]] = ("G", "E")
    ema: ClassVar[dict[str, str]] = {"G": "G_ema"}
    loop_defaults: ClassVar[dict[str, Any]] = {"batch": 32}

    def check(self, cfg: DFGANConfig, spec: DataSpec) -> None:
        super().check(cfg, spec)
        r = spec.resolution
        if r < 8 or r > 256 or r & (r - 1):
            raise ConfigError(
                f"dfgan needs a power-of-two resolution from 8 to 256, not {r}; use --resolution 32 or 64"
            )
        if cfg.output not in ("tanh", "linear"):
            raise ConfigError(f"dfgan: output is tanh or linear, not {cfg.output!r}")
        if not spec.captioned:
            raise ConfigError(
                "model 'dfgan' draws images from captions; give it captioned data (--data emoji, "
                "prepare --captions captions.csv, or an hf: dataset with a text column)"
            )
        if cfg.match_weight < 0:
            raise ConfigError(f"dfgan: match_weight must be >= 0 (AttnGAN's 5; 0: off), not {cfg.match_weight}")
        if cfg.gp_power <= 0 or cfg.gp_weight < 0:
            raise ConfigError("dfgan: gp_weight must be >= 0 and gp_power > 0 (the paper's 2 and 6)")

    def latent_shape(self, cfg: DFGANConfig, spec: DataSpec) -> tuple[int, ...]:
        return (cfg.nz,)

    def label_dependent(self, net: str, key: str) -> bool:
        return False  # nothing depends on class labels

    def build(self, cfg: DFGANConfig, spec: DataSpec) -> Networks:
        nets = Networks(
            {
                "G": Generator(cfg, spec),
                "D": Discriminator(cfg, spec),
                "E": TextEncoder(cfg.sent_dim, cfg.text_buckets),
                "I": ImageEncoder(spec.channels, spec.resolution, cfg.sent_dim),
            },
            cfg=cfg, spec=spec,
        )  # fmt: skip
        nets.state["vocab"] = []
        return nets

    def notes(self, nets: Networks) -> dict[str, str]:
        steps = nets.cfg.text_steps
        when = f"its first {steps} steps" if steps >= 0 else "the first half of training (at most 1,000 steps)"
        return {
            "text_encoder": f"character n-gram + bi-GRU text encoder, trained on this data's captions in {when} "
            "(DAMSM sentence matching), then frozen; saved with the run"
        }

    def optimizers(self, nets: Networks, cfg: DFGANConfig) -> dict[str, torch.optim.Optimizer]:
        betas = (cfg.beta1, cfg.beta2)
        text_params = list(nets["E"].parameters()) + list(nets["I"].parameters())
        return {
            "G": torch.optim.Adam(nets["G"].parameters(), lr=cfg.lr, betas=betas),
            "D": torch.optim.Adam(nets["D"].parameters(), lr=cfg.lr_d, betas=betas),
            "E": torch.optim.Adam(text_params, lr=cfg.text_lr),
        }

    @staticmethod
    def text_steps(cfg: DFGANConfig, ctx: StepContext) -> int:
        if cfg.text_steps >= 0:
            return cfg.text_steps
        if ctx.total_steps:
            # A text step costs a tenth of a GAN step, and the matching loss still falls at 1,000 steps (5.4 at
            # 100, 2.3 at 300, 0.56 at 1,000; batch 32 on emoji): so half of a short run, up to TEXT_STEPS_MAX.
            return min(TEXT_STEPS_MAX, max(1, ctx.total_steps // 5, ctx.total_steps // 2))
        return TEXT_STEPS_FALLBACK

    def train_step(self, nets: Networks, opts, batch: Batch, step: int, ctx: StepContext) -> dict[str, float]:
        cfg: DFGANConfig = nets.cfg
        real, text = batch["image"], batch["text"]
        self._note_words(nets, text)
        if step < self.text_steps(cfg, ctx):
            return self._text_step(nets, opts, real, text, ctx)
        E, G, D = nets["E"], nets["G"], nets["D"]
        E.eval()
        with torch.no_grad():
            sent = unit_sentence(E(text))  # (B, S): the frozen encoder's sentence vectors, unit length x sqrt(S)
        n = real.shape[0]
        wrong_idx, wrong_mask = mismatched(text)

        # Discriminator: hinge on (real, match) vs (fake, match) and (real, mismatch); MA-GP on (real, match).
        set_trainable(D, True)
        z = ctx.randn(n, cfg.nz, device=real.device)
        eps = ctx.randn(n, cfg.sent_dim, device=real.device) if cfg.ca else None
        c, kl = G.condition(sent, eps)
        fake = G(z, c)
        real_in = real.detach().requires_grad_(True)
        sent_in = sent.detach().requires_grad_(True)
        with ctx.eager():  # double backward (MA-GP): eager under --compile
            d_real = D(ctx.augment(real_in), sent_in)
            # The negatives in one pass (D has no batch statistics): reals with mismatched sentences, then fakes.
            d_neg = D(ctx.augment(torch.cat([real, fake.detach()])), torch.cat([sent[wrong_idx], sent]))
            d_wrong, d_fake = d_neg[:n], d_neg[n:]
        ctx.observe_real(d_real)
        w = wrong_mask.float()
        loss_wrong = (F.relu(1 + d_wrong) * w).sum() / w.sum().clamp(min=1)
        loss_d = F.relu(1 - d_real).mean() + 0.5 * F.relu(1 + d_fake).mean() + 0.5 * loss_wrong
        with ctx.full_precision(), ctx.eager():
            gp = ma_gp(d_real.float(), real_in, sent_in, cfg.gp_weight, cfg.gp_power)
        opts["D"].zero_grad(set_to_none=True)
        ctx.backward(loss_d + gp)
        grad_d = ctx.grad_norm(D, opts["D"])
        ctx.step(opts["D"])

        # Generator: fool D on (fake, match), plus CA's KL term and the optional DAMSM term.
        set_trainable(D, False)
        d_gen = D(ctx.augment(fake), sent)
        loss_g = -d_gen.mean() + cfg.kl_weight * kl
        loss_match = None
        if cfg.match_weight > 0:
            img_enc = nets["I"]
            set_trainable(img_enc, False)  # frozen with the text encoder: only G learns from the term
            img_enc.eval()
            loss_match = matching_loss(img_enc(fake), sent, text)
            loss_g = loss_g + cfg.match_weight * loss_match
        opts["G"].zero_grad(set_to_none=True)
        ctx.backward(loss_g)
        grad_g = ctx.grad_norm(G, opts["G"])
        ctx.step(opts["G"])
        set_trainable(D, True)
        logs = {
            "loss_D": loss_d.item(), "loss_G": loss_g.item(), "ma_gp": gp.item(), "grad_D": grad_d, "grad_G": grad_g,
            "score_real": d_real.mean().item(), "score_fake": d_fake.mean().item(), "score_wrong": d_wrong.mean().item(),
        }  # fmt: skip
        if cfg.ca:
            logs["kl"] = kl.item()
        if loss_match is not None:
            logs["loss_G_match"] = loss_match.item()
        return logs

    @staticmethod
    def _note_words(nets: Networks, text: torch.Tensor) -> None:
        """Add the batch's words to the run's vocabulary (the words training saw, for the unseen-word warning)."""
        vocab = nets.state["vocab"]
        new = {w for caption in decode_text(text) for w in words(caption)} - set(vocab)
        if new:
            nets.state["vocab"] = sorted({*vocab, *new})

    def _text_step(
        self, nets: Networks, opts, real: torch.Tensor, text: torch.Tensor, ctx: StepContext
    ) -> dict[str, float]:
        """Pretrain the text encoder with the image CNN (DAMSM's sentence loss)."""
        nets["E"].train()
        set_trainable(nets["I"], True)  # (a resume may come from the GAN phase, where match_weight froze it)
        loss = matching_loss(nets["I"](real), nets["E"](text), text)
        opts["E"].zero_grad(set_to_none=True)
        ctx.backward(loss)
        ctx.step(opts["E"])
        return {"loss_match": loss.item()}

    # ---- generation ----------------------------------------------------------------------------
    def sentence(self, nets: Networks, text: torch.Tensor) -> torch.Tensor:
        """Captions uint8 (B, TEXT_BYTES) -> sentence vectors (B, sent_dim), warning about unseen words."""
        vocab = nets.state.get("vocab") or []
        if vocab:
            for caption in dict.fromkeys(decode_text(text)):
                missing = unseen_words(caption, vocab)
                if missing:
                    warnings.warn(
                        f"training never saw {', '.join(repr(w) for w in missing)} (in {caption!r}); the text "
                        "encoder reads them from their character n-grams alone",
                        UnseenWordsWarning,
                        stacklevel=2,
                    )
        return nets["E"](text)

    def sample_sentence(self, nets: Networks, z: torch.Tensor, sent: torch.Tensor) -> torch.Tensor:
        """Images from latents z (B, nz) and sentence vectors (B, sent_dim): the ONNX export's entry point."""
        G = self.generator_net(nets)
        c, _ = G.condition(unit_sentence(sent))
        return G(z, c).clamp(-1, 1)

    def sample(self, nets: Networks, z: torch.Tensor, labels=None, text: torch.Tensor | None = None) -> torch.Tensor:
        if text is None:
            raise ConfigError("model 'dfgan' is conditioned on text; give a prompt")
        return self.sample_sentence(nets, z, self.sentence(nets, text.to(z.device)))

    # ---- run state: the words the encoder saw ----------------------------------------------------
    def state_dict(self, nets: Networks) -> dict[str, Any]:
        return {"vocab": list(nets.state.get("vocab", []))}

    def load_state_dict(self, nets: Networks, state: dict[str, Any]) -> None:
        nets.state["vocab"] = list(state.get("vocab", []))
