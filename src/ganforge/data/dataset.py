"""Data sources: what `--data` names (a built-in set, a download such as `mnist` or `hf:OWNER/NAME`, a prepared
archive, a raw folder or zip of images, a two-sided folder) loaded as the in-memory dataset a family consumes.

The dataset classes live one level down, in `kinds` (the sources `builtin`, `pairs` and `downloads` build them
and this module chooses between those sources, so nothing below imports this module back); they are
re-exported here, where callers have always found them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import DataError
from . import builtin, downloads, pairs, voxels
from .archive import is_prepared_archive, read_archive, read_dataset_json
from .kinds import (
    BatchSampler,
    BatchStream,
    Dataset,
    ImageDataset,
    PairedDataset,
    PointDataset,
    SuperResDataset,
    UnpairedDataset,
    as_kind,
    class_weights,
    degrade,
    single_stream,
)
from .voxels import VoxelDataset

__all__ = [
    "BUILTIN_PREFIX", "BatchSampler", "BatchStream", "Dataset", "ImageDataset", "PairedDataset", "PointDataset",
    "SuperResDataset", "UnpairedDataset", "VoxelDataset", "as_kind", "class_weights", "degrade", "load_dataset", "shadowed_builtin",
    "single_stream",
]  # fmt: skip


def _looks_like_path(source: str) -> bool:
    return os.sep in source or "/" in source or source.startswith(".") or Path(source).suffix != ""


BUILTIN_PREFIX = "builtin:"


def shadowed_builtin(source: str | os.PathLike) -> str | None:
    """A note when `source` names both a built-in set and an existing file or folder (which wins)."""
    text = str(source)
    if text in builtin.names() and Path(text).exists():
        return (
            f"note: using the local {'folder' if Path(text).is_dir() else 'file'} ./{text}, not the built-in "
            f"'{text}' set; write --data {BUILTIN_PREFIX}{text} for the built-in one"
        )
    return None


def load_dataset(
    source: str | os.PathLike,
    *,
    resolution: int | None = None,
    channels: int | None = None,
    progress: bool = False,
    kinds: tuple[str, ...] = ("image", "points"),
    options: dict[str, Any] | None = None,
) -> Dataset:
    """Load a built-in dataset name, a prepared archive (zip/folder with dataset.json) or a raw image
    folder/zip (prepared on the fly, in memory, with the `ganforge prepare` defaults), as one of `kinds`
    (the data kinds the family consumes; `options` say how to make them, see `as_kind`).

    Paired and unpaired data (archives with a dataset.json `layout`, the demo sets, and for a family that
    asks for them, folders with two sub-folders or side-by-side images) load as `PairedDataset` /
    `UnpairedDataset`; given to a family that wants something else, they raise a DataError that names
    the kind of model they suit, and so do plain images given to a family that wants pairs."""
    options = options or {}
    text = str(source)
    crop = int(options.get("crop", 0) or 0)
    two_sided = [k for k in kinds if k in pairs.TWO_SIDED]
    path = Path(text).expanduser()
    on_disk = not text.startswith(BUILTIN_PREFIX) and path.exists()
    meta = read_dataset_json(path) if on_disk and (path.is_dir() or path.suffix.lower() == ".zip") else None
    if downloads.claims(text):  # hf:OWNER/NAME, or a named download such as mnist, horse2zebra
        ds: Dataset = downloads.load(text, resolution=resolution, channels=channels, progress=progress)
    elif on_disk and (voxels.is_voxel_archive(meta) or (meta is None and voxels.is_voxel_source([path]))):
        ds = voxels.load_voxels(path, resolution=resolution, channels=channels)  # 3-D shapes: archive or raw folder
    elif meta is not None and (meta.get("layout") or "images") != "images":
        ds = pairs.read_two_sided_archive(path, resolution=resolution, channels=channels)
    elif two_sided and meta is None and on_disk and path.is_dir() and not options.get("colorize"):
        ds = pairs.load_two_sided(path, two_sided[0], resolution=resolution, channels=channels, progress=progress)
    else:
        ds = _load_images(text, resolution=resolution, channels=channels, progress=progress)
    if isinstance(ds, (PairedDataset, UnpairedDataset)):
        return pairs.as_requested_kind(ds, kinds, what=text, prepared=on_disk, crop=crop)
    if ds.kind == "voxels":
        return ds  # 3-D shapes go to the family as they are (its `check` refuses them if it models images)
    out = as_kind(ds, kinds, **options)
    if two_sided and out.kind not in kinds and isinstance(out, ImageDataset):
        raise pairs.needs_two_sided_error(text, two_sided[0])
    return out


def _load_images(text: str, *, resolution: int | None, channels: int | None, progress: bool) -> ImageDataset | PointDataset:
    if text.startswith(BUILTIN_PREFIX):  # "builtin:digits": the built-in set even if ./digits exists
        return builtin.load(text[len(BUILTIN_PREFIX):], resolution=resolution, channels=channels)
    path = Path(text).expanduser()
    if not path.exists():
        if not _looks_like_path(text):
            return builtin.load(text, resolution=resolution, channels=channels)
        raise DataError(
            f"no such file or folder: {text}; give a folder of images, a zip, a prepared dataset "
            f"or a built-in name ({', '.join(builtin.names())})"
        )
    if path.is_dir() and not any(path.iterdir()):
        raise DataError(f"{path} is an empty folder; put images in it (PNG, JPEG, GIF, WebP, BMP, TIFF)")
    left_out: list[tuple[str, str]] = []
    if is_prepared_archive(path):
        arc = read_archive(path)
        ds: ImageDataset = ImageDataset.from_numpy(arc.images, arc.labels, arc.class_names, name=path.stem, captions=arc.captions)
    else:
        from .prepare import PrepareOptions, prepare

        prepared = prepare([path], PrepareOptions(resolution=resolution), progress=progress)
        ds = ImageDataset.from_numpy(prepared.images, prepared.labels, prepared.class_names, name=path.stem)
        left_out = prepared.skipped
    if channels is not None:
        ds = ds.with_channels(channels)
    if resolution is not None:
        ds = ds.resized(resolution)
    ds.left_out = left_out  # what prepare skipped and why, for the commands to say
    return ds
