"""What a W space allows (StyleGAN2): style-mixing grids and projecting a real image into W.

Both need `Model.capabilities.style_mixing`; they use the family's `mapping(nets, z, labels, psi)` and
`synthesize(nets, ws, noise_mode)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .latents import labels_for_seeds, latents_for_seeds
from .model import Model


def _need_w(model: Model) -> None:
    if not model.capabilities.style_mixing:
        raise ConfigError(f"model '{model.family.name}' has no W space; style mixing and projection need --model stylegan2")


def style_mix(
    model: Model,
    row_seeds: Sequence[int],
    col_seeds: Sequence[int],
    styles: Sequence[int],
    *,
    trunc: float = 1.0,
    noise_mode: str = "const",
    label: int | str | None = None,
) -> torch.Tensor:
    """The style-mixing figure of Karras et al. (2019, fig. 3): images (R + 1, C + 1, C, H, W) where the
    first row holds the column seeds' images, the first column the row seeds' images (the top-left cell is
    white), and cell (r, c) takes row r's latent with the layers `styles` replaced by column c's."""
    _need_w(model)
    fam, nets = model.family, model.nets
    n_ws = fam.num_ws(nets)
    bad = [s for s in styles if not 0 <= s < n_ws]
    if bad:
        raise ConfigError(f"styles {bad} out of range: this network has layers 0-{n_ws - 1}")
    seeds = list(dict.fromkeys(list(row_seeds) + list(col_seeds)))
    z = latents_for_seeds(seeds, model.latent_shape).to(model.device)
    labels = labels_for_seeds(seeds, model.spec.num_classes, model.label_index(label))
    with torch.no_grad():
        ws = fam.mapping(nets, z, labels.to(model.device) if labels is not None else None, trunc)  # (S, num_ws, w_dim)
        w_of = {s: ws[i] for i, s in enumerate(seeds)}
        img = {s: fam.synthesize(nets, w_of[s][None], noise_mode)[0].cpu() for s in seeds}
        blank = torch.ones_like(next(iter(img.values())))
        rows = [[blank] + [img[c] for c in col_seeds]]
        idx = torch.tensor(list(styles), dtype=torch.long)
        for r in row_seeds:
            row = [img[r]]
            for c in col_seeds:
                w = w_of[r].clone()
                w[idx] = w_of[c][idx]
                row.append(fam.synthesize(nets, w[None], noise_mode)[0].cpu())
            rows.append(row)
    return torch.stack([torch.stack(r) for r in rows])


@dataclass
class Projection:
    w: torch.Tensor  # (num_ws, w_dim): the projected latent
    image: torch.Tensor  # (C, H, W) in [-1, 1]: its image
    loss: str  # which distance was optimised
    distance: float  # the final value of that distance
    frames: list[torch.Tensor] = field(default_factory=list)  # images along the optimisation


def _lpips(device: torch.device) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """LPIPS (Zhang et al. 2018) when the `lpips` package and its VGG weights are already on disk."""
    try:
        import lpips  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        net = lpips.LPIPS(net="vgg", verbose=False).to(device).eval()
    except Exception:  # weights missing and no network: fall back
        return None
    return lambda a, b: net(a, b).mean()


def _multiscale(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pixel distance at full and at 1/2, 1/4, 1/8 scales (mean squared error, averaged): the coarse scales
    give a smooth signal for layout and colour, the fine one for detail."""
    total, n = F.mse_loss(a, b), 1
    while a.shape[-1] >= 16 and n < 4:
        a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
        total, n = total + F.mse_loss(a, b), n + 1
    return total / n


def project(
    model: Model,
    target: torch.Tensor,
    *,
    steps: int = 500,
    lr: float = 0.1,
    seed: int = 0,
    loss: str = "auto",
    every: int = 0,
    progress: Callable[[int, float], None] | None = None,
) -> Projection:
    """Find w whose image is closest to `target` (1, C, H, W) in [-1, 1] (Karras et al. 2020a, sec. 5):
    start from the mean w, optimise one w for all layers with Adam (lr ramped up and down, cosine), with
    noise on w that fades out. `loss`: "lpips" (needs the lpips package and its weights), "pixel"
    (multi-scale pixel distance) or "auto" (LPIPS when available). `every` > 0 keeps a frame every so
    many steps (for a video of the optimisation)."""
    _need_w(model)
    fam, nets, dev = model.family, model.nets, model.device
    if target.shape[1:] != (model.spec.channels, model.spec.resolution, model.spec.resolution):
        raise ConfigError(f"target must be {model.spec.channels}x{model.spec.resolution}x{model.spec.resolution}")
    dist = _lpips(dev) if loss in ("auto", "lpips") else None
    if loss == "lpips" and dist is None:
        raise ConfigError("LPIPS is not available (pip install lpips, with its VGG weights on disk); use --loss pixel")
    name = "lpips" if dist is not None else "pixel (multi-scale MSE)"
    if dist is None:
        dist = _multiscale
    g = torch.Generator().manual_seed(seed)
    labels = labels_for_seeds([0], model.spec.num_classes)
    with torch.no_grad():
        z = torch.randn(4096, *model.latent_shape, generator=g).to(dev)
        lab = labels.expand(4096).to(dev) if labels is not None else None
        w_all = fam.mapping(nets, z, lab)[:, 0]  # (4096, w_dim)
        w_mean, w_std = w_all.mean(0), (w_all - w_all.mean(0)).square().sum(1).mean().sqrt()
    n_ws = fam.num_ws(nets)
    w = w_mean.clone()[None].requires_grad_(True)  # (1, w_dim), broadcast to every layer
    opt = torch.optim.Adam([w], lr=lr, betas=(0.9, 0.999))
    target = target.to(dev).float()
    frames: list[torch.Tensor] = []
    value = float("nan")
    for i in range(steps):
        t = i / max(steps - 1, 1)
        # Learning-rate ramp (up over the first 5 %, cosine down over the last 25 %), noise on w fading
        # out over the first 75 % (the StyleGAN2 projector's schedule).
        ramp = min(1.0, (1 - t) / 0.25) * min(1.0, t / 0.05)
        for group in opt.param_groups:
            group["lr"] = lr * (0.5 - 0.5 * np.cos(ramp * np.pi))
        noise_scale = float(w_std) * 0.05 * max(0.0, 1 - t / 0.75) ** 2
        wn = w + torch.randn(w.shape, generator=g).to(dev) * noise_scale
        img = fam.generator_net(nets).synthesis(wn[:, None].expand(1, n_ws, -1), noise_mode="const")
        d = dist(img.float(), target)
        opt.zero_grad(set_to_none=True)
        d.backward()
        opt.step()
        value = float(d.detach())
        if progress is not None:
            progress(i, value)
        if every and (i % every == 0 or i == steps - 1):
            frames.append(img.detach().clamp(-1, 1)[0].cpu())
    with torch.no_grad():
        ws = w.detach()[:, None].expand(1, n_ws, -1)[0]
        final = fam.synthesize(nets, ws[None], "const")[0].cpu()
    return Projection(w=ws.cpu(), image=final, loss=name, distance=value, frames=frames)
