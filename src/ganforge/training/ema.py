"""Exponential moving averages of the generators, and their BatchNorm statistics."""

from __future__ import annotations

import torch
from torch import nn

from ..config import TrainConfig
from ..families.base import Family
from ..sample.sampler import Sampler
from ..spec import NoiseRequest


@torch.no_grad()
def update_ema(ema: nn.Module, net: nn.Module, beta: float) -> None:
    """EMA of the weights; buffers (e.g. BatchNorm statistics) are copied."""
    # One fused call for all tensors: for small models the per-tensor Python dispatch is the cost.
    torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in net.parameters()], 1.0 - beta)
    buffers = list(ema.buffers())
    if buffers:
        torch._foreach_copy_(buffers, list(net.buffers()))


def ema_beta(cfg: TrainConfig, nimg: int) -> float:
    """Per-step EMA decay for a half-life of `ema_kimg` thousand images (StyleGAN2-ADA convention)."""
    ema_nimg = cfg.ema_kimg * 1000
    if cfg.ema_rampup:
        ema_nimg = min(ema_nimg, nimg * cfg.ema_rampup)
    return 0.5 ** (cfg.batch / max(ema_nimg, 1e-8))


class EMASet:
    """The EMA copies a family names (`Family.ema`): updated after every step, and their BatchNorm
    statistics recomputed for their own weights before they are sampled or saved."""

    def __init__(self, family: Family, nets: nn.ModuleDict, cfg: TrainConfig) -> None:
        self.pairs = [(src, dst) for src, dst in family.ema.items() if dst in nets]
        self.nets, self.cfg = nets, cfg

    def update(self, nimg: int) -> None:
        if self.cfg.ema_kimg > 0:
            beta = ema_beta(self.cfg, nimg)
            for src, dst in self.pairs:
                update_ema(self.nets[dst], self.nets[src], beta)
        else:
            for src, dst in self.pairs:
                self.nets[dst].load_state_dict(self.nets[src].state_dict())

    def eval(self) -> None:
        for _, dst in self.pairs:
            self.nets[dst].eval()

    @torch.no_grad()
    def recalibrate(self, sampler: Sampler, batches: int = 8, batch: int = 64) -> None:
        """Recompute BatchNorm statistics of the EMA generators for their own (averaged) weights.

        The running statistics copied from G belong to G's weights, not to the EMA's; feeding the EMA a
        few fixed batches of noise in train mode gives statistics that match it. Uses its own RNG, so
        it never changes the training run's random stream. Image-input families are left alone."""
        if sampler.family.capabilities.inputs != "noise":
            return
        for _, dst in self.pairs:
            net = self.nets[dst]
            bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
            if not bns:
                continue
            saved = [(m, m.momentum) for m in bns]
            for m in bns:
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the calibration batches
            net.train()
            g = torch.Generator().manual_seed(0x5EED)
            try:
                for _ in range(batches):
                    z = torch.randn((batch, *sampler.latent_shape), generator=g)
                    labels = None
                    if sampler.spec.num_classes:
                        labels = torch.randint(sampler.spec.num_classes, (batch,), generator=g)
                    sampler.run(NoiseRequest(z, labels), batch=batch, out_device=None)
            finally:
                for m, mom in saved:
                    m.momentum = mom
                net.eval()
