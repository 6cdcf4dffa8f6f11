"""Grids of images and scatter plots of point clouds, as PIL images (uint8 only at this edge)."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

# The conversions and writers live in ganforge.images; imported here under the names callers have used.
from ..images import IMAGE_FORMATS, array_to_pil, save_image, save_png, save_png_array, to_pil, to_uint8

__all__ = [
    "IMAGE_FORMATS",
    "GridCanvas",
    "grid_layout",
    "grid_size",
    "make_grid",
    "render_points",
    "save_image",
    "save_png",
    "save_png_array",
    "to_pil",
    "to_uint8",
]


def make_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 1) -> Image.Image:
    """One image with the batch tiled in rows (white 1 px gutters). Volumes (B, 1, D, H, W), voxel shapes, are
    shown as their shaded renderings (`sample.shapes`)."""
    if images.dim() == 5:
        from .shapes import render_volumes

        images = render_volumes(images)
    b, c, h, w = images.shape
    grid = GridCanvas(b, h, w, c, nrow=nrow, pad=pad)
    grid.add(images)
    return grid.image()


def grid_layout(n: int, nrow: int | None = None) -> tuple[int, int]:
    """(rows, columns) of a grid of n images: square-ish, `nrow` images per row when given."""
    cols = nrow or max(1, math.ceil(math.sqrt(n)))
    return math.ceil(n / cols), cols


def grid_size(n: int, h: int, w: int, nrow: int | None = None, pad: int = 1) -> tuple[int, int]:
    """(width, height) in pixels of the grid of n images of h x w (see `make_grid`)."""
    rows, cols = grid_layout(n, nrow)
    return cols * (w + pad) + pad, rows * (h + pad) + pad


class GridCanvas:
    """A grid filled batch by batch, so that only the uint8 grid is held, never all the float images."""

    def __init__(self, n: int, h: int, w: int, c: int, nrow: int | None = None, pad: int = 1) -> None:
        self.n, self.h, self.w, self.c, self.pad = n, h, w, c, pad
        self.rows, self.cols = grid_layout(n, nrow)
        width, height = grid_size(n, h, w, nrow, pad)
        self.canvas = np.full((height, width, c), 255, np.uint8)
        self.filled = 0

    def add(self, images: torch.Tensor) -> None:
        """The next images, float in [-1, 1], (B, C, H, W)."""
        arr = to_uint8(images)
        if self.filled + len(arr) > self.n:
            raise ValueError(f"the grid holds {self.n} images; got {self.filled + len(arr)}")
        h, w, pad = self.h, self.w, self.pad
        for a in arr:
            r, q = divmod(self.filled, self.cols)
            y, x = pad + r * (h + pad), pad + q * (w + pad)
            self.canvas[y : y + h, x : x + w] = a
            self.filled += 1

    def image(self) -> Image.Image:
        return array_to_pil(self.canvas)


def render_points(
    points: torch.Tensor, size: int = 384, extent: float | None = None, centers: torch.Tensor | None = None
) -> Image.Image:
    """A scatter plot of 2-D points (black) over mode centres (red), without a plotting library."""
    p = points.detach().float().cpu().numpy()[:, :2]
    lim = extent or float(max(np.abs(p).max() if len(p) else 1.0, 1e-3) * 1.1)
    canvas = np.full((size, size, 3), 255, np.uint8)

    def pix(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ij = ((xy / lim + 1) * 0.5 * (size - 1)).round().astype(int)
        ok = (ij >= 0).all(1) & (ij < size).all(1)
        return ij[ok, 0], (size - 1) - ij[ok, 1]

    if centers is not None:
        cx, cy = pix(centers.float().cpu().numpy()[:, :2])
        for dx in range(-3, 4):
            for dy in range(-3, 4):
                canvas[np.clip(cy + dy, 0, size - 1), np.clip(cx + dx, 0, size - 1)] = (230, 60, 60)
    x, y = pix(p)
    canvas[y, x] = (0, 0, 0)
    return array_to_pil(canvas)
