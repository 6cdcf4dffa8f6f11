"""Built-in `digits`: real handwritten digits that ship inside scikit-learn, as an MNIST-like labelled set.

scikit-learn's `load_digits` holds 1,797 8x8 grayscale digits (UCI "Optical Recognition of Handwritten
Digits", 43 writers; CC BY 4.0), 10 classes of about 180 each. They are scaled from 0..16 to 0..255 and
upsampled with bicubic interpolation (no antialiasing needed when enlarging), giving smooth strokes.

Convention: white digits on a black background, like MNIST, 1 channel. `digits` is 32x32 (the default
for coverage experiments: a GAN that "generates just one digit" shows up as 1 class of 10 covered);
`digits16` is 16x16 for the fastest CPU runs. Nothing is downloaded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import builtin
from .kinds import ImageDataset


def load_digits(
    resolution: int | None = None, channels: int | None = None, *, default_resolution: int = 32
) -> ImageDataset:
    """The digits at `resolution` (default 32) with labels 0..9; channels=3 repeats the gray channel."""
    from sklearn.datasets import load_digits as sk_load_digits

    d = sk_load_digits()
    res = int(resolution or default_resolution)
    # float64: the same bytes on every CPU (float32 bicubic rounds 5 of 1.8M pixels differently on non-vectorised
    # kernels), so the built-in set's content hash, and with it the shipped classifier, is the same everywhere.
    x = torch.from_numpy(d.images).double().mul_(255.0 / 16.0)[:, None]  # (N, 1, 8, 8) in 0..255, ink = bright
    if res != 8:
        x = F.interpolate(x, size=(res, res), mode="bicubic", align_corners=False)
    images = x.round().clamp_(0, 255).to(torch.uint8)
    labels = torch.from_numpy(d.target).to(torch.int64)
    ds = ImageDataset(images, labels, [str(k) for k in range(10)], name="digits")
    if channels is not None:
        ds = ds.with_channels(channels)
    return ds


builtin.register(
    "digits",
    lambda resolution, channels: load_digits(resolution, channels),
    "1,797 handwritten digits from scikit-learn (UCI, CC BY 4.0), 8x8 upsampled to 32x32, white on black, 10 classes",
)
builtin.register(
    "digits16",
    lambda resolution, channels: load_digits(resolution, channels, default_resolution=16),
    "the `digits` set at 16x16",
)
