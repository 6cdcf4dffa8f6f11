"""In-memory datasets: uint8 images on the training device, converted to [-1, 1] a batch at a time.

Small-data GAN work fits in memory (3,786 emoji at 64 px are 46 MB), and indexing a uint8 tensor is
far faster than a DataLoader with workers, so there is no DataLoader here.

Every dataset is a `Dataset`: it answers the same few calls, so the training loop never asks what kind
it holds: `spec()`, `len()`, `to(device)`, `stream(batch, seed, xflip=...)` (an endless, resumable stream of
`Batch`es, with the dataset's own augmentation: a pair's two sides are cropped and flipped together)
and `preview(n)` (fixed examples for sample grids and diagnostics); and it has the attributes `Dataset`
declares (labels, classes, files left out, a point mixture's modes), with defaults for the kinds they do
not apply to, so callers read them instead of probing with `getattr`. The kinds:

- `ImageDataset`: images with optional labels (`image`, `label`);
- `PointDataset`: low-dimensional points (`points`);
- `PairedDataset`: aligned source/target images (`source`, `target`), e.g. edges -> photos;
- `UnpairedDataset`: two domains drawn independently (`A`, `B`), e.g. horses and zebras;
- `SuperResDataset`: random high-resolution crops and their bicubic low-resolution versions made on the
  fly (`source` = LR, `target` = HR), from any image dataset;
- `VoxelDataset` (in `voxels.py`, with the shapes3d set and the voxel readers): 3-D occupancy grids (`image`
  as a volume (B, 1, R, R, R), `label`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from ..spec import EXAMPLE_CAPTIONS, Batch, DataSpec, decode_text, encode_text


class Dataset(ABC):
    """What every dataset kind has. The kinds are dataclasses that set what applies to them as fields (an
    `ImageDataset`'s labels, a `PointDataset`'s mixture); the rest keep these class-level defaults."""

    kind: ClassVar[str]  # the data kind (spec.DATA_KINDS): "image", "points", "paired", "unpaired", "superres", "voxels"
    name: str = ""
    labels: torch.Tensor | None = None  # int64 (N,) class labels; None: unlabelled
    class_names: Sequence[str] = ()
    left_out: Sequence[tuple[str, str]] = ()  # (file, reason): what the prepare of a raw folder or zip skipped
    centers: torch.Tensor | None = None  # point data: (M, D) mixture means, for mode counting; None: no known modes
    std: float = 0.0  # point data: the mixture components' standard deviation

    @property
    def num_classes(self) -> int:
        """Classes of the labels (0: unlabelled)."""
        return 0

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def spec(self, *, conditional: bool = True) -> DataSpec:
        """What a family needs to know to model this data (conditional False: ignore the labels)."""

    @abstractmethod
    def to(self, device: torch.device | str) -> Dataset:
        """The same data on `device`."""

    @abstractmethod
    def stream(self, batch: int, seed: int, *, xflip: bool = False) -> BatchStream:
        """An endless, resumable stream of batches (with `xflip`, mirrored at random)."""

    @abstractmethod
    def preview(self, n: int) -> Batch:
        """Up to n fixed examples, for sample grids and diagnostics."""


class IndexedSamples(Dataset):
    """N samples held in one tensor, with optional labels (N,): batches are drawn by index. The image and voxel
    kinds share their class count, streams, previews and per-class examples through it."""

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.labels is not None else 0

    @property
    @abstractmethod
    def device(self) -> torch.device: ...

    @abstractmethod
    def batch(self, idx: torch.Tensor, *, xflip: bool = False, generator: torch.Generator | None = None) -> Batch: ...

    def stream(self, batch: int, seed: int, *, xflip: bool = False, class_balance: float = 0.0) -> BatchStream:
        weights = None
        if class_balance:
            if self.labels is None:
                raise DataError(f"--class-balance draws classes evenly, and {self.name or 'this dataset'} has no labels; drop it")
            weights = class_weights(self.labels, class_balance)
        return single_stream(self, batch, seed, xflip, weights)

    def preview(self, n: int) -> Batch:
        """The first n samples (and labels): fixed real examples for diagnostics."""
        return self.batch(torch.arange(min(n, len(self)), device=self.device))

    def class_examples(self, classes: list[int], per_class: int = 16) -> Batch:
        """Up to `per_class` real samples of each class in `classes` (for per-class diversity checks)."""
        if self.labels is None:
            return self.preview(per_class)
        idx = torch.cat([torch.nonzero(self.labels == c).flatten()[:per_class] for c in classes])
        return self.batch(idx.to(self.device))


@dataclass
class ImageDataset(IndexedSamples):
    """Images as uint8 (N, C, H, W) with optional int64 labels (N,) and captions (N, TEXT_BYTES) uint8
    (`spec.encode_text`; batches carry them as `text`)."""

    images: torch.Tensor
    labels: torch.Tensor | None = None
    class_names: list[str] = field(default_factory=list)
    name: str = ""
    left_out: list[tuple[str, str]] = field(default_factory=list, repr=False)  # (file, reason) a raw source's prepare skipped
    texts: torch.Tensor | None = None  # (N, TEXT_BYTES) uint8 captions, or None
    kind = "image"

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def device(self) -> torch.device:
        return self.images.device

    @property
    def resolution(self) -> int:
        return int(self.images.shape[-1])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    def spec(self, *, conditional: bool = True) -> DataSpec:
        n = self.num_classes if conditional else 0
        return DataSpec(
            kind="image",
            resolution=self.resolution,
            channels=self.channels,
            num_classes=n,
            class_names=list(self.class_names) if n else [],
            captions=decode_text(self.texts[:EXAMPLE_CAPTIONS]) if self.texts is not None else [],
        )

    @property
    def captions(self) -> list[str]:
        """The captions, one per image ([] when the data has none)."""
        return decode_text(self.texts) if self.texts is not None else []

    def to(self, device: torch.device | str) -> ImageDataset:
        labels = self.labels.to(device) if self.labels is not None else None
        texts = self.texts.to(device) if self.texts is not None else None
        return ImageDataset(self.images.to(device), labels, self.class_names, self.name, texts=texts)

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
        if self.texts is not None:
            out["text"] = self.texts[idx]
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
        return ImageDataset(imgs, self.labels, self.class_names, self.name, texts=self.texts)

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
        return ImageDataset(imgs, self.labels, self.class_names, self.name, texts=self.texts)

    @classmethod
    def from_numpy(
        cls,
        images: np.ndarray,
        labels: np.ndarray | None = None,
        class_names: list[str] | None = None,
        name: str = "",
        captions: list[str] | None = None,
    ) -> ImageDataset:
        """From uint8 (N, H, W, C) arrays, as read from disk (and one caption per image, if any)."""
        if images.ndim == 3:
            images = images[..., None]
        t = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        lab = torch.from_numpy(labels.astype(np.int64)) if labels is not None else None
        texts = encode_text(list(captions)) if captions is not None else None
        return cls(t, lab, list(class_names or []), name, texts=texts)


@dataclass
class PointDataset(Dataset):
    """Low-dimensional point data (e.g. the 2-D Gaussian mixtures) as float (N, D)."""

    points: torch.Tensor
    centers: torch.Tensor | None = None  # (M, D) mixture means, for mode counting
    std: float = 0.0  # mixture component standard deviation
    name: str = ""
    labels: torch.Tensor | None = None
    class_names: list[str] = field(default_factory=list)

    kind = "points"

    def __len__(self) -> int:
        return self.points.shape[0]

    def stream(self, batch: int, seed: int, *, xflip: bool = False) -> BatchStream:
        return BatchStream({"": BatchSampler(len(self), batch, seed)}, lambda idx: self.batch(idx[""]))

    def preview(self, n: int) -> Batch:
        return {"points": self.points[:n]}

    def spec(self, *, conditional: bool = True) -> DataSpec:
        return DataSpec(kind="points", resolution=0, channels=0, dim=int(self.points.shape[1]))

    def to(self, device: torch.device | str) -> PointDataset:
        return PointDataset(self.points.to(device), self.centers, self.std, self.name)

    def batch(self, idx: torch.Tensor, *, xflip: bool = False, generator: torch.Generator | None = None) -> Batch:
        return {"points": self.points[idx]}


def class_weights(labels: torch.Tensor, power: float) -> torch.Tensor:
    """Per-example sampling weights under which class c is drawn with probability proportional to
    count_c ** (1 - power): 0 keeps the data's class frequencies, 0.5 draws classes by the square root of
    their size (a 5-image class of 3,786 goes from 0.13 % of the batches to 1.4 %), 1 draws every class
    equally often."""
    labels = labels.cpu()
    return torch.bincount(labels).double()[labels].pow(-float(power))


class BatchSampler:
    """Shuffled epochs of indices, deterministic from (seed, epoch) so that a resumed run sees the
    same batches as an uninterrupted one. Its whole state is (epoch, position). With `weights`, an
    epoch is n indices drawn with replacement in proportion to them (class-balanced sampling)."""

    def __init__(self, n: int, batch: int, seed: int, weights: torch.Tensor | None = None) -> None:
        if n <= 0:
            raise DataError("the dataset is empty")
        self.n, self.batch_size, self.seed, self.weights = n, batch, seed, weights
        self.epoch, self.pos = 0, 0
        self._perm = self._permutation(0)

    def _permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        if self.weights is not None:
            return torch.multinomial(self.weights, self.n, replacement=True, generator=g)
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


class BatchStream:
    """An endless stream of batches: one or more index samplers (one per domain for unpaired data) and a
    function that turns their indices into a `Batch`. Its state is its samplers' state."""

    def __init__(self, samplers: dict[str, BatchSampler], make: Callable[[dict[str, torch.Tensor]], Batch]) -> None:
        self.samplers, self.make = samplers, make
        self.part = slice(None)

    def shard(self, rank: int, world_size: int) -> BatchStream:
        """Under distributed training: every process draws the same global batch of indices and keeps its own
        contiguous slice, so shards are disjoint, an epoch covers the data once, and the stream's state is
        the same on every process (a checkpoint resumes on any number of them)."""
        batch = next(iter(self.samplers.values())).batch_size
        if batch % world_size:
            raise DataError(
                f"--batch {batch} does not split evenly over {world_size} processes; --batch is the global batch: "
                f"use a multiple of {world_size}"
            )
        per = batch // world_size
        self.part = slice(rank * per, (rank + 1) * per)
        return self

    def next(self) -> Batch:
        return self.make({k: s.next()[self.part] for k, s in self.samplers.items()})

    def state_dict(self) -> dict:
        if list(self.samplers) == [""]:
            return self.samplers[""].state_dict()  # the one-sampler layout older checkpoints have
        return {k: s.state_dict() for k, s in self.samplers.items()}

    def load_state_dict(self, state: dict) -> None:
        if list(self.samplers) == [""]:
            self.samplers[""].load_state_dict(state)
        else:
            for k, s in self.samplers.items():
                s.load_state_dict(state[k])


def single_stream(ds: Any, batch: int, seed: int, xflip: bool, weights: torch.Tensor | None = None) -> BatchStream:
    """The stream of a dataset that draws one index per example (everything but unpaired domains)."""
    return BatchStream({"": BatchSampler(len(ds), batch, seed, weights)}, lambda idx: ds.batch(idx[""], xflip=xflip))


def _to_float(x: torch.Tensor) -> torch.Tensor:
    return x.float().mul_(2.0 / 255.0).sub_(1.0)  # uint8 -> [-1, 1]


def _crop_offsets(n: int, size: int, crop: int, random: bool) -> torch.Tensor:
    """Top-left corners (n, 2) of `crop`-pixel crops of `size`-pixel images: random, or centred."""
    if crop >= size:
        return torch.zeros(n, 2, dtype=torch.long)
    if not random:
        return torch.full((n, 2), (size - crop) // 2, dtype=torch.long)
    return torch.randint(0, size - crop + 1, (n, 2))


def _crop(imgs: torch.Tensor, offsets: torch.Tensor, crop: int, scale: int = 1) -> torch.Tensor:
    """Crop image i at offsets[i] * scale, `crop * scale` pixels on a side (B, C, H, W) -> (B, C, h, w)."""
    c = crop * scale
    if c >= imgs.shape[-1]:
        return imgs
    return torch.stack([im[:, y * scale : y * scale + c, x * scale : x * scale + c] for im, (y, x) in zip(imgs, offsets.tolist())])


def _flip_mask(n: int, device: torch.device) -> torch.Tensor:
    return (torch.rand(n, device="cpu") < 0.5).to(device)


@dataclass
class PairedDataset(Dataset):
    """Aligned pairs as uint8 (N, C, H, W) tensors of one size (channels may differ), e.g. edges and
    photos. Batches crop both sides at the same place and flip them together (pix2pix's jitter: store
    at 286 px, train on random 256 px crops)."""

    source: torch.Tensor
    target: torch.Tensor
    crop: int = 0  # side of the random crops; 0: the stored size (no cropping)
    domains: list[str] = field(default_factory=lambda: ["A", "B"])
    name: str = ""
    kind = "paired"

    def __post_init__(self) -> None:
        if self.source.shape[0] != self.target.shape[0] or self.source.shape[-2:] != self.target.shape[-2:]:
            raise DataError(
                f"paired data needs one target per source image of the same size; got {tuple(self.source.shape)} "
                f"and {tuple(self.target.shape)}"
            )
        if self.crop > self.source.shape[-1]:
            raise DataError(f"crop {self.crop} is larger than the images ({self.source.shape[-1]} px)")

    def __len__(self) -> int:
        return int(self.source.shape[0])

    @property
    def side(self) -> int:
        return self.crop or int(self.source.shape[-1])

    def spec(self, *, conditional: bool = True) -> DataSpec:
        return DataSpec(
            kind="paired", resolution=self.side, channels=int(self.target.shape[1]), in_channels=int(self.source.shape[1]),
            in_resolution=self.side, domains=list(self.domains),
        )

    def to(self, device: torch.device | str) -> PairedDataset:
        return PairedDataset(self.source.to(device), self.target.to(device), self.crop, self.domains, self.name)

    def batch(self, idx: torch.Tensor, *, xflip: bool = False, random: bool = True) -> Batch:
        s, t = self.source[idx], self.target[idx]
        off = _crop_offsets(s.shape[0], s.shape[-1], self.side, random)
        s, t = _crop(s, off, self.side), _crop(t, off, self.side)
        if xflip:
            flip = _flip_mask(s.shape[0], s.device)  # one coin per pair: both sides flip together
            s[flip], t[flip] = s[flip].flip(3), t[flip].flip(3)
        return {"source": _to_float(s), "target": _to_float(t)}

    def stream(self, batch: int, seed: int, *, xflip: bool = False) -> BatchStream:
        return single_stream(self, batch, seed, xflip)

    def preview(self, n: int) -> Batch:
        return self.batch(torch.arange(min(n, len(self)), device=self.source.device), random=False)


@dataclass
class UnpairedDataset(Dataset):
    """Two domains as uint8 (N_A, C, H, W) and (N_B, C, H, W), with no correspondence (CycleGAN). Each
    domain has its own shuffled order; a batch holds `A` and `B` drawn independently."""

    a: torch.Tensor
    b: torch.Tensor
    crop: int = 0
    domains: list[str] = field(default_factory=lambda: ["A", "B"])
    name: str = ""
    kind = "unpaired"

    def __post_init__(self) -> None:
        if self.a.shape[1:] != self.b.shape[1:]:
            raise DataError(
                f"the two domains need images of one size and channel count; got {tuple(self.a.shape[1:])} "
                f"and {tuple(self.b.shape[1:])} (prepare both at one --resolution)"
            )

    def __len__(self) -> int:
        return max(int(self.a.shape[0]), int(self.b.shape[0]))  # an "epoch" shows the larger domain once

    @property
    def side(self) -> int:
        return self.crop or int(self.a.shape[-1])

    def spec(self, *, conditional: bool = True) -> DataSpec:
        c = int(self.a.shape[1])
        return DataSpec(kind="unpaired", resolution=self.side, channels=c, in_resolution=self.side, in_channels=c, domains=list(self.domains))

    def to(self, device: torch.device | str) -> UnpairedDataset:
        return UnpairedDataset(self.a.to(device), self.b.to(device), self.crop, self.domains, self.name)

    def _side(self, imgs: torch.Tensor, xflip: bool, random: bool) -> torch.Tensor:
        imgs = _crop(imgs, _crop_offsets(imgs.shape[0], imgs.shape[-1], self.side, random), self.side)
        if xflip:
            flip = _flip_mask(imgs.shape[0], imgs.device)
            imgs[flip] = imgs[flip].flip(3)
        return _to_float(imgs)

    def stream(self, batch: int, seed: int, *, xflip: bool = False) -> BatchStream:
        samplers = {"A": BatchSampler(int(self.a.shape[0]), batch, seed), "B": BatchSampler(int(self.b.shape[0]), batch, seed + 1)}
        dev = self.a.device
        return BatchStream(
            samplers, lambda idx: {"A": self._side(self.a[idx["A"].to(dev)], xflip, True), "B": self._side(self.b[idx["B"].to(dev)], xflip, True)}
        )

    def preview(self, n: int) -> Batch:
        return {"A": self._side(self.a[:n].clone(), False, False), "B": self._side(self.b[:n].clone(), False, False)}


@dataclass
class SuperResDataset(Dataset):
    """Super-resolution pairs made on the fly from high-resolution images (N, C, H, W) uint8: random
    `crop`-pixel HR crops (flipped at random) and their `scale`x smaller versions by bicubic downscaling
    with antialiasing, so any folder of photos is training data."""

    hr: torch.Tensor
    scale: int = 4
    crop: int = 0  # HR crop side (a multiple of scale); 0: the whole image
    name: str = ""
    kind = "superres"

    def __post_init__(self) -> None:
        side = self.side
        if self.scale < 2:
            raise DataError(f"super-resolution needs a scale of 2 or more, not {self.scale}")
        if side % self.scale:
            raise DataError(f"the HR crop ({side} px) must be a multiple of the scale ({self.scale}); pick another crop")
        if side > self.hr.shape[-1]:
            raise DataError(f"crop {side} is larger than the images ({self.hr.shape[-1]} px); use a smaller crop")

    def __len__(self) -> int:
        return int(self.hr.shape[0])

    @property
    def side(self) -> int:
        return self.crop or int(self.hr.shape[-1])

    def spec(self, *, conditional: bool = True) -> DataSpec:
        c = int(self.hr.shape[1])
        return DataSpec(kind="superres", resolution=self.side, channels=c, in_resolution=self.side // self.scale, in_channels=c)

    def to(self, device: torch.device | str) -> SuperResDataset:
        return SuperResDataset(self.hr.to(device), self.scale, self.crop, self.name)

    def batch(self, idx: torch.Tensor, *, xflip: bool = False, random: bool = True) -> Batch:
        hr = self.hr[idx]
        hr = _crop(hr, _crop_offsets(hr.shape[0], hr.shape[-1], self.side, random), self.side)
        if xflip:
            flip = _flip_mask(hr.shape[0], hr.device)
            hr[flip] = hr[flip].flip(3)
        target = _to_float(hr)
        return {"source": degrade(target, self.scale), "target": target}

    def stream(self, batch: int, seed: int, *, xflip: bool = False) -> BatchStream:
        return single_stream(self, batch, seed, xflip)

    def preview(self, n: int) -> Batch:
        return self.batch(torch.arange(min(n, len(self)), device=self.hr.device), random=False)


def degrade(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """The low-resolution version of images in [-1, 1]: bicubic downscaling with antialiasing (as
    MATLAB's imresize, the SR papers' convention), clamped to [-1, 1]."""
    h, w = hr.shape[-2:]
    lr = F.interpolate(hr, size=(h // scale, w // scale), mode="bicubic", antialias=True, align_corners=False)
    return lr.clamp_(-1.0, 1.0)


def as_kind(ds: Dataset, kinds: tuple[str, ...], **options: Any) -> Dataset:
    """`ds` as one of the data kinds a family consumes: itself when it already is one; an image dataset
    becomes super-resolution pairs (options: scale, crop) for a family that wants them."""
    if ds.kind in kinds:
        return ds
    if "superres" in kinds and isinstance(ds, ImageDataset):
        scale = int(options.get("scale", 4))
        crop = int(options.get("crop", 0))
        if crop and crop > ds.resolution:
            crop = ds.resolution - ds.resolution % scale
        return SuperResDataset(ds.images, scale=scale, crop=crop, name=ds.name)
    return ds  # not convertible: the family's `check` names what it needs
