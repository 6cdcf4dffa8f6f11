"""Networks for a configuration: what training and inference both need, and nothing else."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch

from ..config import TrainConfig, family_config_from_dict
from ..registry import get_family
from ..spec import DataSpec
from .base import Family, Networks


def build_model(
    cfg: TrainConfig, spec: DataSpec, device: torch.device, *, only: Sequence[str] | None = None
) -> tuple[Family, Any, Networks]:
    """Family, family config and freshly initialised networks for a config.

    Training (`only=None`) gets every network plus the EMA copies the family names; inference passes
    `only=family.generator_nets` and gets just those (their weights are then read from the EMA copies
    or the raw networks, as asked), so a discriminator is never kept in memory to generate."""
    family = get_family(cfg.model)
    fam_cfg = family_config_from_dict(family, cfg.family)
    family.check(fam_cfg, spec)
    fam_cfg = family.resolve_config(fam_cfg, spec, cfg.batch)
    nets = family.build(fam_cfg, spec)
    if not isinstance(nets, Networks):
        raise TypeError(f"{type(family).__name__}.build must return a Networks (the networks with their config and spec)")
    if only is not None:
        nets = nets.subset(only)
    else:
        for src, dst in family.ema.items():
            if src in nets:
                nets[dst] = copy.deepcopy(nets[src]).eval().requires_grad_(False)
    return family, fam_cfg, nets.to(device)
