"""In-memory datasets: uint8 images on the training device, converted to [-1, 1] a batch at a time.

Small-data GAN work fits in memory (3,786 emoji at 64 px are 46 MB), and indexing a uint8 tensor is
far faster than a DataLoader with workers, so there is no DataLoader here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from ..families.base import Batch, DataSpec


@dataclass
class ImageDataset:
    """Images as uint8 (N, C, H, W) with optional int64 labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor | None = None
    class_names: list[str] = field(default_factory=list)
    name: str = ""

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def resolution(self) -> int:
        return int(self.images.shape[-1])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.labels is not None else 0

    def spec(self, *, conditional: bool = True) -> DataSpec:
        n = self.num_classes if conditional else 0
        return DataSpec(
            kind="image",
            resolution=self.resolution,
            channels=self.channels,
            num_classes=n,
            class_names=list(self.class_names) if n else [],
        )

    def to(self, device: torch.device | str) -> ImageDataset:
        labels = self.labels.to(device) if self.labels is not None else None
        return ImageDataset(self.images.to(device), labels, self.class_names, self.name)

    def batch(
        self, idx: torch.Tensor, *, xflip: bool = False, generator: torch.Generator | None = None
    ) -> Batch:
        """Images `idx` as float in [-1, 1]; with `xflip`, each image is mirrored with probability 1/2."""
        imgs = self.images[idx]  # (B, C, H, W) uint8: flip before converting, a quarter of the bytes
        if xflip:
            flip = (torch.rand(imgs.shape[0], generator=generator, device="cpu") < 0.5).to(imgs.device)
            imgs[flip] = imgs[flip].flip(3)
        x = imgs.float().mul_(2.0 / 255.0).sub_(1.0)  # (B, C, H, W) in [-1, 1]
        out: Batch = {"image": x}
        if self.labels is not None:
            out["label"] = self.labels[idx]
        return out

    def resized(self, resolution: int) -> ImageDataset:
        """A copy at another resolution (area-averaged when shrinking, bicubic when enlarging)."""
        if resolution == self.resolution:
            return self
        x = self.images.float()
        if resolution < self.resolution:
            x = F.interpolate(x, size=(resolution, resolution), mode="bicubic", antialias=True, align_corners=False)
        else:
            x = F.interpolate(x, size=(resolution, resolution), mode="bicubic", align_corners=False)
        imgs = x.round().clamp(0, 255).to(torch.uint8)
        return ImageDataset(imgs, self.labels, self.class_names, self.name)

    def with_channels(self, channels: int) -> ImageDataset:
        if channels == self.channels:
            return self
        if channels == 1:
            w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)  # ITU-R BT.601 luma
            imgs = (self.images.float() * w).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
        elif channels == 3 and self.channels == 1:
            imgs = self.images.expand(-1, 3, -1, -1).contiguous()
        else:
            raise DataError(f"cannot convert {self.channels}-channel images to {channels} channels; use 1 or 3")
        return ImageDataset(imgs, self.labels, self.class_names, self.name)

    @classmethod
    def from_numpy(
        cls, images: np.ndarray, labels: np.ndarray | None = None, class_names: list[str] | None = None, name: str = ""
    ) -> ImageDataset:
        """From uint8 (N, H, W, C) arrays, as read from disk."""
        if images.ndim == 3:
            images = images[..., None]
        t = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        lab = torch.from_numpy(labels.astype(np.int64)) if labels is not None else None
        return cls(t, lab, list(class_names or []), name)


@dataclass
class PointDataset:
    """Low-dimensional point data (e.g. the 2-D Gaussian mixtures) as float (N, D)."""

    points: torch.Tensor
    centers: torch.Tensor | None = None  # (M, D) mixture means, for mode counting
    std: float = 0.0  # mixture component standard deviation
    name: str = ""
    labels: torch.Tensor | None = None
    class_names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return self.points.shape[0]

    @property
    def num_classes(self) -> int:
        return 0

    def spec(self, *, conditional: bool = True) -> DataSpec:
        return DataSpec(kind="points", resolution=0, channels=0, dim=int(self.points.shape[1]))

    def to(self, device: torch.device | str) -> PointDataset:
        return PointDataset(self.points.to(device), self.centers, self.std, self.name)

    def batch(self, idx: torch.Tensor, *, xflip: bool = False, generator: torch.Generator | None = None) -> Batch:
        return {"points": self.points[idx]}


class BatchSampler:
    """Shuffled epochs of indices, deterministic from (seed, epoch) so that a resumed run sees the
    same batches as an uninterrupted one. Its whole state is (epoch, position)."""

    def __init__(self, n: int, batch: int, seed: int) -> None:
        if n <= 0:
            raise DataError("the dataset is empty")
        self.n, self.batch_size, self.seed = n, batch, seed
        self.epoch, self.pos = 0, 0
        self._perm = self._permutation(0)

    def _permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g)

    def next(self) -> torch.Tensor:
        out = []
        need = self.batch_size
        while need > 0:
            take = self._perm[self.pos : self.pos + need]
            out.append(take)
            need -= take.numel()
            self.pos += take.numel()
            if self.pos >= self.n:
                self.epoch += 1
                self.pos = 0
                self._perm = self._permutation(self.epoch)
        return torch.cat(out)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
        self._perm = self._permutation(self.epoch)


def _looks_like_path(source: str) -> bool:
    return os.sep in source or "/" in source or source.startswith(".") or Path(source).suffix != ""


BUILTIN_PREFIX = "builtin:"


def shadowed_builtin(source: str | os.PathLike) -> str | None:
    """A note when `source` names both a built-in set and an existing file or folder (which wins)."""
    from . import builtin

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
) -> ImageDataset | PointDataset:
    """Load a built-in dataset name, a prepared archive (zip/folder with dataset.json) or a raw image
    folder/zip (prepared on the fly, in memory, with the `ganforge prepare` defaults)."""
    from . import builtin
    from .archive import is_prepared_archive, read_archive

    text = str(source)
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
    if is_prepared_archive(path):
        arc = read_archive(path)
        ds: ImageDataset = ImageDataset.from_numpy(arc.images, arc.labels, arc.class_names, name=path.stem)
    else:
        from .prepare import PrepareOptions, prepare

        prepared = prepare([path], PrepareOptions(resolution=resolution), progress=progress)
        ds = ImageDataset.from_numpy(prepared.images, prepared.labels, prepared.class_names, name=path.stem)
    if channels is not None:
        ds = ds.with_channels(channels)
    if resolution is not None:
        ds = ds.resized(resolution)
    return ds
