"""Differentiable augmentation of everything the discriminator sees, for data-efficient GAN training.

Two published recipes, both written here in plain torch:

- ADA (Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data"): `AugmentPipe`
  applies a fixed, ordered list of transforms, each to each image independently with probability p
  (appendix B), and `AdaController` tunes p from the overfitting heuristic r_t = E[sign(D(real))]
  (sec. 3).
- DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"):
  `diff_augment` applies colour, translation and cutout to every image (their sec. 3.2).

Both are differentiable with respect to the images, so they go between G and D for the generator's
update too: D only ever sees augmented images, real or fake, which keeps the augmentations from
"leaking" into the generated distribution (ADA, sec. 2; for ADA as long as p stays below about 0.8).
Images are float tensors (N, C, H, W) in [-1, 1]; the parameter distributions and default strengths
follow the paper and the official implementation's defaults (facts only; no code is copied).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

# ADA transforms in the order of the paper's appendix B: pixel blitting, general
# geometric, colour, then image-space corruptions. Image-space filtering ('f') is not implemented.
BLIT = ("xflip", "rotate90", "xint")
GEOM = ("scale", "rotate", "aniso", "xfrac")
COLOR = ("brightness", "contrast", "lumaflip", "hue", "saturation")
CORRUPT = ("noise", "cutout")
TRANSFORMS = BLIT + GEOM + COLOR + CORRUPT

# Presets name the transforms switched on (probability multiplier 1); 'bgc' is the paper's default.
PRESETS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {
        "none": (),
        "blit": BLIT,
        "geom": GEOM,
        "color": COLOR,
        "noise": ("noise",),
        "cutout": ("cutout",),
        "bg": BLIT + GEOM,
        "bgc": BLIT + GEOM + COLOR,
        "bgcn": BLIT + GEOM + COLOR + ("noise",),
        "bgcnc": BLIT + GEOM + COLOR + CORRUPT,
    }
)

# Magnitudes (Karras et al. 2020, appendix B; the official defaults). Translations and cutout are
# relative to the image size; *_std of scale/aniso/contrast/saturation are log2 standard deviations;
# rotate_max and hue_max scale the angle range (1 = the full circle, uniform in [-pi, pi]).
DEFAULT_MAGNITUDES: MappingProxyType[str, float] = MappingProxyType(
    {
        "xint_max": 0.125,
        "scale_std": 0.2,
        "rotate_max": 1.0,
        "aniso_std": 0.2,
        "xfrac_std": 0.125,
        "brightness_std": 0.2,
        "contrast_std": 0.5,
        "hue_max": 1.0,
        "saturation_std": 1.0,
        "noise_std": 0.1,
        "cutout_size": 0.5,
    }
)

# Random-number layout of one AugmentPipe call: a coin per transform (rotation has two), then the
# uniform and normal parameters, by name.
_COINS = BLIT + ("scale", "rotate_pre", "aniso", "rotate_post", "xfrac") + COLOR + CORRUPT
_UNIFORMS = (
    "xflip",
    "rotate90",
    "xint_x",
    "xint_y",
    "rotate_pre",
    "rotate_post",
    "lumaflip",
    "hue",
    "cutout_x",
    "cutout_y",
)
_NORMALS = ("scale", "aniso", "xfrac_x", "xfrac_y", "brightness", "contrast", "saturation", "noise")

from .vocab import AUGMENTATIONS as AUGMENT_KINDS  # noqa: E402

DIFF_AUGMENT_POLICIES = ("color", "translation", "cutout")


# ----------------------------------------------------------------------------------------------
# Small matrix builders. Every argument is a (N,) tensor; results are batched homogeneous matrices.


def _mat3(a: Tensor, b: Tensor, tx: Tensor, c: Tensor, d: Tensor, ty: Tensor) -> Tensor:
    """[[a, b, tx], [c, d, ty], [0, 0, 1]] per sample."""
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([a, b, tx, c, d, ty, zero, zero, one], dim=-1).reshape(-1, 3, 3)  # (N, 3, 3)


def _scale2(sx: Tensor, sy: Tensor) -> Tensor:
    zero = torch.zeros_like(sx)
    return _mat3(sx, zero, zero, zero, sy, zero)


def _translate2(tx: Tensor, ty: Tensor) -> Tensor:
    zero, one = torch.zeros_like(tx), torch.ones_like(tx)
    return _mat3(one, zero, tx, zero, one, ty)


def _rotate2(cos: Tensor, sin: Tensor) -> Tensor:
    """Counter-clockwise rotation (in x-right, y-down pixel coordinates it turns clockwise on screen)."""
    zero = torch.zeros_like(cos)
    return _mat3(cos, -sin, zero, sin, cos, zero)


def _affine3(m: Tensor, t: Tensor) -> Tensor:
    """Homogeneous 4x4 colour transform from a (N, 3, 3) linear part and a (N, 3) offset."""
    n = m.shape[0]
    out = torch.zeros(n, 4, 4, dtype=m.dtype, device=m.device)
    out[:, :3, :3] = m
    out[:, :3, 3] = t
    out[:, 3, 3] = 1.0
    return out  # (N, 4, 4)


def _reflect_index(i: Tensor, n: int) -> Tensor:
    """Symmetric reflection of integer pixel indices into [0, n): ... 1 0 | 0 1 ... n-1 | n-1 n-2 ...
    (the same border rule as grid_sample's padding_mode='reflection' with align_corners=False)."""
    i = torch.remainder(i, 2 * n)
    return torch.where(i >= n, 2 * n - 1 - i, i)


def _blit(images: Tensor, m_inv: Tensor) -> Tensor:
    """Exact integer resampling (flips, quarter turns, whole-pixel shifts): a gather, no interpolation.

    m_inv maps centred output pixel coordinates to centred input coordinates. Its linear part is a
    signed permutation, so each source coordinate depends on only one output axis and the indices are
    built from (N, W) and (N, H) vectors; sources are rounded to the nearest pixel and reflected at the
    borders. Differentiable (the gradient is a scatter-add)."""
    n, c, h, w = images.shape
    m = m_inv.float()
    u = torch.arange(w, device=images.device, dtype=torch.float32) - (w - 1) / 2  # centred output x, (W,)
    v = torch.arange(h, device=images.device, dtype=torch.float32) - (h - 1) / 2  # centred output y, (H,)

    def source(row: int, size: int) -> Tensor:
        """Source index along one input axis, (N, H, W): from output x, or from output y after a quarter turn."""
        offset = m[:, row, 2:3] + (size - 1) / 2  # (N, 1)
        from_u = _reflect_index(torch.round(m[:, row, 0:1] * u + offset).long(), size)  # (N, W)
        from_v = _reflect_index(torch.round(m[:, row, 1:2] * v + offset).long(), size)  # (N, H)
        uses_v = (m[:, row, 0] == 0).reshape(n, 1, 1)
        return torch.where(uses_v, from_v.unsqueeze(2), from_u.unsqueeze(1))  # (N, H, W)

    index = (source(1, h) * w + source(0, w)).reshape(n, 1, h * w).expand(n, c, h * w)  # (N, C, H*W)
    return images.reshape(n, c, h * w).gather(2, index).reshape(n, c, h, w)


def _warp(images: Tensor, m_inv: Tensor) -> Tensor:
    """One bilinear resampling through a per-sample affine map, reflecting at the borders.

    Simplification of the paper's appendix B: the official pipeline pads, upsamples 2x with a wavelet
    low-pass filter, warps and downsamples to suppress aliasing; here we warp once with bilinear
    interpolation (F.grid_sample, padding_mode='reflection'), which is cheaper on a CPU and still has
    no black borders, but aliases slightly under strong minification."""
    n, c, h, w = images.shape
    # grid_sample's normalised coordinates (align_corners=False) are centred pixel coordinates times 2/size.
    to_norm = torch.diag(torch.tensor([2.0 / w, 2.0 / h, 1.0], device=images.device))
    to_pix = torch.diag(torch.tensor([w / 2.0, h / 2.0, 1.0], device=images.device))
    theta = (to_norm @ m_inv.float() @ to_pix)[:, :2, :]  # (N, 2, 3)
    grid = F.affine_grid(theta, [n, c, h, w], align_corners=False).to(images.dtype)  # (N, H, W, 2)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _apply_color(images: Tensor, m: Tensor) -> Tensor:
    """Apply a per-sample 4x4 homogeneous colour matrix to RGB (or its grey equivalent to L) images."""
    n, c, h, w = images.shape
    m = m.to(images.dtype)
    if c == 3:
        flat = images.reshape(n, 3, h * w)  # (N, 3, H*W)
        return torch.baddbmm(m[:, :3, 3:], m[:, :3, :3], flat).reshape(n, 3, h, w)
    if c == 1:
        # A grey pixel (x, x, x) stays grey under brightness/contrast/luma flip: y = x * rowsum + offset.
        gain = m[:, :3, :3].sum(dim=2).mean(dim=1).reshape(n, 1, 1, 1)
        offset = m[:, :3, 3].mean(dim=1).reshape(n, 1, 1, 1)
        return images * gain + offset
    # Two images stacked on channels, source first (a conditional D's input, e.g. pix2pix's source | image:
    # L+L, L+RGB for colourisation, RGB+RGB): each part gets the same colour transform, as the pair gets
    # the same geometric one.
    parts = {2: [1, 1], 4: [1, 3], 6: [3, 3]}.get(c)
    if parts is None:
        raise ValueError(f"colour augmentation needs 1 or 3 channels, or two such images stacked (2, 4, 6), got {c}")
    return torch.cat([_apply_color(x, m) for x in images.split(parts, dim=1)], dim=1)


# ----------------------------------------------------------------------------------------------
# ADA augmentation pipeline.


class AugmentPipe(torch.nn.Module):
    """ADA's augmentation pipeline (Karras et al. 2020, appendix B) for float (N, C, H, W) images in [-1, 1].

    Every enabled transform is applied to each image independently with probability p * strength
    (its own Bernoulli draw), in the paper's fixed order. The blit and geometric transforms of one
    image are composed into a single 3x3 matrix and resampled once; the colour transforms into a
    single 4x4 matrix applied to RGB. Images that only received blit transforms (flips, quarter turns,
    whole-pixel shifts) are resampled exactly by a gather; images that received a general geometric
    transform go through one bilinear warp with reflection padding (see `_warp` for how this
    simplifies the official 2x-upsampled filtered warp). With C == 1, hue and saturation are skipped
    (brightness, contrast and luma flip, which negates a grey image, still apply).

    preset: a key of PRESETS ('blit', 'geom', 'color', 'bg', 'bgc', ...). strengths: per-transform
    probability multipliers overriding the preset (e.g. xflip=0) and magnitudes (DEFAULT_MAGNITUDES,
    e.g. scale_std=0.1). p is a plain float (settable with a float or a 0-dim tensor); the module has
    no tensor state, so checkpoint p through `AdaController.state_dict()`. With p == 0 the input is
    returned unchanged and no work is done.
    """

    def __init__(self, preset: str = "bgc", p: float = 0.0, **strengths: float) -> None:
        super().__init__()
        if preset not in PRESETS:
            raise ValueError(f"unknown augmentation preset {preset!r}; choose one of {', '.join(PRESETS)}")
        unknown = sorted(set(strengths) - set(TRANSFORMS) - set(DEFAULT_MAGNITUDES))
        if unknown:
            raise ValueError(
                f"unknown augmentation setting(s) {', '.join(unknown)}; allowed: transforms "
                f"{', '.join(TRANSFORMS)} and magnitudes {', '.join(DEFAULT_MAGNITUDES)}"
            )
        self.preset = preset
        self.strength: dict[str, float] = {name: float(name in PRESETS[preset]) for name in TRANSFORMS}
        self.magnitude: dict[str, float] = dict(DEFAULT_MAGNITUDES)
        for key, value in strengths.items():
            (self.strength if key in self.strength else self.magnitude)[key] = float(value)
        self._p = 0.0
        self.p = p

    @property
    def p(self) -> float:
        """Augmentation probability (the paper's p), shared by all transforms."""
        return self._p

    @p.setter
    def p(self, value: float | Tensor) -> None:
        self._p = float(value)

    def extra_repr(self) -> str:
        on = [name for name, s in self.strength.items() if s > 0]
        return f"preset={self.preset!r}, p={self._p:.4f}, transforms={on}"

    def _active(self, names: tuple[str, ...]) -> bool:
        return any(self.strength[name] > 0 for name in names)

    def _draw(
        self, n: int, device: torch.device, generator: torch.Generator | None
    ) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]]:
        """All random numbers for a batch in three calls: a Bernoulli coin per transform and sample
        (appendix B: each transform has its own), and named U(0, 1) and N(0, 1) columns, (N,) each.

        Every column is drawn even for disabled transforms, so enabling one transform does not change
        the parameters another one gets for the same seed."""
        # Rotation is applied before and after the anisotropic scale, each with probability
        # 1 - sqrt(1 - p) so that P(any rotation) = p (appendix B).
        p_rot = 1 - math.sqrt(min(max(1 - self._p * self.strength["rotate"], 0.0), 1.0))
        probs = [p_rot if coin.startswith("rotate_") else self._p * self.strength[coin] for coin in _COINS]
        uniform = torch.rand(n, len(_COINS) + len(_UNIFORMS), device=device, generator=generator)
        normal = torch.randn(n, len(_NORMALS), device=device, generator=generator)
        coins = uniform[:, : len(_COINS)] < torch.tensor(probs, device=device)  # (N, coins)
        return (
            dict(zip(_COINS, coins.unbind(1))),
            dict(zip(_UNIFORMS, uniform[:, len(_COINS) :].unbind(1))),
            dict(zip(_NORMALS, normal.unbind(1))),
        )

    def forward(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Augment a batch; `generator` (optional, on the images' device) makes draws independent of the global RNG."""
        if self._p <= 0 or not self._active(TRANSFORMS):
            return images
        if images.ndim != 4:
            raise ValueError(f"expected images of shape (N, C, H, W), got {tuple(images.shape)}")
        dtype = images.dtype
        channels_last = images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous()
        # Work in NCHW float32/64: channels_last intermediates make the index and elementwise ops ~10x slower on CPU.
        x = (images if dtype in (torch.float32, torch.float64) else images.float()).contiguous()
        n, c, h, w = x.shape
        dev = x.device
        on, u, z = self._draw(n, dev, generator)
        mag, strength = self.magnitude, self.strength
        one = torch.ones(n, device=dev)

        def lognormal(name: str, std: float) -> Tensor:  # 2^N(0, std) where chosen, else 1
            return torch.where(on[name], torch.exp2(z[name] * std), one)

        def symmetric(name: str, coin: str, half_range: float) -> Tensor:  # U(-r, r) where chosen, else 0
            return (u[name] * 2 - 1) * half_range * on[coin]

        if self._active(BLIT) or self._active(GEOM):
            # Pixel blitting (appendix B, 'b'). Matrices map output pixels to input pixels (inverse transforms),
            # in pixel units centred on the image; right-multiplying applies the transforms in paper order.
            blit_inv = torch.eye(3, device=dev).expand(n, 3, 3)  # (N, 3, 3)
            if strength["xflip"] > 0:  # mirror with probability 1/2 once chosen
                flip = torch.floor(u["xflip"] * 2) * on["xflip"]
                blit_inv = blit_inv @ _scale2(1 - 2 * flip, one)
            if strength["rotate90"] > 0:  # k quarter turns, k uniform in 0..3
                k = (torch.floor(u["rotate90"] * 4) * on["rotate90"]).long()
                cos = torch.tensor([1.0, 0.0, -1.0, 0.0], device=dev)[k]  # exact, no 6e-17 leftovers
                sin = torch.tensor([0.0, 1.0, 0.0, -1.0], device=dev)[k]
                blit_inv = blit_inv @ _rotate2(cos, -sin)
            if strength["xint"] > 0:  # U(-xint_max, xint_max) of the size, rounded to whole pixels
                tx = torch.round(symmetric("xint_x", "xint", mag["xint_max"]) * w)
                ty = torch.round(symmetric("xint_y", "xint", mag["xint_max"]) * h)
                blit_inv = blit_inv @ _translate2(-tx, -ty)

            # General geometric transforms (appendix B, 'g'); `warped` marks images that need interpolation.
            geom_inv = torch.eye(3, device=dev).expand(n, 3, 3)
            warped = torch.zeros(n, dtype=torch.bool, device=dev)
            if strength["scale"] > 0:  # isotropic, s = 2^N(0, scale_std)
                s = lognormal("scale", mag["scale_std"])
                geom_inv, warped = geom_inv @ _scale2(1 / s, 1 / s), warped | on["scale"]
            for stage in ("rotate_pre", "rotate_post"):
                if strength["rotate"] > 0:  # U(-pi, pi) * rotate_max
                    theta = symmetric(stage, stage, math.pi * mag["rotate_max"])
                    geom_inv, warped = geom_inv @ _rotate2(torch.cos(theta), -torch.sin(theta)), warped | on[stage]
                if stage == "rotate_pre" and strength["aniso"] > 0:  # s along x, 1/s along y
                    s = lognormal("aniso", mag["aniso_std"])
                    geom_inv, warped = geom_inv @ _scale2(1 / s, s), warped | on["aniso"]
            if strength["xfrac"] > 0:  # N(0, xfrac_std) of the size
                tx = z["xfrac_x"] * mag["xfrac_std"] * w * on["xfrac"]
                ty = z["xfrac_y"] * mag["xfrac_std"] * h * on["xfrac"]
                geom_inv, warped = geom_inv @ _translate2(-tx, -ty), warped | on["xfrac"]

            x_blit = _blit(x, blit_inv) if self._active(BLIT) else x
            if self._active(GEOM):
                x_warp = _warp(x, blit_inv @ geom_inv)  # blit and geometry fused: one resampling
                x = torch.where(warped.reshape(n, 1, 1, 1), x_warp, x_blit)
            else:
                x = x_blit

        if self._active(COLOR):
            # Colour transforms (appendix B, 'c'): 4x4 matrices on [r, g, b, 1], left-multiplied in paper order.
            eye3 = torch.eye(3, device=dev)
            vvt = torch.full((3, 3), 1 / 3, device=dev)  # v v^T for the unit luma axis v = (1, 1, 1) / sqrt(3)
            zero3 = torch.zeros(n, 3, device=dev)
            color = torch.eye(4, device=dev).expand(n, 4, 4)  # (N, 4, 4)
            if strength["brightness"] > 0:  # add N(0, brightness_std)
                b = z["brightness"] * mag["brightness_std"] * on["brightness"]
                color = _affine3(eye3.expand(n, 3, 3), b.unsqueeze(1).expand(n, 3)) @ color
            if strength["contrast"] > 0:  # multiply by 2^N(0, contrast_std)
                cst = lognormal("contrast", mag["contrast_std"]).reshape(n, 1, 1)
                color = _affine3(eye3 * cst, zero3) @ color
            if strength["lumaflip"] > 0:  # Householder reflection I - 2 v v^T, with probability 1/2 once chosen
                flip = (torch.floor(u["lumaflip"] * 2) * on["lumaflip"]).reshape(n, 1, 1)
                color = _affine3(eye3 - 2 * vvt * flip, zero3) @ color
            if strength["hue"] > 0 and c > 1:  # rotate about v by U(-pi, pi) * hue_max (Rodrigues' formula)
                theta = symmetric("hue", "hue", math.pi * mag["hue_max"]).reshape(n, 1, 1)
                cross = torch.tensor([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]], device=dev) / math.sqrt(3)
                rot = torch.cos(theta) * eye3 + torch.sin(theta) * cross + (1 - torch.cos(theta)) * vvt
                color = _affine3(rot, zero3) @ color
            if strength["saturation"] > 0 and c > 1:  # scale the chroma (orthogonal to v) by 2^N(0, saturation_std)
                sat = lognormal("saturation", mag["saturation_std"]).reshape(n, 1, 1)
                color = _affine3(vvt + (eye3 - vvt) * sat, zero3) @ color
            x = _apply_color(x, color)

        # Image-space corruptions (appendix B, 'n' and 'c'): additive noise, cutout.
        if strength["noise"] > 0:  # per-image sigma ~ |N(0, noise_std)|
            sigma = (z["noise"].abs() * mag["noise_std"] * on["noise"]).reshape(n, 1, 1, 1)
            x = x + torch.randn(x.shape, device=dev, generator=generator, dtype=x.dtype) * sigma
        if strength["cutout"] > 0:  # zero a rectangle of cutout_size * (W, H) at a uniform centre
            half = (mag["cutout_size"] / 2 * on["cutout"]).reshape(n, 1)
            xs = (torch.arange(w, device=dev) + 0.5) / w
            ys = (torch.arange(h, device=dev) + 0.5) / h
            keep_x = (xs.reshape(1, w) - u["cutout_x"].reshape(n, 1)).abs() >= half  # (N, W)
            keep_y = (ys.reshape(1, h) - u["cutout_y"].reshape(n, 1)).abs() >= half  # (N, H)
            keep = keep_y.reshape(n, 1, h, 1) | keep_x.reshape(n, 1, 1, w)  # (N, 1, H, W)
            x = x * keep.to(x.dtype)

        x = x.to(dtype)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


# ----------------------------------------------------------------------------------------------
# Adaptive control of p.


class AdaController:
    """Adjusts ADA's p from the overfitting heuristic r_t = E[sign(D(real))] (Karras et al. 2020, sec. 3).

    Call `observe(d_real_logits)` every minibatch with D's raw outputs on (augmented) reals, then
    `update(step)` with the number of completed minibatches. Every `interval` minibatches p moves by sign(r_t - target) * batch * interval / (kimg * 1000),
    i.e. by at most 1 per `kimg` thousand real images, and is clamped to [0, 1]. Accumulators stay on
    the logits' device, so observing costs no host sync; one sync happens per update.
    """

    def __init__(
        self, target: float = 0.6, interval: int = 4, kimg: float = 500.0, p: float = 0.0, batch: int = 64
    ) -> None:
        if interval < 1 or kimg <= 0 or batch < 1:
            raise ValueError(
                f"AdaController needs interval >= 1, kimg > 0, batch >= 1; got {interval}, {kimg}, {batch}"
            )
        self.target = float(target)
        self.interval = int(interval)
        self.kimg = float(kimg)
        self.batch = int(batch)
        self.p = min(max(float(p), 0.0), 1.0)
        self.rt = 0.0  # last measured r_t (0.0 until the first update; see `updates`)
        self.updates = 0  # number of adjustments made so far
        self._acc: Tensor | None = None  # [sum of sign(D(real)), count] since the last update
        self._device = torch.device("cpu")  # where the logits live (a DDP reduce needs the tensor there)

    @property
    def step_size(self) -> float:
        """How far p moves per adjustment: batch * interval / (kimg * 1000) (sec. 3)."""
        return self.batch * self.interval / (self.kimg * 1000.0)

    def observe(self, d_real_logits: Tensor) -> None:
        """Accumulate sign(D(x)) of one minibatch of reals (raw logits: positive means 'real')."""
        logits = d_real_logits.detach().float()
        stats = torch.stack([torch.sign(logits).sum(), torch.tensor(float(logits.numel()), device=logits.device)])
        self._acc = stats if self._acc is None else self._acc.to(logits.device) + stats
        self._device = logits.device

    def update(self, step: int | None = None, reduce: Callable[[Tensor], Tensor] | None = None) -> bool:
        """Adjust p now (step None) or when `step` (completed minibatches, 1-based) is a multiple of interval.

        reduce: sums the float32 [sum of signs, count] tensor across processes and returns it (for DDP:
        `def reduce(t): torch.distributed.all_reduce(t); return t`); every process must call update at
        the same steps. Returns whether p was adjusted."""
        if step is not None and step % self.interval != 0:
            return False
        acc = self._acc if self._acc is not None else torch.zeros(2, device=self._device)
        if reduce is not None:
            acc = reduce(acc.clone())
        total, count = (float(v) for v in acc.tolist())
        self._acc = None
        if count <= 0:
            return False
        self.rt = total / count
        # Karras et al. 2020, sec. 3: p <- clamp(p + sign(r_t - target) * batch * interval / (kimg * 1000)).
        direction = (self.rt > self.target) - (self.rt < self.target)
        self.p = min(max(self.p + direction * self.step_size, 0.0), 1.0)
        self.updates += 1
        return True

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state (floats and ints only), including the not yet consumed accumulators."""
        total, count = (float(v) for v in self._acc.tolist()) if self._acc is not None else (0.0, 0.0)
        return {
            "p": self.p,
            "rt": self.rt,
            "updates": self.updates,
            "pending_sum": total,
            "pending_count": count,
            "target": self.target,
            "interval": self.interval,
            "kimg": self.kimg,
            "batch": self.batch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore p, r_t and the accumulators; target/interval/kimg/batch stay as configured now."""
        self.p = float(state["p"])
        self.rt = float(state.get("rt", 0.0))
        self.updates = int(state.get("updates", 0))
        count = float(state.get("pending_count", 0.0))
        self._acc = torch.tensor([float(state.get("pending_sum", 0.0)), count]) if count > 0 else None


# ----------------------------------------------------------------------------------------------
# DiffAugment (Zhao et al. 2020).


def _da_color(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Brightness + U(-0.5, 0.5), saturation x U(0, 2), contrast x U(0.5, 1.5) per image (Zhao et al. 2020)."""

    def uniform() -> Tensor:  # one U(0, 1) per image, (N, 1, 1, 1)
        return torch.rand(x.shape[0], 1, 1, 1, device=x.device, generator=generator, dtype=x.dtype)

    x = x + (uniform() - 0.5)
    mean = x.mean(dim=1, keepdim=True)  # per-pixel grey level
    x = (x - mean) * (uniform() * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # per-image mean
    return (x - mean) * (uniform() + 0.5) + mean


def _da_translation(x: Tensor, generator: torch.Generator | None, ratio: float = 0.125) -> Tensor:
    """Whole-pixel shift by up to ratio * size in each direction, zero padding (Zhao et al. 2020, sec. 3.2)."""
    n, c, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (n, 1, 1), device=x.device, generator=generator)
    dx = torch.randint(-sx, sx + 1, (n, 1, 1), device=x.device, generator=generator)
    padded = F.pad(x, [sx, sx, sy, sy])  # (N, C, H + 2sy, W + 2sx), zeros outside
    rows = torch.arange(h, device=x.device).reshape(1, h, 1) - dy + sy  # (N, H, 1) source row in `padded`
    cols = torch.arange(w, device=x.device).reshape(1, 1, w) - dx + sx  # (N, 1, W)
    index = (rows * (w + 2 * sx) + cols).reshape(n, 1, h * w).expand(n, c, h * w)  # (N, C, H*W)
    return padded.reshape(n, c, -1).gather(2, index).reshape(n, c, h, w)


def _da_cutout(x: Tensor, generator: torch.Generator | None, ratio: float = 0.5) -> Tensor:
    """Zero one ratio-sized rectangle at a uniform position, clipped at the borders (Zhao et al. 2020)."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (n, 1), device=x.device, generator=generator) - ch // 2  # top row
    ox = torch.randint(0, w + (1 - cw % 2), (n, 1), device=x.device, generator=generator) - cw // 2  # left column
    ys, xs = torch.arange(h, device=x.device).reshape(1, h), torch.arange(w, device=x.device).reshape(1, w)
    cut_y = (ys >= oy) & (ys < oy + ch)  # (N, H)
    cut_x = (xs >= ox) & (xs < ox + cw)  # (N, W)
    cut = cut_y.reshape(n, 1, h, 1) & cut_x.reshape(n, 1, 1, w)  # (N, 1, H, W)
    return x * (~cut).to(x.dtype)


def diff_augment(
    x: Tensor, policy: str = "color,translation,cutout", *, generator: torch.Generator | None = None
) -> Tensor:
    """DiffAugment (Zhao et al. 2020): the same random colour / translation (1/8) / cutout (1/2) family
    applied to every real and fake image D sees, always on (no probability), differentiable in x."""
    names = [name.strip() for name in policy.split(",") if name.strip()]
    for name in names:
        if name not in DIFF_AUGMENT_POLICIES:
            raise ValueError(f"unknown DiffAugment policy {name!r}; choose from {', '.join(DIFF_AUGMENT_POLICIES)}")
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    for name in names:
        if name == "color":
            x = _da_color(x, generator)
        elif name == "translation":
            x = _da_translation(x, generator)
        else:
            x = _da_cutout(x, generator)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


class DiffAugment(torch.nn.Module):
    """`diff_augment` with a fixed policy, as a module (what make_augment('diffaugment') returns)."""

    def __init__(self, policy: str = "color,translation,cutout") -> None:
        super().__init__()
        diff_augment(torch.zeros(1, 3, 4, 4), policy)  # validate the policy early, with the same message
        self.policy = policy

    def extra_repr(self) -> str:
        return f"policy={self.policy!r}"

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return diff_augment(x, self.policy, generator=generator)


def make_augment(kind: str, **kw: Any) -> AugmentPipe | DiffAugment | None:
    """Build the discriminator augmentation named by a config string.

    'ada': AugmentPipe (kw: preset, p, strengths) whose p an AdaController moves; 'fixed': the same
    with a constant p (kw p is required; the training loop creates no controller); 'diffaugment': DiffAugment (kw: policy);
    'none': None (no augmentation)."""
    key = kind.strip().lower() if isinstance(kind, str) else kind
    if key == "none":
        if kw:
            raise ValueError(f"augment 'none' takes no options (got {', '.join(sorted(kw))})")
        return None
    if key == "diffaugment":
        return DiffAugment(**kw)
    if key in ("ada", "fixed"):
        if key == "fixed" and "p" not in kw:
            raise ValueError("augment 'fixed' needs a probability p (e.g. p=0.2); use 'ada' to tune it automatically")
        return AugmentPipe(**kw)
    raise ValueError(f"unknown augmentation kind {kind!r}; choose one of {', '.join(AUGMENT_KINDS)}")
