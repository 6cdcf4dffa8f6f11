"""The vocabulary that data, families, training and inference share: what the data is (`DataSpec`), one
batch of it (`Batch`), what a family can do (`Capabilities`) and what is asked of it (`NoiseRequest`,
`ImageRequest`).

This module sits below everything else (it imports only torch) so that `data/`, `families/`,
`training/` and `sample/` can all use it without importing each other.

Images are float tensors in [-1, 1], NCHW, everywhere in this vocabulary.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from .text import TEXT_BYTES, text_problem

# The kinds of data a dataset can hold and a family can consume.
#   image     labelled or unlabelled images, captioned or not      Batch: image (B,C,H,W), label (B,), text (B,TEXT_BYTES)
#   points    low-dimensional points (toy mixtures)                 Batch: points (B,D)
#   paired    aligned source/target pairs (pix2pix)                 Batch: source, target
#   unpaired  two domains with no correspondence (CycleGAN)         Batch: A, B (independent draws)
#   superres  high-resolution crops with their degraded low-res     Batch: source (LR), target (HR)
#   voxels    3-D occupancy grids (x, y, z; y up), e.g. shapes3d    Batch: image (B,1,R,R,R) in {-1,1}, label (B,)
#             (a volume under the key images use: what only batches or flattens examples treats it as one;
#             `resolution` is the grid's side, `channels` 1; samples are occupancy p as 2p - 1, occupied: > 0)
DATA_KINDS = ("image", "points", "paired", "unpaired", "superres", "voxels")
# Kinds whose families take an image in (`ImageRequest`) instead of noise.
IMAGE_INPUT_KINDS = ("paired", "unpaired", "superres")

Batch = dict[str, torch.Tensor]


# Captions cross the contract as UTF-8 bytes in a fixed-width uint8 tensor (B, TEXT_BYTES), zero-padded, so that
# they batch, shard, move between devices and index like labels. Families pick their own text encoder: a
# character-level one reads the bytes, a word-level one decodes them with `decode_text`.
def encode_text(texts: list[str] | tuple[str, ...]) -> torch.Tensor:
    """Captions -> uint8 (B, TEXT_BYTES), UTF-8, zero-padded. A caption longer than TEXT_BYTES bytes or with a
    NUL character raises ValueError (callers that take user text check `text_problem` first)."""
    out = torch.zeros(len(texts), TEXT_BYTES, dtype=torch.uint8)
    for i, t in enumerate(texts):
        problem = text_problem(t)
        if problem:
            raise ValueError(problem)
        raw = t.encode("utf-8")
        out[i, : len(raw)] = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    return out


def decode_text(t: torch.Tensor) -> list[str]:
    """uint8 (B, TEXT_BYTES) -> captions (the inverse of `encode_text`)."""
    rows = t.detach().to("cpu", torch.uint8).numpy()
    return [bytes(r).rstrip(b"\0").decode("utf-8", errors="replace") for r in rows]


# What a generator can be conditioned on, besides its noise (the vocabulary lives in ganforge.vocab).
from .vocab import CONDITIONING  # noqa: E402,F401

EXAMPLE_CAPTIONS = 64  # captions a DataSpec keeps as examples (a preview grid's worth)


@dataclass
class DataSpec:
    """What a family needs to know about its data to build networks (saved with every checkpoint)."""

    kind: str = "image"  # one of DATA_KINDS
    resolution: int = 32  # output image height == width, in pixels (the target side for image inputs)
    channels: int = 3  # output channels: 1 (grayscale) or 3 (RGB)
    num_classes: int = 0  # 0 for unlabelled data
    class_names: list[str] = field(default_factory=list)  # one name per class index
    dim: int = 2  # dimensionality of point data (kind == "points")
    in_resolution: int = 0  # input image side for image-input kinds (0: as `resolution`)
    in_channels: int = 0  # input channels for image-input kinds (0: as `channels`)
    domains: list[str] = field(default_factory=list)  # names of the two sides, e.g. ["edges", "photos"]
    # Captioned data: example captions (the data's first `EXAMPLE_CAPTIONS`), used where no prompt is given
    # (seed s gets captions[s % len]: previews, evaluation, `generate` without a prompt) and offered by the
    # studio. Empty: the data has no captions.
    captions: list[str] = field(default_factory=list)

    @property
    def captioned(self) -> bool:
        return bool(self.captions)

    @property
    def image_input(self) -> bool:
        return self.kind in IMAGE_INPUT_KINDS

    @property
    def source_resolution(self) -> int:
        return self.in_resolution or self.resolution

    @property
    def source_channels(self) -> int:
        return self.in_channels or self.channels

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class Capabilities:
    """What a family's trained model can do, so callers ask instead of probing with `getattr`.

    Declared per family as a class attribute; `Family.capabilities_for(nets)` completes it for one built
    model (its conditioning, its input stride).
    """

    inputs: str = "noise"  # "noise": generates from latents addressed by seed; "image": translates images
    truncation: bool = False  # honours NoiseRequest.truncation != 1 (the truncation trick toward the mean w)
    noise_modes: tuple[str, ...] = ()  # per-pixel noise modes it honours ("const", "random", "none")
    style_mixing: bool = False  # has a W space with per-layer styles (mix, project)
    encode: bool = False  # maps images to latents (`Family.encode`): walks between real images
    directions: tuple[str, ...] = ()  # image-input models: the directions they translate ("AtoB", "BtoA")
    fully_convolutional: bool = False  # image-input models: translate inputs of any size that is a multiple of...
    size_multiple: int = 1  # ...this stride (set per built model by `capabilities_for`)
    conditioning: str = "none"  # what a built model is conditioned on: one of CONDITIONING
    # Its G update adds the run's --constraint and --topk terms (`StepContext.generator_terms`), as
    # `families.adversarial.adversarial_step` does; families without it refuse those options.
    generator_terms: bool = False


@dataclass
class NoiseRequest:
    """Images (or points) from latents. Build it with `sample.requests.noise_request(seeds, ...)` to address
    images by seed; `z` and `labels` are then the seeds' own, whatever batch they are generated in."""

    z: torch.Tensor  # (B, *latent_shape)
    labels: torch.Tensor | None = None  # (B,) int64 class indices, for conditional models
    truncation: float = 1.0  # psi: 1 = no truncation, 0 = the average image
    noise_mode: str = "const"  # per-pixel noise for models that have it: const | random | none
    w: torch.Tensor | None = None  # (B, num_ws, w_dim): W-space latents, used instead of z when given
    text: torch.Tensor | None = None  # (B, TEXT_BYTES) uint8 captions (`encode_text`), for text-conditioned models

    def __len__(self) -> int:
        return int(self.z.shape[0]) if self.w is None else int(self.w.shape[0])

    def slice(self, start: int, stop: int) -> NoiseRequest:
        return dataclasses.replace(
            self,
            z=self.z[start:stop],
            labels=None if self.labels is None else self.labels[start:stop],
            w=None if self.w is None else self.w[start:stop],
            text=None if self.text is None else self.text[start:stop],
        )

    def to(self, device: torch.device | str) -> NoiseRequest:
        return dataclasses.replace(
            self,
            z=self.z.to(device),
            labels=None if self.labels is None else self.labels.to(device),
            w=None if self.w is None else self.w.to(device),
            text=None if self.text is None else self.text.to(device),
        )


@dataclass
class ImageRequest:
    """Translate images: `images` (B, C, H, W) in [-1, 1] at the model's input size (or a multiple of the
    network's stride, for fully convolutional models)."""

    images: torch.Tensor
    direction: str = "AtoB"  # for two-way models (CycleGAN); one-way models accept only their own
    labels: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def slice(self, start: int, stop: int) -> ImageRequest:
        return dataclasses.replace(
            self, images=self.images[start:stop], labels=None if self.labels is None else self.labels[start:stop]
        )

    def to(self, device: torch.device | str) -> ImageRequest:
        return dataclasses.replace(
            self, images=self.images.to(device), labels=None if self.labels is None else self.labels.to(device)
        )


Request = NoiseRequest | ImageRequest
