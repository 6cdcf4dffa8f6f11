"""Images and point clouds to PNG (uint8 only at this edge)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Float images in [-1, 1], (B, C, H, W) -> uint8 (B, H, W, C)."""
    x = images.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    arr = to_uint8(images)
    return [Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a) for a in arr]


def make_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 1) -> Image.Image:
    """One image with the batch tiled in rows (white 1 px gutters)."""
    arr = to_uint8(images)
    b, h, w, c = arr.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(b)))
    rows = math.ceil(b / nrow)
    canvas = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), 255, np.uint8)
    for i in range(b):
        r, q = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        canvas[y : y + h, x : x + w] = arr[i]
    return Image.fromarray(canvas[:, :, 0] if c == 1 else canvas)


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
    return Image.fromarray(canvas)


def save_png(img: Image.Image, path: str | os.PathLike) -> None:
    """Write atomically (temp file + rename), so a viewer never sees half a PNG."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    img.save(tmp, format="PNG")
    os.replace(tmp, path)
