"""FastGAN's networks (Liu et al., ICLR 2021, "Towards Faster and Stabilized GAN Training for High-fidelity
Few-shot Image Synthesis"), for power-of-two resolutions from 32 to 1024.

Generator: z -> 4x4 (transposed 4x4 conv, BN, GLU) -> one up block per doubling (nearest x2, 3x3 conv to twice
the channels, BN, GLU, which halves them again; at 8, 32, 128 and 512 px a second conv/BN/GLU, each conv followed
by a learned-strength per-pixel noise injection, as in the paper's reference) -> 3x3 conv -> tanh.
Skip-layer excitation (SLE, sec. 3.1): a low-resolution feature map is pooled to 4x4, a 4x4 conv makes it 1x1,
LeakyReLU(0.1), a 1x1 conv and a sigmoid give one gate per channel of a high-resolution map, which is multiplied by
it. Pairs: resolution r gates resolution 16r wherever both exist (4->64, 8->128, 16->256, 32->512); below 64 px,
where no such pair exists, the 4x4 map gates the output resolution's map (4->32 at 32 px), so every model has one.
Per-pixel noise is drawn only in training passes that record gradients (`NoiseInjection`): when sampling it is
its zero mean, so the same latent always gives the same image.

Discriminator: a stem (a 3x3 conv and LeakyReLU 0.2 at the image resolution up to 256 px; above, stride-2 4x4
convs down to 256 px), then down blocks to 8x8, each the mean of a main path (4x4 stride-2 conv, BN, LeakyReLU
0.2, 3x3 conv, BN, LeakyReLU 0.2) and a shortcut (2x2 average pool, 1x1 conv, BN, LeakyReLU 0.2). The logits come
from the 8x8 features by a 1x1 conv, BN, LeakyReLU and a 4x4 conv: a 5x5 map of patch logits per image.
Self-supervision (sec. 3.2): two small decoders (nearest x2, 3x3 conv, BN, GLU per doubling; a 3x3 conv and tanh)
rebuild the whole image from the 8x8 features and one quarter of the image from that quarter of the 16x16
features, both at min(128, resolution) px.

Widths: a per-resolution multiplier (4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 1/2, 512: 1/4, 1024: 1/8, the
reference's) times `ngf` (G) or `ndf` (D; a D feature map of side s takes the multiplier of 2s, as the reference's).
Conditional models: G concatenates a learned class embedding to z; D adds the projection term
(Miyato & Koyama 2018) on its 8x8 features to every patch logit. Weights ~ N(0, 0.02), BN scales ~ N(1, 0.02).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .conditional import add_projection, concat_label

WIDTH_MULT = {4: 16.0, 8: 8.0, 16: 4.0, 32: 2.0, 64: 2.0, 128: 1.0, 256: 0.5, 512: 0.25, 1024: 0.125}
COMP_RESOLUTIONS = (8, 32, 128, 512)  # up blocks with two convolutions and noise injection (the reference's)
RECON_MAX = 128  # the decoders' output side (the image's, when smaller)


def width(base: int, side: int) -> int:
    """Channels at a feature map of side `side` for base width `base` (at least 2)."""
    return max(2, int(WIDTH_MULT[min(max(side, 4), 1024)] * base))


def sle_pairs(resolution: int) -> list[tuple[int, int]]:
    """(low, high) resolutions joined by skip-layer excitation: r -> 16r where both exist, else 4 -> resolution."""
    pairs = [(r, 16 * r) for r in (4, 8, 16, 32) if 16 * r <= resolution]
    return pairs or [(4, resolution)]


def init_weights(m: nn.Module) -> None:
    """Weights ~ N(0, 0.02), BN scales ~ N(1, 0.02), biases 0 (the reference's initialisation)."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class NoiseInjection(nn.Module):
    """x + strength * per-pixel N(0, 1) noise (one map shared by the channels); strength starts at 0.

    Drawn only in training-mode passes that record gradients (the training step's). Elsewhere the noise is
    its mean, 0: in eval mode (sampling), and in no-grad passes such as the loop's BatchNorm recalibration of
    the EMA generator, which so measures the statistics of the noise-free generator that samples, and leaves
    the run's random stream alone (an interrupted and resumed run stays bit-identical)."""

    def __init__(self) -> None:
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and torch.is_grad_enabled()):
            return x
        b, _, h, w = x.shape
        return x + self.strength.to(x.dtype) * torch.randn(b, 1, h, w, device=x.device, dtype=x.dtype)


class UpBlock(nn.Module):
    """Nearest x2, then (3x3 conv to 2*cout, [noise], BN, GLU) once, or twice for the `comp` blocks."""

    def __init__(self, cin: int, cout: int, comp: bool = False, noise: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Upsample(scale_factor=2, mode="nearest")]
        for i in range(2 if comp else 1):
            layers.append(nn.Conv2d(cin if i == 0 else cout, 2 * cout, 3, 1, 1, bias=False))
            if comp and noise:
                layers.append(NoiseInjection())
            layers += [nn.BatchNorm2d(2 * cout), nn.GLU(dim=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SLE(nn.Module):
    """Skip-layer excitation: high * sigmoid(conv1x1(lrelu(conv4x4(pool4(low))))), a gate per channel of `high`."""

    def __init__(self, c_low: int, c_high: int) -> None:
        super().__init__()
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(4),
            nn.Conv2d(c_low, c_high, 4, 1, 0, bias=False),  # (B, c_low, 4, 4) -> (B, c_high, 1, 1)
            nn.LeakyReLU(0.1),
            nn.Conv2d(c_high, c_high, 1, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return high * self.gate(low)


class Generator(nn.Module):
    def __init__(
        self, nz: int, ngf: int, channels: int, resolution: int, num_classes: int = 0, embed_dim: int = 0, noise: bool = True
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes else None
        zin = nz + (embed_dim if num_classes else 0)
        c4 = width(ngf, 4)
        self.init = nn.Sequential(nn.ConvTranspose2d(zin, 2 * c4, 4, 1, 0, bias=False), nn.BatchNorm2d(2 * c4), nn.GLU(dim=1))
        self.ups = nn.ModuleDict()
        side = 4
        while side < resolution:
            side *= 2
            self.ups[str(side)] = UpBlock(width(ngf, side // 2), width(ngf, side), side in COMP_RESOLUTIONS, noise)
        self.pairs = sle_pairs(resolution)
        self.sle = nn.ModuleDict({str(hi): SLE(width(ngf, lo), width(ngf, hi)) for lo, hi in self.pairs})
        self.to_image = nn.Sequential(nn.Conv2d(width(ngf, resolution), channels, 3, 1, 1, bias=False), nn.Tanh())

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        z = concat_label(z, self.embed, labels)
        h = self.init(z[:, :, None, None])  # (B, nz) -> (B, c4, 4, 4)
        feats = {4: h}
        sources = dict((hi, lo) for lo, hi in self.pairs)
        side = 4
        while side < self.resolution:
            side *= 2
            h = self.ups[str(side)](h)
            if side in sources:
                h = self.sle[str(side)](feats[sources[side]], h)
            feats[side] = h
        return self.to_image(h)


class DownBlock(nn.Module):
    """(main + shortcut) / 2: main = 4x4 s2 conv, BN, LReLU, 3x3 conv, BN, LReLU; shortcut = avg-pool 2, 1x1 conv, BN, LReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2),
        )
        self.skip = nn.Sequential(
            nn.AvgPool2d(2, 2), nn.Conv2d(cin, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.main(x) + self.skip(x)) / 2


class Decoder(nn.Module):
    """8x8 features -> an image of side `out` (nearest x2, 3x3 conv, BN, GLU per doubling; 3x3 conv, tanh)."""

    def __init__(self, cin: int, nf: int, channels: int, out: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        side, c = 8, cin
        while side < out:
            side *= 2
            cout = max(2, width(nf, side) // 2)
            layers.append(UpBlock(c, cout, comp=False))
            c = cout
        layers += [nn.Conv2d(c, channels, 3, 1, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def quarter(x: torch.Tensor, part: int) -> torch.Tensor:
    """Quarter `part` (0: top left, 1: top right, 2: bottom left, 3: bottom right) of a (B, C, H, W) tensor."""
    h, w = x.shape[-2] // 2, x.shape[-1] // 2
    r, c = divmod(part, 2)
    return x[..., r * h : (r + 1) * h, c * w : (c + 1) * w]


class Discriminator(nn.Module):
    def __init__(self, ndf: int, channels: int, resolution: int, num_classes: int = 0) -> None:
        super().__init__()
        self.resolution = resolution
        stem: list[nn.Module] = []
        if resolution <= 256:
            stem += [nn.Conv2d(channels, width(ndf, 2 * resolution), 3, 1, 1, bias=False), nn.LeakyReLU(0.2)]
            side, c = resolution, width(ndf, 2 * resolution)
        else:
            side, c = resolution, channels
            while side > 256:
                side //= 2
                cout = width(ndf, 2 * side)
                stem.append(nn.Conv2d(c, cout, 4, 2, 1, bias=False))
                if c != channels:
                    stem.append(nn.BatchNorm2d(cout))
                stem.append(nn.LeakyReLU(0.2))
                c = cout
        self.stem = nn.Sequential(*stem)
        self.down = nn.ModuleDict()
        while side > 8:
            side //= 2
            self.down[str(side)] = DownBlock(c, width(ndf, 2 * side))
            c = width(ndf, 2 * side)
        c16, c8 = width(ndf, 32), c
        self.head = nn.Sequential(
            nn.Conv2d(c8, width(ndf, 16), 1, 1, 0, bias=False), nn.BatchNorm2d(width(ndf, 16)), nn.LeakyReLU(0.2),
            nn.Conv2d(width(ndf, 16), 1, 4, 1, 0, bias=False),
        )
        self.recon_side = min(RECON_MAX, resolution)
        self.decode_all = Decoder(c8, ndf, channels, self.recon_side)
        self.decode_part = Decoder(c16, ndf, channels, self.recon_side)
        self.embed = None
        if num_classes:
            # N(0, 0.02) like the other weights, so the projection term starts on the logit's scale (see nn/dcgan.py).
            self.embed = nn.Embedding(num_classes, c8)
            nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The 16x16 and 8x8 feature maps of images x."""
        h = self.stem(x)
        f16 = h if h.shape[-1] == 16 else None
        for block in self.down.values():
            h = block(h)
            if h.shape[-1] == 16:
                f16 = h
        assert f16 is not None
        return f16, h

    def logits(self, f8: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        out = self.head(f8).flatten(1)  # (B, 25): patch logits
        if self.embed is None:
            return out
        proj = add_projection(torch.zeros_like(out[:, 0]), f8, self.embed, labels)
        return out + proj[:, None]

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor | None = None, part: int | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Patch logits (B, 25); with `part` (0-3) also the rebuilt image and the rebuilt quarter `part`."""
        f16, f8 = self.features(x)
        out = self.logits(f8, labels)
        if part is None:
            return out
        return out, self.decode_all(f8), self.decode_part(quarter(f16, part))


def recon_targets(images: torch.Tensor, part: int, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """What the decoders rebuild: the images and their quarter `part`, each area-resized to side x side."""
    whole = images if images.shape[-1] == side else F.interpolate(images, size=(side, side), mode="area")
    q = quarter(images, part)
    q = q if q.shape[-1] == side else F.interpolate(q, size=(side, side), mode="bilinear", align_corners=False)
    return whole, q


def recon_loss(rec: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """LPIPS stand-in: mean |rec - target| at full, 1/2 and 1/4 scale (2x2 and 4x4 average pooling), summed."""
    rec, target = rec.float(), target.float()
    loss = F.l1_loss(rec, target)
    for k in (2, 4):
        if rec.shape[-1] >= 2 * k:
            loss = loss + F.l1_loss(F.avg_pool2d(rec, k), F.avg_pool2d(target, k))
    return loss
