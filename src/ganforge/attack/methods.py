"""The attacks, as small pure functions: a model (pixels in [0, 1] -> logits), images x (B, C, H, W) in [0, 1]
and labels y (B,) in; adversarial images in [0, 1] out. No I/O.

Every L∞ / L2 attack keeps its perturbation inside the ε-ball and its images inside [0, 1]: the last
operation of each step is the projection onto the ball followed by the clamp to [0, 1], and since x is itself
in [0, 1], clamping only moves a pixel toward x, so it never leaves the ball. The loss is the cross-entropy,
averaged over the batch as torchattacks does (the sign, or the per-image direction, of its gradient is what
the attacks use, so the batch mean changes nothing but is needed to match the library bit for bit).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from ..vocab import ATTACK_METHODS, ATTACK_NORMS

NORMS = ATTACK_NORMS
METHODS = ATTACK_METHODS
DEFAULT_EPS = dict(zip(ATTACK_NORMS, (8 / 255, 0.5)))  # the libraries' and RobustBench's usual budgets in [0, 1] pixels
MAX_EPS = dict(zip(ATTACK_NORMS, (1.0, 1000.0)))  # beyond these the ball holds every image (L∞) or is a typo (L2)
DEFAULT_STEPS = {"pgd": 20, "cw": 100, "latent": 100}
DIV_EPS = 1e-10  # added to L2 norms before dividing (torchattacks' `eps_for_division`)


def parse_eps(text: str | float) -> float:
    """ε from the command line: a fraction such as 8/255, or a number such as 0.5 or 3e-2."""
    s = str(text).strip()
    try:
        value = float(Fraction(s)) if "/" in s else float(s)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(
            f"--eps {s!r} is not a number: give a fraction such as 8/255 or a number such as 0.5"
        ) from None
    return value


def check_eps(eps: float, norm: str) -> float:
    """ε checked against the norm's range, or one ConfigError line."""
    if norm not in NORMS:
        raise ConfigError(f"unknown norm {norm!r}; use one of {', '.join(NORMS)}")
    if not math.isfinite(eps) or eps < 0 or eps > MAX_EPS[norm]:
        hint = (
            "pixels are in [0, 1], so L∞ ε goes from 0 to 1 (e.g. 8/255)"
            if norm == "linf"
            else (f"L2 ε goes from 0 to {MAX_EPS['l2']:g} (e.g. 0.5)")
        )
        raise ConfigError(f"ε = {eps:g} is out of range for {norm}: {hint}")
    return float(eps)


def default_step_size(eps: float, norm: str, steps: int) -> float:
    """PGD's step: ε/4 for L∞ (2/255 at ε = 8/255, torchattacks' default ratio; 20 steps travel 5ε), and
    2.5·ε/steps for L2 (Madry et al. 2018's rule: the iterates can reach the ball's far side)."""
    return eps / 4 if norm == "linf" else 2.5 * eps / max(1, steps)


def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The loss every attack raises: cross-entropy, batch mean."""
    return F.cross_entropy(model(x), y)


def _grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∇x of the loss (only x's gradient is computed, whatever the parameters' requires_grad)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(loss_fn(model, x, y), x)
    return g.detach()


def _norms(v: torch.Tensor) -> torch.Tensor:
    """Per-image L2 norms, shaped to broadcast over (B, C, H, W): (B, 1, 1, 1)."""
    return v.flatten(1).norm(p=2, dim=1).view(-1, *([1] * (v.ndim - 1)))


def _adam_step(opt: torch.optim.Optimizer) -> None:
    """`opt.step()` with gradients and optimiser state below float32's comfortable range set to 0: CW's tanh space
    saturates at pixels near 0 and 1, whose gradients (and Adam's squares of them) would otherwise become
    denormal floats, which CPUs compute 10-100x slower (measured: 4.1 s instead of 0.3 s for 30 steps)."""
    for group in opt.param_groups:
        for p in group["params"]:
            if p.grad is not None:
                p.grad.masked_fill_(p.grad.abs() < 1e-15, 0.0)  # its square stays a normal float32
    opt.step()
    for state in opt.state.values():
        for v in state.values():
            if torch.is_tensor(v) and v.is_floating_point() and v.ndim:
                v.masked_fill_(v.abs() < 1e-30, 0.0)


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str = "linf") -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015): x + ε·sign(∇x L) for L∞; for L2 the fast gradient
    method, x + ε·∇x L / ||∇x L||₂. One gradient, then the clamp to [0, 1]."""
    check_eps(eps, norm)
    g = _grad(model, x, y)
    step = g.sign() if norm == "linf" else g / (_norms(g) + DIV_EPS)
    return (x.detach() + eps * step).clamp(0, 1)


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str = "linf",
    steps: int = 20,
    step_size: float | None = None,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Projected gradient descent (Madry et al. 2018) on the loss: from a random point of the ball (uniform in
    the L∞ cube; for L2 a random direction at a uniformly drawn radius, as torchattacks), `steps` steps of
    `step_size` (default `default_step_size`) along sign(∇) (L∞) or ∇/||∇||₂ (L2), each followed by the
    projection onto the ε-ball around x and the clamp to [0, 1]. `generator` (CPU) seeds the random start."""
    check_eps(eps, norm)
    alpha = default_step_size(eps, norm, steps) if step_size is None else float(step_size)
    x = x.detach()
    if random_start:
        if norm == "linf":
            delta = (torch.rand(x.shape, generator=generator) * 2 - 1).to(x) * eps
        else:
            d = torch.randn(x.shape, generator=generator).to(x)
            r = torch.rand(x.shape[0], generator=generator).to(x).view(-1, *([1] * (x.ndim - 1)))
            delta = d / (_norms(d) + DIV_EPS) * r * eps
        x_adv = (x + delta).clamp(0, 1)
    else:
        x_adv = x.clone()
    for _ in range(steps):
        g = _grad(model, x_adv, y)
        if norm == "linf":
            x_adv = x_adv + alpha * g.sign()
            delta = (x_adv - x).clamp(-eps, eps)
        else:
            x_adv = x_adv + alpha * g / (_norms(g) + DIV_EPS)
            delta = x_adv - x
            delta = delta * torch.clamp(eps / _norms(delta), max=1.0)  # onto the L2 ball (0/0: inf -> 1)
        x_adv = (x + delta).clamp(0, 1)
    return x_adv


def cw(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float | None = None,
    c: float = 1.0,
    kappa: float = 0.0,
    steps: int = 100,
    lr: float = 0.01,
) -> torch.Tensor:
    """Carlini & Wagner's L2 attack (2017, sec. V.A): x' = (tanh(w) + 1) / 2 (so x' is in [0, 1] by
    construction), minimise ||x' - x||₂² + c·f(x') with f = max(Z_y - max_{i≠y} Z_i, -κ) (their f6, untargeted)
    by Adam, keeping per image the adversarial iterate of smallest L2 norm. Fixed c (no binary search over it;
    torchattacks' CW does the same). With `eps`, only iterates within ε count, and an image with none ends as
    its last iterate scaled into the ε-ball (its loss raised, maybe not misclassified); without `eps` such an
    image ends as its last iterate."""
    if eps is not None:
        check_eps(eps, "l2")
    x = x.detach()
    w = torch.atanh((2 * x - 1).clamp(-1 + 1e-6, 1 - 1e-6)).requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr)
    onehot = F.one_hot(y, num_classes=-1).bool()
    best = x.clone()
    best_l2 = torch.full((x.shape[0],), math.inf, device=x.device)
    last = x
    for _ in range(steps):
        with torch.enable_grad():
            adv = (torch.tanh(w) + 1) / 2
            l2sq = (adv - x).pow(2).flatten(1).sum(1)
            z = model(adv)
            if onehot.shape[1] != z.shape[1]:
                onehot = F.one_hot(y, num_classes=z.shape[1]).bool()
            real = z[onehot]  # (B,): the logit of the label
            other = z.masked_fill(onehot, -math.inf).max(1).values
            f = torch.clamp(real - other, min=-kappa)
            loss = l2sq.sum() + c * f.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        _adam_step(opt)
        with torch.no_grad():
            l2 = l2sq.detach().sqrt()
            ok = (z.argmax(1) != y) & (l2 < best_l2)
            if eps is not None:
                ok &= l2 <= eps
            best[ok] = adv.detach()[ok]
            best_l2[ok] = l2[ok]
            last = adv.detach()
    with torch.no_grad():
        failed = ~torch.isfinite(best_l2)
        if failed.any():
            delta = last - x
            if eps is not None:
                delta = delta * torch.clamp(eps / _norms(delta), max=1.0)
            best[failed] = (x + delta).clamp(0, 1)[failed]
    return best


def latent(
    classifier: nn.Module,
    generate: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
    z0: torch.Tensor,
    labels: torch.Tensor,
    *,
    steps: int = 100,
    lr: float = 0.05,
    radius: float = 0.1,
    weight: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generative (unrestricted) adversarial examples, Song et al. 2018 (sec. 3, untargeted): search the latent
    space of a conditional generator near z0, with the class it is asked for (`labels`) kept fixed, for images
    the classifier does not put in that class. Minimise, by Adam,

        log p(y | G(z, y))  +  weight · Σ_i max(|z_i - z0_i| - radius, 0)

    (their soft constraint: free within `radius` of z0 per coordinate, a linear cost beyond), keeping per image
    the misclassified iterate closest to z0 (L2), else the last iterate. `generate(z, labels)` returns images in
    [0, 1] and must be differentiable in z. Returns (z, images); the pixel change is not bounded by an ε: the
    image stays on the generator's manifold instead."""
    z0 = z0.detach()
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    best_z = z0.clone()
    best_d = torch.full((z0.shape[0],), math.inf, device=z0.device)
    for _ in range(steps + 1):
        with torch.enable_grad():
            logits = classifier(generate(z, labels))
            logp = F.log_softmax(logits, 1).gather(1, labels[:, None])[:, 0]
            over = ((z - z0).abs() - radius).clamp(min=0).flatten(1).sum(1)
            loss = (logp + weight * over).sum()
        with torch.no_grad():
            d = (z - z0).flatten(1).norm(dim=1)
            ok = (logits.argmax(1) != labels) & (d < best_d)
            best_z[ok] = z.detach()[ok]
            best_d[ok] = d[ok]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        _adam_step(opt)
    with torch.no_grad():
        failed = ~torch.isfinite(best_d)
        best_z[failed] = z.detach()[failed]
        return best_z, generate(best_z, labels)


def quantize_toward(clean: torch.Tensor, adv: torch.Tensor, eps: float | None, norm: str) -> torch.Tensor:
    """Adversarial images on the 8-bit grid, as a PNG stores them, still inside the ε-ball: the perturbation is
    rounded to whole 255ths, with the L∞ bound floored to whole 255ths; an image whose rounded L2 norm would pass
    ε is truncated toward the clean image instead (which only shrinks every pixel's change). Exact when `clean`
    is itself on the grid (images read from PNGs or uint8 data)."""
    c255 = (clean * 255).round()
    k = (adv * 255 - c255).round()  # perturbation in 255ths
    if eps is not None and norm == "linf":
        limit = math.floor(eps * 255 + 1e-6)
        k = k.clamp(-limit, limit)
    elif eps is not None:
        over = _norms(k / 255).flatten() > eps * (1 + 1e-6)
        if over.any():
            k[over] = torch.trunc(adv * 255 - c255)[over]
    return ((c255 + k).clamp(0, 255) / 255).to(adv.dtype)
