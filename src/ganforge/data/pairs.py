"""Reading image-to-image data: paired (pix2pix) and unpaired (CycleGAN) folders and archives.

Conventions understood (the ones the public datasets use):
- two sub-folders, matched by file name for paired data: `trainA/` + `trainB/` (CycleGAN), `A/` + `B/`,
  or any two sub-folders (sorted; the first is the source side);
- for paired data, a folder of side-by-side images, each holding A on the left and B on the right
  (pix2pix's facades, maps, edges2shoes);
- archives written by `ganforge prepare --paired/--unpaired` (a `layout` in dataset.json).
Sub-folders are domains here, never class labels.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .dataset import PairedDataset, UnpairedDataset

_DOMAIN_PAIRS = (("trainA", "trainB"), ("A", "B"))


def _domain_dirs(path: Path) -> tuple[Path, Path] | None:
    subs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))
    names = {p.name: p for p in subs}
    for a, b in _DOMAIN_PAIRS:
        if a in names and b in names:
            return names[a], names[b]
    if len(subs) == 2:
        return subs[0], subs[1]
    return None


def _read_folder(path: Path, resolution: int | None, channels: int | None, progress: bool) -> tuple[np.ndarray, list[str]]:
    from .prepare import PrepareOptions, prepare

    opts = PrepareOptions(resolution=resolution, folder_labels=False, channels=channels or 3)
    data = prepare([path], opts, progress=progress)
    return data.images, [Path(f).stem for f in data.files]


def _tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))  # (N, H, W, C) -> (N, C, H, W)


def load_two_sided(
    source: str | os.PathLike,
    kind: str,
    *,
    resolution: int | None = None,
    channels: int | None = None,
    crop: int = 0,
    progress: bool = False,
) -> PairedDataset | UnpairedDataset:
    """A paired or unpaired dataset from a folder (see the module docstring)."""
    path = Path(source).expanduser()
    if not path.is_dir():
        raise DataError(
            f"{source}: {kind} data is read from a folder (two sub-folders such as trainA/ and trainB/"
            f"{', or side-by-side A|B images' if kind == 'paired' else ''})"
        )
    dirs = _domain_dirs(path)
    name = path.name
    if dirs is None:
        if kind == "unpaired":
            raise DataError(
                f"{path} needs two sub-folders, one per domain (trainA/ and trainB/, as CycleGAN's datasets have)"
            )
        return _side_by_side(path, resolution, channels, crop, progress)
    (a_dir, b_dir), domains = dirs, [dirs[0].name, dirs[1].name]
    a, a_names = _read_folder(a_dir, resolution, channels, progress)
    b, b_names = _read_folder(b_dir, resolution or a.shape[1], channels, progress)
    if kind == "unpaired":
        return UnpairedDataset(_tensor(a), _tensor(b), crop=crop, domains=domains, name=name)
    b_index = {n: i for i, n in enumerate(b_names)}
    pairs = [(i, b_index[n]) for i, n in enumerate(a_names) if n in b_index]
    if not pairs:
        raise DataError(
            f"no file in {a_dir.name}/ has a partner of the same name in {b_dir.name}/; paired data is matched by "
            "file name (a/0001.png <-> b/0001.png)"
        )
    ia, ib = (list(t) for t in zip(*pairs))
    return PairedDataset(_tensor(a[ia]), _tensor(b[ib]), crop=crop, domains=domains, name=name)


def _side_by_side(path: Path, resolution: int | None, channels: int | None, crop: int, progress: bool) -> PairedDataset:
    """pix2pix's layout: each file is A|B side by side (twice as wide as high)."""
    from PIL import Image

    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    halves_a, halves_b = [], []
    for f in files:
        try:
            with Image.open(f) as im:
                im.load()
                im = im.convert("L" if (channels or 3) == 1 else "RGB")
        except OSError:
            continue
        w, h = im.size
        if w < 2 * h * 0.9 or w > 2 * h * 1.1:
            raise DataError(
                f"{f} is {w}x{h}: side-by-side paired images are twice as wide as high (A on the left, B on the right); "
                "or put the two sides in two sub-folders (A/ and B/) with matching file names"
            )
        side = resolution or h
        halves_a.append(np.asarray(im.crop((0, 0, w // 2, h)).resize((side, side), Image.Resampling.BICUBIC)))
        halves_b.append(np.asarray(im.crop((w // 2, 0, w, h)).resize((side, side), Image.Resampling.BICUBIC)))
    if not halves_a:
        raise DataError(f"no readable images in {path}")
    a, b = np.stack(halves_a), np.stack(halves_b)
    if a.ndim == 3:
        a, b = a[..., None], b[..., None]
    sizes = {x.shape for x in halves_a}
    if len(sizes) > 1:
        raise DataError(f"{path}: the images have different sizes {sorted(sizes)[:2]}; give --resolution")
    return PairedDataset(_tensor(a), _tensor(b), crop=crop, domains=["A", "B"], name=path.name)
