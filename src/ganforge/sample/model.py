"""A trained model rebuilt from its run folder alone (config + safetensors), for generation.

Inference never imports `training/`: it rebuilds the networks generation needs (`Family.generator_nets`,
read from their EMA copies by default), loads only their tensors, and generates through the one
`Sampler` path.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .. import checkpoint as ckpt
from ..config import TrainConfig
from ..device import select_device
from ..errors import ConfigError, DataError
from ..families.base import Family
from ..families.build import build_model
from ..images import array_to_pil, convert, from_uint8, open_image, pil_to_array, pil_to_tensor, png_bytes, to_pil
from ..locate import find_run  # re-exported: training/ and the CLI import it from here
from ..spec import Capabilities, DataSpec, ImageRequest, NoiseRequest, encode_text, text_problem
from .sampler import Sampler
from .seeds import check_seeds

ImageInput = str | os.PathLike | bytes | Image.Image | np.ndarray


class Model:
    """Generate with a trained model: `Model.load("runs/NAME").generate(seeds=[0, 1, 2])`."""

    def __init__(
        self, family: Family, fam_cfg: Any, spec: DataSpec, nets: torch.nn.ModuleDict, meta: dict, run_dir: Path, device: torch.device
    ):
        self.family, self.fam_cfg, self.spec, self.nets = family, fam_cfg, spec, nets
        self.meta, self.run_dir, self.device = meta, run_dir, device
        self.step = int(meta["step"])
        self.config = TrainConfig.from_dict(meta["config"])
        shape = family.latent_shape(fam_cfg, spec) if family.capabilities.inputs == "noise" else ()
        self.sampler = Sampler(family, nets, spec, shape, device)

    @classmethod
    def load(
        cls,
        run: str | os.PathLike,
        *,
        checkpoint: str | int = "latest",
        device: str = "cpu",
        nets: str = "generator",
        ema: bool = True,
        runs_dir: str | os.PathLike | None = None,
    ) -> Model:
        """`nets="generator"` loads only what generation needs; "all" loads every network (e.g. to
        inspect D). `ema=False` uses the raw generator weights instead of their moving average."""
        if nets not in ("generator", "all"):
            raise ConfigError(f"nets must be 'generator' or 'all', not {nets!r}")
        run_dir = find_run(run, runs_dir)
        base = ckpt.resolve_checkpoint(run_dir, checkpoint)
        meta = ckpt.read_meta(base)
        cfg = TrainConfig.from_dict(meta["config"])
        spec = DataSpec.from_dict(meta["spec"])
        dev = select_device(device)
        if nets == "all":
            if "exported" in meta:
                raise ConfigError(f"{run_dir} is an exported model: it holds the generator only, so use nets='generator'")
            family, fam_cfg, net_dict = build_model(cfg, spec, dev)
            ckpt.load_nets(net_dict, ckpt.load_tensors(base))
            if not ema:
                for dst in family.ema.values():
                    net_dict.pop(dst, None)
        else:
            from ..registry import get_family

            names = get_family(cfg.model).generator_nets
            family, fam_cfg, net_dict = build_model(cfg, spec, dev, only=names)
            stored = ckpt.load_tensors(base, prefixes=("net/",))
            have = {k.split("/")[1] for k in stored}
            sources = {}
            for name in net_dict:
                copy_name = family.ema.get(name)
                sources[name] = copy_name if ema and copy_name in have else name
            if "exported" in meta and not {sources[n] for n in net_dict} <= have:
                raise ConfigError(
                    f"{run_dir} is an exported model holding only {', '.join(sorted(have))}; load it with ema=True "
                    "(drop --no-ema)"
                )
            ckpt.load_nets(net_dict, stored, sources=sources)
        family.load_state_dict(net_dict, ckpt.family_state(ckpt.load_tensors(base, prefixes=("family/",)), meta))
        net_dict.eval().requires_grad_(False)
        return cls(family, fam_cfg, spec, net_dict, meta, run_dir, dev)

    # ---- what the model is ---------------------------------------------------------------------
    @property
    def capabilities(self) -> Capabilities:
        """What this model can do: its family's capabilities completed for the built model (conditioning, stride)."""
        return self.family.capabilities_for(self.nets)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return self.sampler.latent_shape

    @property
    def class_names(self) -> list[str]:
        return list(self.spec.class_names)

    def label_index(self, label: int | str | None) -> int | None:
        """A class index from an index or a class name (None: unconditional or seed-chosen)."""
        if label is None:
            return None
        if not self.spec.num_classes:
            raise ConfigError("this model is not class-conditional; drop --class")
        if isinstance(label, str) and not label.lstrip("-").isdigit():
            if label not in self.spec.class_names:
                raise ConfigError(f"unknown class '{label}'; classes: {', '.join(self.spec.class_names)}")
            return self.spec.class_names.index(label)
        idx = int(label)
        if not 0 <= idx < self.spec.num_classes:
            raise ConfigError(f"class {idx} out of range: this model has classes 0..{self.spec.num_classes - 1}")
        return idx

    def check_prompt(self, prompt: str | None) -> None:
        """One line when `prompt` cannot be used: the model reads no text, or the text cannot be a caption."""
        text_model = self.capabilities.conditioning == "text"
        if prompt is None:
            if text_model and not self.spec.captions:
                raise ConfigError("this model is conditioned on text; give a prompt (--prompt 'red heart')")
            return
        if not text_model:
            raise ConfigError(f"model '{self.family.name}' is not conditioned on text; drop the prompt (--prompt)")
        problem = text_problem(prompt)
        if problem:
            raise ConfigError(problem)

    @property
    def example_prompts(self) -> list[str]:
        """Captions of the training data to try (text-conditioned models), distinct, in data order."""
        return list(dict.fromkeys(self.spec.captions))

    # ---- noise -> images -----------------------------------------------------------------------
    def sample_latents(
        self,
        z: torch.Tensor,
        labels: torch.Tensor | Sequence[int] | None = None,
        *,
        trunc: float = 1.0,
        noise_mode: str = "const",
        batch: int = 64,
        prompt: str | None = None,
    ) -> torch.Tensor:
        """Samples for explicit latents z (N, *latent_shape) and class indices (and, for text-conditioned
        models, one prompt for all): float on the CPU, images clamped to [-1, 1] by the family's output layer."""
        self._need("noise")
        self.check_prompt(prompt)
        lab = torch.as_tensor(labels, dtype=torch.long) if labels is not None else None
        text = encode_text([prompt] * len(z)) if prompt is not None else None
        return self.sampler.run(NoiseRequest(z, lab, truncation=trunc, noise_mode=noise_mode, text=text), batch=batch)

    def generate(
        self,
        seeds: str | int | Sequence[int],
        *,
        label: int | str | None = None,
        trunc: float = 1.0,
        noise_mode: str = "const",
        output: str = "pil",
        batch: int = 64,
        label_counts: Sequence[float] | None = None,
        prompt: str | None = None,
    ) -> list[Image.Image] | list[bytes] | torch.Tensor:
        """One image per seed (same seed, same image). `seeds`: whole numbers from 0 to 2**32 - 1 (a list,
        a range, an integer array) or a string in the CLI's --seeds syntax, "0-3,7"; anything else (negative,
        fractional, too large, none) raises a one-line ConfigError. output="pil" gives PIL images, "png" PNG bytes,
        "tensor" a float tensor (B, C, H, W) in [-1, 1] (voxel models: volumes (B, 1, R, R, R), and renderings as
        PIL images or PNG). For conditional models, `label` (index or class
        name) applies to every seed; else, with `label_counts` (one count per class, e.g. the real data's
        histogram), each seed's class is drawn with those frequencies, fixed by the seed, as evaluation
        does; by default seed s gets class s % num_classes. Text-conditioned models take `prompt` (a caption,
        at most `spec.TEXT_BYTES` bytes of UTF-8) for every seed; without one, seed s gets the training data's
        example caption s % len (`spec.captions`). A prompt for a model that reads no text raises."""
        self._need("noise")
        self.check_prompt(prompt)
        if output not in ("pil", "png", "tensor"):
            raise ValueError("output must be 'pil', 'png' or 'tensor'")
        seeds = check_seeds(seeds)
        x = self.sampler.seeds(
            seeds, label=self.label_index(label), truncation=trunc, noise_mode=noise_mode, batch=batch,
            label_counts=label_counts, prompt=prompt,
        )
        if output == "tensor":
            return x
        if self.spec.kind == "voxels":  # 3-D shapes: their shaded renderings (meshes: sample.shapes.write_meshes)
            from .shapes import render_volumes

            x = render_volumes(x)
        elif self.spec.kind != "image":
            raise ConfigError("this model generates points, not images: use output='tensor'")
        pil = to_pil(x)
        return pil if output == "pil" else [png_bytes(im) for im in pil]

    # ---- images -> images ----------------------------------------------------------------------
    def translate(
        self,
        images: torch.Tensor | ImageInput | Sequence[ImageInput],
        *,
        direction: str = "AtoB",
        output: str = "pil",
        batch: int = 16,
        tile: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Image.Image] | list[bytes] | list[np.ndarray] | torch.Tensor:
        """Translate images with an image-input model (pix2pix, CycleGAN, super-resolution).

        `images`: a float tensor (B, C, H, W) in [-1, 1], or one or a list of PIL images, uint8 arrays,
        PNG/JPEG bytes or file paths (transparency flattened on white, converted to the model's
        channels). Images are resized to the model's input size unless the family is fully
        convolutional; then they keep their size (reflect-padded to the network's multiple and cropped
        back), and images larger than `tile` pixels on a side are translated in overlapping tiles, so
        memory stays bounded whatever the size (see `sample.tiling`). `tile` defaults to 512 output pixels
        (256 input pixels at most): a 4000x3000 photo enlarged 4x then needs under 2 GB (measured: 128-pixel
        input tiles; 256 took 2.2 GB). `output="array"` gives uint8 (H, W, C) arrays. `progress(done, total)`
        is called after each tile of a tiled image (`output_plan` tells the tile count beforehand)."""
        self._need("image")
        if output not in ("pil", "png", "tensor", "array"):
            raise ValueError("output must be 'pil', 'png', 'tensor' or 'array'")
        if isinstance(images, torch.Tensor):
            return self._finish([self._translate_tensor(images, direction, batch)], output)
        scale, tile = self._scale(), self._tile(tile)
        items = images if isinstance(images, (list, tuple)) else [images]
        outs: list[torch.Tensor | Image.Image] = []
        for item in items:  # images of different sizes go one at a time
            arr = self._load_input(item)  # (H, W, C) uint8
            big = max(arr.shape[:2]) > tile
            if big and self.capabilities.fully_convolutional:
                from .tiling import translate_tiled

                res = translate_tiled(
                    lambda x: self._translate_tensor(x, direction, 1), arr, scale=scale, tile=tile, progress=progress
                )
                outs.append(res if output == "array" else array_to_pil(res))
            else:
                x = from_uint8(arr)[None]  # (1, C, H, W) in [-1, 1]
                outs.append(self._translate_tensor(x, direction, batch))
        return self._finish(outs, output)

    def _scale(self) -> int:
        """Output side / input side (4 for a 4x super-resolution model, else 1)."""
        return max(self.spec.resolution // max(self.spec.source_resolution, 1), 1)

    def _tile(self, tile: int | None) -> int:
        return tile if tile is not None else max(64, min(256, 512 // self._scale()))

    def output_plan(self, width: int, height: int, tile: int | None = None) -> tuple[int, int, int]:
        """(output width, output height, tiles) that `translate` gives an input of width x height: the
        size times the model's scale for fully convolutional families (else the model's resolution), and
        the number of tiles it runs in (0: in one piece)."""
        self._need("image")
        if not self.capabilities.fully_convolutional:
            return self.spec.resolution, self.spec.resolution, 0
        s, t = self._scale(), self._tile(tile)
        if max(width, height) <= t:
            return width * s, height * s, 0
        from .tiling import tile_count

        return width * s, height * s, tile_count(height, width, tile=t)

    @staticmethod
    def _finish(
        outs: Sequence[torch.Tensor | Image.Image | np.ndarray], output: str
    ) -> list[Image.Image] | list[bytes] | list[np.ndarray] | torch.Tensor:
        if output == "array":  # uint8 (H, W, C) arrays: what a writer of very large images wants (no PIL copy)
            arrays: list[np.ndarray] = []
            for o in outs:
                arrays += [o] if isinstance(o, np.ndarray) else [np.asarray(p) for p in (to_pil(o) if isinstance(o, torch.Tensor) else [o])]
            return [a[:, :, None] if a.ndim == 2 else a for a in arrays]
        if output == "tensor":
            ts = [o if isinstance(o, torch.Tensor) else pil_to_tensor(o)[None] for o in outs]
            if len({tuple(t.shape[1:]) for t in ts}) > 1:
                raise ConfigError("the images have different sizes; use output='pil' or translate them one at a time")
            return torch.cat(ts)
        pil: list[Image.Image] = []
        for o in outs:
            pil += to_pil(o) if isinstance(o, torch.Tensor) else [o]
        if output == "pil":
            return pil
        return [png_bytes(im) for im in pil]

    def _translate_tensor(self, x: torch.Tensor, direction: str, batch: int) -> torch.Tensor:
        caps = self.capabilities
        h, w = x.shape[-2:]
        if not caps.fully_convolutional:
            side = self.spec.source_resolution
            if (h, w) != (side, side):
                x = F.interpolate(x.float(), size=(side, side), mode="bicubic", antialias=True, align_corners=False).clamp(-1, 1)
            return self.sampler.run(ImageRequest(x, direction=direction), batch=batch)
        m = caps.size_multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
        y = self.sampler.run(ImageRequest(x, direction=direction), batch=batch)
        scale = y.shape[-1] / x.shape[-1]
        return y[..., : round(h * scale), : round(w * scale)]

    def _load_input(self, item: ImageInput) -> np.ndarray:
        """One image as uint8 (H, W, C) with the model's input channels."""
        try:
            if isinstance(item, Image.Image):
                im = item
            elif isinstance(item, np.ndarray):
                im = array_to_pil(item)
            else:  # files and uploads as `prepare` reads them: no FIFO, no pixel bomb, EXIF upright
                im = open_image(bytes(item) if isinstance(item, bytearray) else item, mode=None)
            im = convert(im, "L" if self.spec.source_channels == 1 else "RGB")  # on white; 16-bit scaled
        except (OSError, ValueError, TypeError, Image.DecompressionBombError) as exc:
            raise DataError(f"cannot read input image {item if isinstance(item, (str, os.PathLike)) else type(item).__name__} ({exc})") from exc
        return pil_to_array(im)  # a writable copy

    def _need(self, inputs: str) -> None:
        if self.capabilities.inputs != inputs:
            if inputs == "noise":
                raise ConfigError(
                    f"model '{self.family.name}' translates images: use `ganforge translate RUN IMAGE...` "
                    "(or Model.translate(images)), not seeds"
                )
            raise ConfigError(f"model '{self.family.name}' generates from seeds: use generate(seeds), not images")

