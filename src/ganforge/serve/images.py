"""Generated images as the studio sends them: PIL frames at the asked size, PNG and GIF bytes."""

from __future__ import annotations

import io
from typing import Any


def resized_frames(x: Any, size: int | None) -> list[Any]:
    """Float images (B, C, H, W) in [-1, 1] as PIL images, resized to `size`: nearest-neighbour when
    enlarging by a whole factor (small models stay crisp), Lanczos otherwise."""
    from PIL import Image

    from ..images import to_pil

    ims = to_pil(x)
    if size is None:
        return ims
    out = []
    for im in ims:
        if im.size == (size, size):
            out.append(im)
            continue
        up = size > im.width and size % im.width == 0
        out.append(im.resize((size, size), Image.Resampling.NEAREST if up else Image.Resampling.LANCZOS))
    return out


def png_bytes(im: Any) -> bytes:
    """A PIL image (or a uint8 (H, W, C) array, or a float (C, H, W) tensor) as PNG bytes, compressed for speed."""
    from ..images import png_bytes as encode

    return encode(im, compress_level=1)  # speed over a few % of size: these go over loopback


def gif_bytes(frames: list[Any], fps: int) -> bytes:
    buf = io.BytesIO()
    rgb = [f.convert("RGB") for f in frames]
    rgb[0].save(
        buf, format="GIF", save_all=True, append_images=rgb[1:], duration=round(1000 / fps), loop=0, optimize=False
    )
    return buf.getvalue()
