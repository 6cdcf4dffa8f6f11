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
        return Image.fromarray(self.canvas[:, :, 0] if self.c == 1 else self.canvas)


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


# File suffixes `save_image` writes, and PIL's format for each.
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def save_png(img: Image.Image, path: str | os.PathLike) -> None:
    """Write atomically (temp file + rename), so a viewer never sees half a PNG."""
    save_image(img, path, format="PNG")


def save_png_array(arr: np.ndarray, path: str | os.PathLike, *, level: int = 6) -> None:
    """Write a uint8 (H, W, C) array (C 1, 3 or 4) as an 8-bit PNG, atomically, compressing one row at a time,
    so a very large image (a 4000x3000 photo enlarged 4x: 192 million pixels) costs no copy beyond the
    array itself; PIL would first copy it into its own 4-bytes-per-pixel image (PNG spec, ISO/IEC 15948)."""
    import struct
    import zlib

    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected a uint8 (H, W, 1|3|4) array, got {arr.dtype} {arr.shape}")
    h, w, c = arr.shape
    colour = {1: 0, 3: 2, 4: 6}[c]  # grayscale, truecolour, truecolour with alpha

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)))
            z = zlib.compressobj(level)
            pending = bytearray()
            for row in arr:  # filter type 0 (none) per row
                pending += z.compress(b"\x00" + np.ascontiguousarray(row).tobytes())
                if len(pending) >= 1 << 20:
                    f.write(chunk(b"IDAT", bytes(pending)))
                    pending.clear()
            pending += z.flush()
            f.write(chunk(b"IDAT", bytes(pending)) + chunk(b"IEND", b""))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_image(img: Image.Image, path: str | os.PathLike, format: str | None = None) -> None:
    """Write atomically in the format of the path's suffix (see IMAGE_FORMATS; PNG for any other):
    JPEG at quality 95, WebP lossless, so a saved grid still shows what the model made."""
    path = Path(path)
    fmt = format or IMAGE_FORMATS.get(path.suffix.lower(), "PNG")
    tmp = path.with_name(f".{path.name}.tmp")
    kwargs: dict = {}
    if fmt == "JPEG":
        img = img.convert("L" if img.mode in ("L", "1") else "RGB")
        kwargs = {"quality": 95}
    elif fmt == "WEBP":
        kwargs = {"lossless": True}
    try:
        img.save(tmp, format=fmt, **kwargs)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
