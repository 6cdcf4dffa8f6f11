"""Images for people to look at: nearest-neighbour enlargement of tiny sprites and grids whose cells are
labelled with their seed (and class), for `ganforge generate --scale N --annotate`.

Nearest neighbour because a 32 px sprite enlarged with a smooth filter shows blur the model never made.
Like `grid.GridCanvas`, the labelled grid is filled batch by batch and holds only uint8 pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image, ImageDraw, ImageFont

from ..images import array_to_pil, to_uint8
from .grid import grid_layout

CAPTION_FONT = 11  # px: the smallest size that stays legible in PIL's bundled font


def upscale(img: Image.Image, scale: int) -> Image.Image:
    """`img` enlarged `scale` times with nearest neighbour (every pixel becomes a scale x scale block)."""
    if scale <= 1:
        return img
    return img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)


def upscale_tensor(x: torch.Tensor, scale: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H*scale, W*scale), each pixel repeated (exact nearest neighbour)."""
    if scale <= 1:
        return x
    return x.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)


def caption(seed: int, class_name: str | None = None) -> str:
    return f"{seed}" if class_name is None else f"{seed} {class_name}"


class LabelledGridCanvas:
    """A grid with a caption strip under each cell (white background, 1 px gutters as in `make_grid`)."""

    def __init__(
        self, n: int, h: int, w: int, c: int, *, scale: int = 1, nrow: int | None = None, pad: int = 1
    ) -> None:
        self.n, self.h, self.w, self.scale, self.pad = n, h * scale, w * scale, scale, pad
        self.rows, self.cols = grid_layout(n, nrow)
        self.font = ImageFont.load_default(size=CAPTION_FONT)
        self.cap_h = CAPTION_FONT + 4
        width, height = labelled_grid_size(n, h, w, scale=scale, nrow=nrow, pad=pad)
        self.canvas = Image.new("RGB" if c == 3 else "L", (width, height), "white")
        self.draw = ImageDraw.Draw(self.canvas)
        self.filled = 0

    def add(self, images: torch.Tensor, captions: Sequence[str]) -> None:
        """The next images, float in [-1, 1], (B, C, H, W), with one caption each."""
        arr = to_uint8(upscale_tensor(images, self.scale))
        if len(captions) != len(arr):
            raise ValueError("one caption per image")
        if self.filled + len(arr) > self.n:
            raise ValueError(f"the grid holds {self.n} images; got {self.filled + len(arr)}")
        for a, text in zip(arr, captions):
            r, q = divmod(self.filled, self.cols)
            x = self.pad + q * (self.w + self.pad)
            y = self.pad + r * (self.h + self.cap_h + self.pad)
            tile = array_to_pil(a).convert(self.canvas.mode)
            self.canvas.paste(tile, (x, y))
            self._text(self._fit(text), x, y + self.h)
            self.filled += 1

    def _fit(self, text: str) -> str:
        """The caption shortened with an ellipsis to the cell's width."""
        if self.draw.textlength(text, font=self.font) <= self.w - 2:
            return text
        while len(text) > 1 and self.draw.textlength(text + "…", font=self.font) > self.w - 2:
            text = text[:-1]
        return text + "…"

    def _text(self, text: str, x: int, y: int) -> None:
        tw = self.draw.textlength(text, font=self.font)
        fill = (55, 65, 81) if self.canvas.mode == "RGB" else 70
        self.draw.text((x + max((self.w - tw) / 2, 0), y + 1), text, fill=fill, font=self.font)

    def image(self) -> Image.Image:
        return self.canvas


def labelled_grid_size(
    n: int, h: int, w: int, *, scale: int = 1, nrow: int | None = None, pad: int = 1
) -> tuple[int, int]:
    """(width, height) in pixels of a labelled grid of n images of h x w enlarged `scale` times."""
    rows, cols = grid_layout(n, nrow)
    cap_h = CAPTION_FONT + 4
    return cols * (w * scale + pad) + pad, rows * (h * scale + cap_h + pad) + pad


def scaled_grid_size(
    n: int, h: int, w: int, *, scale: int = 1, nrow: int | None = None, pad: int = 1
) -> tuple[int, int]:
    """(width, height) of a plain grid of n images enlarged `scale` times (gutters enlarged too)."""
    rows, cols = grid_layout(n, nrow)
    return (cols * (w + pad) + pad) * scale, (rows * (h + pad) + pad) * scale


__all__ = ["LabelledGridCanvas", "caption", "labelled_grid_size", "scaled_grid_size", "upscale", "upscale_tensor"]
