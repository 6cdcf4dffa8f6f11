"""Sample grids from fixed inputs, and the diagnostics that look at them.

Noise families: a grid of seeds 0..grid_size-1, checked for collapsing diversity against real images
(class by class for conditional models). Image-input families: rows of input | output | target (or
what the family's `preview_rows` shows) for fixed examples from the dataset. Point data: a scatter
plot over the mixture's modes, with mode counting.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.kinds import Dataset
from ..sample.grid import make_grid, render_points, save_png
from ..sample.latents import labels_for_seeds
from ..sample.sampler import Sampler
from .diagnostics import Diagnostics


def _displayable(x: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    """Images resized (nearest) to `size` and given `channels`, so different sides tile in one grid."""
    if x.shape[1] != channels:
        x = x.expand(-1, channels, -1, -1) if x.shape[1] == 1 else x.mean(1, keepdim=True)
    if x.shape[-1] != size:
        x = F.interpolate(x.float(), size=(size, size), mode="nearest")
    return x


class Previews:
    def __init__(self, sampler: Sampler, data: Dataset, grid_size: int, diag: Diagnostics) -> None:
        self.sampler, self.data, self.diag = sampler, data, diag
        self.spec = sampler.spec
        self.seeds = list(range(grid_size))
        self.image_input = sampler.family.capabilities.inputs == "image"
        self.inputs = data.preview(min(grid_size, 8)) if self.image_input else None

    def write(self, step: int, path: Path) -> list[str]:
        """Write the preview for `step` to `path`; returns diagnostics' warnings."""
        if self.image_input:
            return self._write_translations(path)
        if self.spec.kind == "points":
            return self._write_points(step, path)
        return self._write_grid(step, path)

    def _write_translations(self, path: Path) -> list[str]:
        assert self.inputs is not None
        cols = self.sampler.family.preview_rows(self.sampler.nets, lambda req: self.sampler.run(req, out_device=None), self.inputs)
        size, ch = self.spec.resolution, self.spec.channels
        cols = [_displayable(c.detach().float(), size, ch).cpu() for c in cols]
        n = cols[0].shape[0]
        tiles = torch.stack(cols, dim=1).reshape(n * len(cols), ch, size, size)  # (N, K, C, H, W) -> (N*K, C, H, W)
        save_png(make_grid(tiles, nrow=len(cols)), path)
        return []

    def _write_points(self, step: int, path: Path) -> list[str]:
        many = self.sampler.run(
            _noise(self.sampler.latent_shape, 2500, torch.Generator().manual_seed(1)), batch=2500, out_device=None
        )
        save_png(render_points(many, centers=self.data.centers), path)
        real = self.data.preview(2500)["points"]
        return self.diag.observe_points(step, many, real, self.data.centers, self.data.std)

    def _write_grid(self, step: int, path: Path) -> list[str]:
        out = self.sampler.seeds(self.seeds, batch=len(self.seeds), out_device=None)
        save_png(make_grid(out.float()), path)
        grid_labels = labels_for_seeds(self.seeds, self.spec.num_classes, device=out.device)
        if grid_labels is not None and self.data.labels is not None:
            # Up to 16 real images of each class in the grid, for the per-class diversity check.
            ref = self.data.class_examples(grid_labels.unique().tolist(), per_class=16)
            return self.diag.observe_samples(step, out, ref["image"], grid_labels, ref["label"])
        ref = self.data.preview(len(self.seeds))
        return self.diag.observe_samples(step, out, ref["image"], grid_labels, None)


def _noise(shape: tuple[int, ...], n: int, g: torch.Generator):
    from ..spec import NoiseRequest

    return NoiseRequest(torch.randn((n, *shape), generator=g))
