"""Tiled translation: the same output as whole-image inference up to the overlap blend, any size."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ganforge.sample.grid import to_uint8
from ganforge.sample.tiling import _starts, translate_tiled


def _net(scale: int) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Conv2d(3, 8, 3, 1, 1), nn.ReLU(), nn.Conv2d(8, 3 * scale * scale, 3, 1, 1)]
    if scale > 1:
        layers.append(nn.PixelShuffle(scale))
    return nn.Sequential(*layers, nn.Tanh()).eval()


@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize("size", [(50, 70), (64, 64), (33, 100)])
def test_tiled_equals_whole_image_up_to_the_blend(scale, size):
    net = _net(scale)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    with torch.no_grad():
        whole = to_uint8(net(torch.from_numpy(img).permute(2, 0, 1)[None].float().div(127.5).sub(1)))[0]
        tiled = translate_tiled(lambda x: net(x), img, scale=scale, tile=24, overlap=8)
    assert tiled.shape == whole.shape == (size[0] * scale, size[1] * scale, 3)
    # The receptive field (5 px) is inside the overlap: blended pixels average equal values.
    diff = np.abs(tiled.astype(int) - whole.astype(int))
    assert diff.max() <= 1, diff.max()


def test_tile_origins_cover_the_image():
    assert _starts(10, 16, 4) == [0]
    st = _starts(100, 24, 8)
    assert st[0] == 0 and st[-1] == 76 and all(b - a <= 16 for a, b in zip(st, st[1:]))
