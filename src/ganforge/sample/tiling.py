"""Translating images of any size with bounded memory: overlapping tiles, blended with linear ramps.

A fully convolutional network gives the same output for a pixel whatever the crop around it, as long
as its receptive field lies inside the crop; tiles overlap so that the pixels near a tile's edge (where
padding changes the result) are taken from the neighbouring tile: weights are 0 within a quarter of the
overlap of an inner edge and ramp up linearly after it, so outputs equal whole-image inference for
networks whose receptive field radius is under a quarter of the overlap, and blend smoothly otherwise. The
output is assembled one band of tiles at a time into a uint8 image, so memory is about one band of
float accumulators plus the uint8 result (a 4000x3000 photo enlarged 4x: 576 MB of output and ~0.2 GB
of accumulators), never the float image at full size.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

Translate = Callable[[torch.Tensor], torch.Tensor]  # (1, C, h, w) in [-1, 1] -> (1, C', h*s, w*s) in [-1, 1]


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    """Tile origins along one axis: every (tile - overlap) pixels, the last one flush with the end."""
    if size <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, size - tile, step))
    return starts + [size - tile]


def _ramp(n: int, fade: int, head: bool, tail: bool) -> np.ndarray:
    """Weights (n,) for one tile along one axis: 0 over the first quarter of `fade` pixels at an inner
    edge (where zero padding spoils the output), rising linearly to 1 over the next half, 1 elsewhere
    and at the image's own borders, where no neighbour shares the pixels."""
    w = np.ones(n, np.float32)
    if fade > 0:
        margin = fade // 4
        r = np.clip((np.arange(fade, dtype=np.float32) + 0.5 - margin) / max(fade - 2 * margin, 1), 0.0, 1.0)
        if head:
            w[:fade] = np.minimum(w[:fade], r)
        if tail:
            w[n - fade :] = np.minimum(w[n - fade :], r[::-1])
    return w


def tile_count(height: int, width: int, tile: int = 256, overlap: int = 32) -> int:
    """How many tiles `translate_tiled` runs for an image of height x width (what a progress bar counts)."""
    th, tw = min(tile, height), min(tile, width)
    return len(_starts(height, th, overlap)) * len(_starts(width, tw, overlap))


def translate_tiled(
    run: Translate,
    image: np.ndarray,
    *,
    scale: int,
    tile: int = 256,
    overlap: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Translate a uint8 image (H, W, C) tile by tile; returns uint8 (H*scale, W*scale, C').
    `progress(done, total)` is called after each tile (total: `tile_count`)."""
    if overlap * 2 > tile:
        raise ValueError("the overlap must be at most half the tile")
    h, w = image.shape[:2]
    th, tw = min(tile, h), min(tile, w)
    ys, xs = _starts(h, th, overlap), _starts(w, tw, overlap)
    total, finished = len(ys) * len(xs), 0
    s, fade = scale, overlap * scale
    out: np.ndarray | None = None
    carry_num = carry_den = None  # accumulators of rows shared with the next band
    for k, y0 in enumerate(ys):
        num = den = None
        for x0 in xs:
            crop = image[y0 : y0 + th, x0 : x0 + tw]
            x = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None].float().div(127.5).sub(1.0)
            y = run(x)[0].float().permute(1, 2, 0).numpy()  # (th*s, tw*s, C')
            if num is None:
                c = y.shape[2]
                num = np.zeros((th * s, w * s, c), np.float32)
                den = np.zeros((th * s, w * s, 1), np.float32)
                if out is None:
                    out = np.empty((h * s, w * s, c), np.uint8)
            wy = _ramp(th * s, fade, y0 > 0, y0 + th < h)
            wx = _ramp(tw * s, fade, x0 > 0, x0 + tw < w)
            wt = (wy[:, None] * wx[None, :])[:, :, None]
            num[:, x0 * s : (x0 + tw) * s] += y * wt
            den[:, x0 * s : (x0 + tw) * s] += wt
            finished += 1
            if progress is not None:
                progress(finished, total)
        assert num is not None and den is not None and out is not None
        if carry_num is not None:
            n = carry_num.shape[0]
            num[:n] += carry_num
            den[:n] += carry_den
        last = k == len(ys) - 1
        done = th * s if last else (ys[k + 1] - y0) * s  # rows no later band touches
        band = num[:done] / np.maximum(den[:done], 1e-8)
        out[y0 * s : y0 * s + done] = np.rint((np.clip(band, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)  # as grid.to_uint8
        carry_num, carry_den = num[done:], den[done:]
    assert out is not None
    return out
