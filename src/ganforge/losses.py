"""Adversarial losses and regularisers as small pure functions (logits in, scalar losses out).

Every function takes raw discriminator outputs ("logits"/critic scores), computes in fp32, and
returns a scalar tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .vocab import LOSSES  # noqa: E402,F401  (the one definition)


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Discriminator loss on real and fake outputs (without any gradient penalty)."""
    real, fake = real.float(), fake.float()
    if kind == "nonsaturating":  # Goodfellow et al. 2014, eq. 1: -log D(x) - log(1 - D(G(z)))
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "hinge":  # Lim & Ye 2017; Miyato et al. 2018
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    if kind == "lsgan":  # Mao et al. 2017, eq. 9 with a=0, b=1
        return 0.5 * ((real - 1.0).square().mean() + fake.square().mean())
    if kind == "wgan-gp":  # Gulrajani et al. 2017, Algorithm 1 (critic: maximise E[D(x)] - E[D(G(z))])
        return fake.mean() - real.mean()
    raise ValueError(f"unknown loss {kind}")


def g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """Generator loss on the discriminator's outputs for generated samples."""
    fake = fake.float()
    if kind == "nonsaturating":  # Goodfellow et al. 2014, sec. 3: maximise log D(G(z))
        return F.softplus(-fake).mean()
    if kind in ("hinge", "wgan-gp"):
        return -fake.mean()
    if kind == "lsgan":  # Mao et al. 2017, eq. 9 with c=1
        return 0.5 * (fake - 1.0).square().mean()
    raise ValueError(f"unknown loss {kind}")


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, *args, **kw) -> torch.Tensor:
    """WGAN-GP two-sided penalty E[(||grad D(x_hat)||_2 - 1)^2] on random interpolates
    (Gulrajani et al. 2017, eq. 3). Extra args (e.g. labels) are passed to the critic."""
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    eps = torch.rand(shape, device=real.device, dtype=torch.float32)
    x_hat = (eps * real.detach().float() + (1 - eps) * fake.detach().float()).requires_grad_(True)
    out = critic(x_hat, *args, **kw).float()
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1.0).square().mean()


def r1_penalty(real_out: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1: ||grad_x D(x)||^2 on real data (Mescheder et al. 2018, eq. 9); `real` must require grad."""
    (grad,) = torch.autograd.grad(real_out.float().sum(), real, create_graph=True)
    return grad.float().square().flatten(1).sum(1).mean()


def probabilities(kind: str, out: torch.Tensor) -> float:
    """Mean 'probability of real' D assigns, for the progress line (sigmoid of the logit for the
    probabilistic losses; for least squares the raw output, which is regressed towards 0/1)."""
    if kind == "lsgan":
        return float(out.detach().float().mean())
    return float(torch.sigmoid(out.detach().float()).mean())


def grad_norm(module: torch.nn.Module) -> float:
    """Global L2 norm of a module's gradients (0 when it has none)."""
    grads = [p.grad.detach() for p in module.parameters() if p.grad is not None]
    if not grads:
        return 0.0
    return float(torch.stack([n.float() for n in torch._foreach_norm(grads)]).norm())
