"""The one generation path: a request (noise or images) in, samples out, in batches.

Training previews, BatchNorm recalibration, periodic evaluation, `Model.generate` / `Model.translate`,
the evaluation API and latent walks all go through `Sampler.run`, so a capability check, a batch size
or a precision rule lives in one place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..families.base import Family
from ..spec import DataSpec, NoiseRequest, Request
from .latents import noise_request


@dataclass
class Sampler:
    family: Family
    nets: nn.ModuleDict
    spec: DataSpec
    latent_shape: tuple[int, ...]  # () for image-input families
    device: torch.device
    autocast: Callable[[], contextlib.AbstractContextManager] | None = None  # the loop's precision, if any

    @torch.no_grad()
    def run(self, request: Request, *, batch: int = 64, out_device: torch.device | str | None = "cpu") -> torch.Tensor:
        """Samples for `request`, as float32 on `out_device` (None: the model's device). Images in
        [-1, 1], (N, C, H, W); points (N, D)."""
        outs = []
        for i in range(0, len(request), batch):
            part = request.slice(i, i + batch).to(self.device)
            with self.autocast() if self.autocast is not None else contextlib.nullcontext():
                out = self.family.generate(self.nets, part)
            outs.append(out.float().to(out_device if out_device is not None else self.device))
        if not outs:
            raise ValueError("empty request")
        return torch.cat(outs)

    def seeds(
        self,
        seeds: Sequence[int],
        *,
        label: int | None = None,
        truncation: float = 1.0,
        noise_mode: str = "const",
        batch: int = 64,
        out_device: torch.device | str | None = "cpu",
        label_counts: Sequence[float] | None = None,
        prompt: str | None = None,
    ) -> torch.Tensor:
        """One sample per seed (same seed, same sample, whatever the batch). Conditional models: class `label`,
        else one drawn per seed with the frequencies `label_counts`, else seed % num_classes. Text-conditioned
        models: `prompt` for every seed, else the data's example caption seed % len (`DataSpec.captions`)."""
        text_model = self.family.capabilities_for(self.nets).conditioning == "text"  # type: ignore[arg-type]
        req = noise_request(
            seeds, self.latent_shape, self.spec.num_classes, label, truncation=truncation, noise_mode=noise_mode,
            label_counts=label_counts, prompt=prompt, captions=self.spec.captions if text_model else (),
        )
        return self.run(req, batch=batch, out_device=out_device)


__all__ = ["NoiseRequest", "Sampler"]
