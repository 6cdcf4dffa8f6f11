"""Reading image-to-image data: paired (pix2pix) and unpaired (CycleGAN) folders and archives.

Conventions understood (the ones the public datasets use):
- two sub-folders, matched by file name for paired data: `trainA/` + `trainB/` (CycleGAN), `A/` + `B/`,
  or any two sub-folders (sorted; the first is the source side);
- for paired data, a folder of side-by-side images, each holding A on the left and B on the right
  (pix2pix's facades, maps, edges2shoes);
- archives written by `ganforge prepare --paired/--unpaired` (a `layout` in dataset.json, see `archive.py`).
Sub-folders are domains here, never class labels. Raw folders go through the `ganforge prepare` pipeline
(`prepare.prepare_two_sided`), so a folder trains exactly as its prepared archive would.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .kinds import ImageDataset, PairedDataset, UnpairedDataset

TWO_SIDED = ("paired", "unpaired")
# The model to suggest for each kind of two-sided data (the families that consume it).
_MODEL_FOR = {"paired": "pix2pix", "unpaired": "cyclegan"}


def _tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))  # (N, H, W, C) -> (N, C, H, W)


def _as_dataset(
    layout: str, a: np.ndarray, b: np.ndarray, domains: list[str], name: str, crop: int
) -> PairedDataset | UnpairedDataset:
    if layout == "paired":
        return PairedDataset(_tensor(a), _tensor(b), crop=crop, domains=domains, name=name)
    return UnpairedDataset(_tensor(a), _tensor(b), crop=crop, domains=domains, name=name)


def load_two_sided(
    source: str | os.PathLike,
    kind: str,
    *,
    resolution: int | None = None,
    channels: int | None = None,
    crop: int = 0,
    progress: bool = False,
) -> PairedDataset | UnpairedDataset:
    """A paired or unpaired dataset from a raw folder (see the module docstring), prepared in memory with
    the `ganforge prepare` defaults."""
    from .prepare import PrepareOptions, prepare_two_sided

    path = Path(source).expanduser()
    if not path.is_dir():
        raise DataError(
            f"{source}: {kind} data is read from a folder (two sub-folders such as trainA/ and trainB/"
            f"{', or side-by-side A|B images' if kind == 'paired' else ''}) or a dataset from `ganforge prepare --{kind}`"
        )
    opts = PrepareOptions(resolution=resolution, channels=channels or 3)
    data = prepare_two_sided(path, kind, opts, progress=progress)
    return _as_dataset(kind, data.a, data.b, data.domains, path.name, crop)


def _fit(images: torch.Tensor, resolution: int | None, channels: int | None) -> torch.Tensor:
    """uint8 (N, C, H, W) at another resolution / channel count, as `ImageDataset.resized` / `with_channels`."""
    ds = ImageDataset(images)
    if channels is not None:
        ds = ds.with_channels(channels)
    if resolution is not None:
        ds = ds.resized(resolution)
    return ds.images


def read_two_sided_archive(
    path: str | os.PathLike, *, resolution: int | None = None, channels: int | None = None, crop: int = 0
) -> PairedDataset | UnpairedDataset:
    """A paired or unpaired archive (zip or folder, see `archive.py`) as its dataset."""
    from .archive import read_sides

    path = Path(path).expanduser()
    sides = read_sides(path)
    a, b = _tensor(sides.a), _tensor(sides.b)
    if resolution is not None or channels is not None:
        a, b = _fit(a, resolution, channels), _fit(b, resolution, channels)
    name = path.stem if path.is_file() else path.name
    if sides.layout == "paired":
        return PairedDataset(a, b, crop=crop, domains=sides.domains, name=name)
    return UnpairedDataset(a, b, crop=crop, domains=sides.domains, name=name)


def describe_sides(ds: PairedDataset | UnpairedDataset) -> str:
    """`paired dataset (edges -> photos)` or `unpaired dataset (day, night)`."""
    a, b = ds.domains
    return f"paired dataset ({a} -> {b})" if ds.kind == "paired" else f"unpaired dataset ({a}, {b})"


def as_requested_kind(
    ds: PairedDataset | UnpairedDataset, kinds: tuple[str, ...], *, what: str, prepared: bool, crop: int = 0
) -> PairedDataset | UnpairedDataset:
    """Two-sided data `ds` as one of the `kinds` a family consumes, with `crop` applied; or the DataError
    that names the kind of model it suits. Paired data serves an unpaired family too (its pairs ignored,
    as CycleGAN does with pix2pix's datasets); unpaired data cannot serve a paired one."""
    if crop and ds.crop != crop:
        ds = (
            PairedDataset(ds.source, ds.target, crop=crop, domains=ds.domains, name=ds.name)
            if isinstance(ds, PairedDataset)
            else UnpairedDataset(ds.a, ds.b, crop=crop, domains=ds.domains, name=ds.name)
        )
    if ds.kind in kinds:
        return ds
    if isinstance(ds, PairedDataset) and "unpaired" in kinds:
        return UnpairedDataset(ds.source, ds.target, crop=ds.crop, domains=ds.domains, name=ds.name)
    model = _MODEL_FOR[ds.kind]
    if ds.kind == "unpaired" and "paired" in kinds:
        raise DataError(
            f"{what} is an {describe_sides(ds)}, whose images do not correspond one to one; train an "
            f"unpaired model such as --model {model} on it, or give paired data"
        )
    redo = f", or prepare the images without --{ds.kind}" if prepared else ""
    raise DataError(f"{what} is a {describe_sides(ds)}; train a {ds.kind} model such as --model {model} on it{redo}")


def needs_two_sided_error(what: str, kind: str) -> DataError:
    """The error for plain images given to a family that consumes paired or unpaired data."""
    layout = (
        "sub-folders A/ and B/ matched by file name, or side-by-side A|B images"
        if kind == "paired"
        else ("sub-folders trainA/ and trainB/, one per domain")
    )
    return DataError(
        f"{what} holds plain images, but this model needs {kind} data: give a folder with {layout}, "
        f"or a dataset made by `ganforge prepare --{kind}`"
    )
