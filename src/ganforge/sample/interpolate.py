"""Latent walks: frames between latents addressed by seed (or, for a VAE, encodings of real images).

Everything here is deterministic: the keys come from `latents_for_seeds` (or from the encoder's
posterior means), the path between them is a pure function of the keys, and the networks run in
eval mode, so the same seeds give the same frames.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import ConfigError, require
from ..images import open_image, pil_to_tensor, save_png, to_uint8
from .grid import make_grid
from .latents import labels_for_seeds, latents_for_seeds
from .model import Model

FORMATS = (".gif", ".mp4", ".png")


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Straight line between latents a and b (each (*shape)) at fractions t (T,) -> (T, *shape)."""
    t = t.view(-1, *([1] * a.dim()))
    return a[None] + t * (b - a)[None]


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985), recommended for Gaussian latents by White 2016
    ("Sampling Generative Networks"): the straight line between two Gaussian samples passes close to
    the origin, where the prior has almost no mass, while the great circle keeps the norm typical.
    Falls back to a straight line when a and b are (anti)parallel."""
    fa, fb = a.flatten().double(), b.flatten().double()
    cos = torch.dot(fa, fb) / (fa.norm() * fb.norm()).clamp_min(eps)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    so = torch.sin(omega)
    if so.abs() < 1e-6:
        return lerp(a, b, t)
    td = t.double().view(-1, 1)
    out = (torch.sin((1 - td) * omega) / so) * fa[None] + (torch.sin(td * omega) / so) * fb[None]  # (T, N)
    return out.to(a.dtype).view(-1, *a.shape)  # (T, N) -> (T, *shape)


def walk(keys: torch.Tensor, frames: int, *, spherical: bool = False, closed: bool = False, endpoints: bool = False) -> torch.Tensor:
    """Latents along a path through `keys` (K, *shape), `frames` steps from one key to the next.

    Returns (S, T, *shape): S segments (K, back to the first key, when `closed`; else K - 1), each of
    T = frames (+1 with `endpoints`: the segment's end key is repeated as its last frame, as a grid
    row needs; a video leaves it out because it starts the next segment).
    """
    if keys.shape[0] < 2:
        raise ConfigError("a walk needs at least two keys: give two or more seeds (e.g. --seeds 3,17,42)")
    if frames < 1:
        raise ConfigError(f"--frames must be 1 or more, not {frames}")
    n = keys.shape[0]
    pairs = [(i, (i + 1) % n) for i in range(n if closed else n - 1)]
    t = torch.arange(frames + (1 if endpoints else 0), dtype=torch.float64) / frames
    step = slerp if spherical else lerp
    return torch.stack([step(keys[i], keys[j], t.to(keys.dtype)) for i, j in pairs])  # (S, T, *shape)


def load_image(path: str | os.PathLike, spec_channels: int, resolution: int) -> torch.Tensor:
    """A real image as the model sees it: (1, C, H, W) in [-1, 1] at the model's size and channels. Decoded by
    `images.open_image`, as `prepare` decodes (one line for a corrupt file, a pixel bomb, a FIFO or a folder;
    EXIF rotation applied; transparency flattened onto white)."""
    im = open_image(path, mode="L" if spec_channels == 1 else "RGB")
    if im.size != (resolution, resolution):
        im = im.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return pil_to_tensor(im)[None]  # (1, C, H, W)


def _labels(model: Model, n: int, label: int | str | None, first_seed: int) -> torch.Tensor | None:
    """One class for the whole walk: `label`, or by default the first seed's (seed % classes)."""
    if not model.spec.num_classes:
        if label is not None:
            model.label_index(label)  # raises the "not class-conditional" error
        return None
    idx = model.label_index(label)
    lab = labels_for_seeds([first_seed], model.spec.num_classes, idx)
    assert lab is not None
    return lab.expand(n).clone()


def latent_walk(
    model: Model,
    seeds: Sequence[int],
    frames: int,
    *,
    spherical: bool = False,
    closed: bool = False,
    endpoints: bool = False,
    label: int | str | None = None,
) -> torch.Tensor:
    """Images (S, T, C, H, W) in [-1, 1] along a walk through the latents of `seeds` (see `walk`)."""
    if model.spec.kind != "image":
        raise ConfigError("this model generates points, not images; latent walks need an image model")
    keys = latents_for_seeds(list(seeds), model.latent_shape)
    return _decode_walk(model, walk(keys, frames, spherical=spherical, closed=closed, endpoints=endpoints), label, seeds[0])


def image_walk(
    model: Model,
    images: Sequence[str | os.PathLike],
    frames: int,
    *,
    spherical: bool = False,
    closed: bool = False,
    endpoints: bool = False,
    label: int | str | None = None,
) -> torch.Tensor:
    """Images (S, T, C, H, W) along a walk between the encodings (posterior means) of real images.

    Needs a model that can encode (the VAE)."""
    if not model.capabilities.encode:
        raise ConfigError(
            f"model '{model.family.name}' cannot encode images, so it cannot walk between real ones; "
            "use --seeds, or train a --model vae"
        )
    if model.spec.num_classes and label is None:
        raise ConfigError(f"this model is class-conditional: give the images' class with --class ({', '.join(model.class_names)})")
    x = torch.cat([load_image(p, model.spec.channels, model.spec.resolution) for p in images]).to(model.device)
    lab = _labels(model, x.shape[0], label, 0)
    with torch.no_grad():
        mu, _ = model.family.encode(model.nets, x, lab.to(model.device) if lab is not None else None)
    keys = mu.cpu()
    return _decode_walk(model, walk(keys, frames, spherical=spherical, closed=closed, endpoints=endpoints), label, 0)


def _decode_walk(model: Model, z: torch.Tensor, label: int | str | None, first_seed: int) -> torch.Tensor:
    s, t = z.shape[:2]
    flat = z.reshape(s * t, *z.shape[2:])  # (S, T, *shape) -> (S*T, *shape)
    x = model.sample_latents(flat, _labels(model, s * t, label, first_seed))
    return x.view(s, t, *x.shape[1:])  # (S*T, C, H, W) -> (S, T, C, H, W)


def _upscale(frames: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour enlargement of uint8 frames (N, H, W, C), so small images stay crisp."""
    if scale <= 1:
        return frames
    return frames.repeat(scale, axis=1).repeat(scale, axis=2)


def save_walk(images: torch.Tensor, path: str | os.PathLike, *, fps: int = 24, scale: int = 1) -> Path:
    """Write a walk (S, T, C, H, W): .gif (loops forever), .mp4 (needs the `video` extra) or .png
    (a grid with one row per segment)."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in FORMATS:
        raise ConfigError(f"cannot write '{path.name}': give --out a .gif, .mp4 or .png file")
    path.parent.mkdir(parents=True, exist_ok=True)
    s, t = images.shape[:2]
    flat = images.reshape(s * t, *images.shape[2:])  # (S, T, C, H, W) -> (S*T, C, H, W)
    if ext == ".png":
        grid = make_grid(flat, nrow=t)
        if scale > 1:
            grid = grid.resize((grid.width * scale, grid.height * scale), Image.Resampling.NEAREST)
        save_png(grid, path)
        return path
    frames = _upscale(to_uint8(flat), scale)  # (N, H, W, C)
    if ext == ".gif":
        import imageio.v3 as iio

        tmp = path.with_name(f".{path.stem}.tmp{ext}")
        # loop=0: repeat forever; duration in ms per frame. Grayscale frames go in as (N, H, W).
        iio.imwrite(tmp, frames[..., 0] if frames.shape[3] == 1 else frames, extension=".gif", loop=0, duration=round(1000 / fps))
        os.replace(tmp, path)
        return path
    require("imageio_ffmpeg", "video")
    import imageio.v2 as imageio

    if frames.shape[3] == 1:
        frames = frames.repeat(3, axis=3)  # H.264 wants RGB
    h, w = frames.shape[1:3]
    if h % 2 or w % 2:  # yuv420p needs even sizes
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    tmp = path.with_name(f".{path.stem}.tmp{ext}")
    imageio.mimwrite(tmp, list(frames), fps=fps, codec="libx264", macro_block_size=1, format="FFMPEG")
    os.replace(tmp, path)
    return path
