"""The alternating discriminator/generator update that the adversarial families share.

One call is one training step of Goodfellow et al.'s Algorithm 1 (with the usual non-saturating
generator loss where the family picks it): `len(d_batches)` discriminator updates on real samples and
detached fakes, then one generator update through a frozen discriminator. Families differ only in
their networks, their losses and their penalties, which they pass in an `Objective`.

With one discriminator update, the fakes made for it (and their graph) are reused for the generator
update, as in the DCGAN reference loop: one G forward per step. With several, each D update draws
its own fakes without a graph and the generator gets fresh noise.
"""

from __future__ import annotations

import contextlib
import math
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .. import losses
from ..errors import ConfigError
from ..nn.mlp import MLPDiscriminator, MLPGenerator, point_precision, sample_shape
from .base import DataSpec, Family, Networks, StepContext

Tensor = torch.Tensor
Labels = Tensor | None
# (real input, D(real), detached fakes, labels) -> (weighted penalty to add to D's loss, values to log)
Penalty = Callable[[Tensor, Tensor, Tensor, Labels], tuple[Tensor, dict[str, float]]]


@dataclass
class Objective:
    """What a family's adversarial step is made of, besides its networks."""

    d_loss: Callable[[Tensor, Tensor], Tensor]  # (D(x), D(G(z))) -> discriminator loss
    g_loss: Callable[[Tensor], Tensor]  # D(G(z)) -> generator loss
    penalty: Penalty | None = None  # a regulariser of D, computed in full precision (R1, gradient penalty)
    real_grad: bool = False  # the penalty differentiates D(x) with respect to x (R1)
    # How D's outputs are shown: "nonsaturating" / "lsgan" as probabilities D_real, D_fake;
    # "score" as raw mean outputs score_real, score_fake (hinge and Wasserstein critics).
    report: str = "nonsaturating"
    # Weight of the mode-seeking term (MSGAN, Mao et al. 2019, eq. 3) added to G's loss: fakes are made
    # in pairs (two z, the same label) and G is penalised by 1 / (|G(z1) - G(z2)| / |z1 - z2| + 1e-5),
    # so that a conditional G cannot ignore z and draw one image per label. 0: off.
    mode_seeking: float = 0.0


def adversarial_step(
    G: nn.Module,
    D: nn.Module,
    opts: dict[str, torch.optim.Optimizer],
    ctx: StepContext,
    d_batches: Sequence[tuple[Tensor, Labels]],
    nz: int,
    objective: Objective,
) -> dict[str, float]:
    """D updates, one per (real, labels) in `d_batches`, then a G update of the first batch's size
    and labels. Returns loss_D, loss_G, grad_D, grad_G, D(x)/D(G(z)) and the penalty's values."""
    if not d_batches:
        raise ValueError("adversarial_step needs at least one batch for the discriminator")
    reuse = len(d_batches) == 1
    logs: dict[str, float] = {}

    pairs = objective.mode_seeking > 0
    set_trainable(D, True)
    fake = z = None
    for real, labels in d_batches:
        # --batch-gpu: the batch in micro-batches whose gradients add up before the step (one part otherwise).
        parts = ctx.micro_batches(real.shape[0])
        keep = reuse and len(parts) == 1  # the G update reuses these fakes
        opts["D"].zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        seen_real, seen_fake = [], []
        for part in parts:
            r, lab = real[part], _rows(labels, part)
            w = r.shape[0] / real.shape[0]  # this part's share of the batch's mean loss
            z = ctx.randn(r.shape[0], nz, device=r.device)
            fake_labels = _paired(lab) if pairs else lab
            if keep:
                fake = G(z, fake_labels)
            else:
                with torch.no_grad():
                    fake = G(z, fake_labels)
            real_in = r.detach().requires_grad_(True) if objective.real_grad else r
            # Every image D sees goes through the loop's augmentation (identity without --aug).
            real_seen, fake_seen = ctx.augment(real_in), ctx.augment(fake.detach())
            with ctx.eager() if objective.penalty is not None else contextlib.nullcontext():  # double backward: eager
                d_real, d_fake = D(real_seen, lab), D(fake_seen, fake_labels)
            ctx.observe_real(d_real)
            loss_d = objective.d_loss(d_real, d_fake)
            if objective.penalty is not None:
                with ctx.full_precision(), ctx.eager():
                    penalty, values = objective.penalty(real_in, d_real, fake.detach(), lab)
                loss_d = loss_d + penalty
                for k, v in values.items():
                    totals[k] = totals.get(k, 0.0) + v * w
            ctx.backward(loss_d if len(parts) == 1 else loss_d * w)
            totals["loss_D"] = totals.get("loss_D", 0.0) + loss_d.item() * w
            seen_real.append(d_real.detach())
            seen_fake.append(d_fake.detach())
        logs.update(totals)
        logs["grad_D"] = ctx.grad_norm(D, opts["D"])
        ctx.step(opts["D"])
    d_real, d_fake = torch.cat(seen_real), torch.cat(seen_fake)

    set_trainable(D, False)
    real, labels = d_batches[0]
    parts = ctx.micro_batches(real.shape[0])
    keep = reuse and len(parts) == 1
    terms: GeneratorTerms | None = ctx.generator_terms  # --constraint / --topk (None: neither)
    opts["G"].zero_grad(set_to_none=True)
    loss_g_total, ratios = 0.0, []
    for part in parts:
        lab = _rows(labels, part)
        n = part.stop - part.start
        w = n / real.shape[0]
        fake_labels = _paired(lab) if pairs else lab
        if not keep:
            z = ctx.randn(n, nz, device=real.device)
            fake = G(z, fake_labels)
        assert fake is not None and z is not None
        d_out = D(ctx.augment(fake), fake_labels)
        if terms is not None and terms.topk_floor > 0:
            # Top-k training (Sinha et al. 2020): only the k fakes D scores highest update G.
            k = terms.k(n)
            d_out = d_out[top_rows(d_out, k)]
            logs["topk"] = float(k)
        loss_g = objective.g_loss(d_out)
        if pairs and fake.shape[0] >= 2:
            ratio = _mode_seeking_ratio(fake, z)
            loss_g = loss_g + objective.mode_seeking / (ratio + 1e-5)
            ratios.append(ratio.item())
        if terms is not None and terms.constraints:
            with ctx.full_precision():
                penalty, values = terms.penalty(fake)
            loss_g = loss_g + penalty
            for key, v in values.items():
                logs[key] = logs.get(key, 0.0) + v * w
        ctx.backward(loss_g if len(parts) == 1 else loss_g * w)
        loss_g_total += loss_g.item() * w
    if ratios:
        logs["ms_ratio"] = sum(ratios) / len(ratios)
    logs["grad_G"] = ctx.grad_norm(G, opts["G"])
    ctx.step(opts["G"])
    set_trainable(D, True)

    logs["loss_G"] = loss_g_total
    if objective.report == "score":
        logs.update(score_real=d_real.float().mean().item(), score_fake=d_fake.float().mean().item())
    else:
        logs.update(D_real=losses.probabilities(objective.report, d_real), D_fake=losses.probabilities(objective.report, d_fake))
    return logs


@dataclass
class GeneratorTerms:
    """What the loop adds to G's update in every family that trains through `adversarial_step` (gan, dcgan,
    sngan, wgan-gp), from `--constraint` and `--topk` (built by `ganforge.curate.constraints.generator_terms`).

    - `constraints`: (name, weight, score) triples; `score` maps images in [0, 1] (N, C, H, W) to (N,) and is
      differentiable. Each adds weight * (-mean score) to G's loss (a higher score lowers the loss), logged as
      `loss_G_<name>` (the weighted term), so the studio's loss curves show it.
    - Top-k training (Sinha et al. 2020, Algorithm 1): G's adversarial loss is taken over the k fakes of the batch
      that D scores highest; k = max(gamma^epoch, floor) * batch, epoch = step / `epoch_steps` rounded down
      (the paper's gamma 0.99 and floor nu = 0.5). `topk_floor` 0: off. Logged as `topk` (k of the last part).
    `step` gives the loop's current step (0-based), so k follows a resumed or rolled-back run exactly."""

    constraints: list[tuple[str, float, Callable[[Tensor], Tensor]]] = field(default_factory=list)
    topk_floor: float = 0.0
    topk_gamma: float = 0.99
    epoch_steps: float = 1.0
    step: Callable[[], int] = lambda: 0

    def k(self, n: int) -> int:
        """How many of `n` fakes update G at the current step."""
        if self.topk_floor <= 0:
            return n
        epoch = math.floor(self.step() / max(self.epoch_steps, 1e-9))
        frac = max(self.topk_gamma**epoch, self.topk_floor)
        return max(1, min(n, math.ceil(frac * n - 1e-9)))

    def penalty(self, fake: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Sum of weight * (-mean score) over the constraints, for fakes in [-1, 1]; and each term to log."""
        images = (fake.float() + 1) / 2  # the scorers' [0, 1]
        total = fake.new_zeros((), dtype=torch.float32)
        values = {}
        for name, weight, score in self.constraints:
            term = -weight * score(images).float().mean()
            total = total + term
            values[f"loss_G_{name}"] = term.item()
        return total, values


def top_rows(d_out: Tensor, k: int) -> Tensor:
    """Indices of the k rows of D's output (per image: its mean over patches) that D scores highest."""
    scores = d_out.detach().float().reshape(d_out.shape[0], -1).mean(1)
    return scores.topk(k, largest=True, sorted=False).indices


def _rows(labels: Labels, part: slice) -> Labels:
    return None if labels is None else labels[part]


def mode_seeking_weight(value: float, spec: DataSpec) -> float:
    """A family's `mode_seeking` setting: below 0 means auto, MSGAN's 1.0 for conditional models (which
    otherwise learn to ignore z: on digits, within-class diversity 12 % of the data's) and 0 otherwise."""
    if value < 0:
        return 1.0 if spec.num_classes else 0.0
    return value


def _paired(labels: Labels) -> Labels:
    """Labels whose second half repeats the first, so that fakes come in same-label pairs."""
    if labels is None:
        return None
    h = labels.shape[0] // 2
    return torch.cat([labels[:h], labels[:h], labels[2 * h :]])


def _mode_seeking_ratio(fake: Tensor, z: Tensor) -> Tensor:
    """mean |G(z1) - G(z2)| / mean |z1 - z2| over the batch's pairs (MSGAN, eq. 3)."""
    h = fake.shape[0] // 2
    num = (fake[:h].float() - fake[h : 2 * h].float()).abs().mean()
    return num / (z[:h].float() - z[h : 2 * h].float()).abs().mean()


_PARAMS: weakref.WeakKeyDictionary[nn.Module, list[nn.Parameter]] = weakref.WeakKeyDictionary()


def set_trainable(module: nn.Module, flag: bool) -> None:
    """`module.requires_grad_(flag)` with the parameter list cached: walking the module tree three
    times a step cost ~5 % of a small MLP GAN's step. The networks do not change after `build`."""
    params = _PARAMS.get(module)
    if params is None:
        params = _PARAMS[module] = list(module.parameters())
    for p in params:
        p.requires_grad_(flag)


def standard(kind: str) -> Objective:
    """The objective of one of `losses.LOSSES`, without penalties."""
    return Objective(
        d_loss=lambda r, f: losses.d_loss(kind, r, f),
        g_loss=lambda f: losses.g_loss(kind, f),
        report=kind if kind in ("nonsaturating", "lsgan") else "score",
    )


def gradient_penalty(D: nn.Module, weight: float) -> Penalty:
    """WGAN-GP's penalty on interpolates of real and fake samples (Gulrajani et al. 2017, eq. 3), weighted."""

    def penalty(real: Tensor, d_real: Tensor, fake: Tensor, labels: Labels) -> tuple[Tensor, dict[str, float]]:
        gp = losses.gradient_penalty(D, real, fake, labels)
        return weight * gp, {"gp": gp.item()}

    return penalty


class AdversarialFamily(Family):
    """What the G/D families share besides the step: two Adam optimisers, sampling from the EMA
    generator, and the power-of-two resolution check of the convolutional ones."""

    adversarial = True
    accumulates = True

    def learning_rates(self, cfg: Any) -> dict[str, float]:
        """G's and D's learning rates: `lr` for both. Families whose Config has `lr_g` / `lr_d` override this
        (a setting that is not 0 replaces `lr` for its network)."""
        lr = self.learning_rate(cfg)
        return {"G": lr, "D": lr}

    def optimizers(self, nets: Networks, cfg: Any) -> dict[str, torch.optim.Optimizer]:
        """Adam(lr, (beta1, beta2)) for G and D, at their `learning_rates`."""
        betas = (cfg.beta1, cfg.beta2)
        return {name: torch.optim.Adam(nets[name].parameters(), lr=lr, betas=betas) for name, lr in self.learning_rates(cfg).items()}

    def sample(self, nets: Networks, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        with point_precision(nets.spec, z.device):
            return self.generator_net(nets)(z, labels)

    @staticmethod
    def point_nets(nz: int, width: int, layers: int, spec: DataSpec, **d_options: Any) -> dict[str, nn.Module]:
        """MLP G and D for point data (the toy experiments of the WGAN-GP and SN-GAN papers)."""
        shape = sample_shape(spec)
        return {"G": MLPGenerator(nz, shape, width, layers), "D": MLPDiscriminator(math.prod(shape), width, layers, **d_options)}

    def check_resolution(self, spec: DataSpec) -> None:
        r = spec.resolution
        if spec.kind == "image" and (r < 8 or r > 1024 or r & (r - 1)):
            raise ConfigError(
                f"{self.name} needs a power-of-two resolution from 8 to 1024, not {r}; use --resolution 32, 64 or 128"
            )
