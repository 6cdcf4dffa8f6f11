"""A trained model rebuilt from its run folder alone (config + safetensors), for generation."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..config import TrainConfig
from ..errors import ConfigError
from ..families.base import DataSpec, Family
from ..training import checkpoint as ckpt
from ..training.device import select_device
from .grid import to_pil
from .latents import labels_for_seeds, latents_for_seeds


def find_run(run: str | os.PathLike) -> Path:
    """A run folder given as a path, or as a name under ./runs."""
    p = Path(run)
    for cand in (p, Path("runs") / p):
        if (cand / "config.json").exists() or (cand / "checkpoints").is_dir():
            return cand
    raise ConfigError(f"no run at {p} (nor runs/{p}); give a run folder made by `ganforge train`")


class Model:
    """Generate with a trained model: `Model.load("runs/NAME").generate(seeds=[0, 1, 2])`."""

    def __init__(self, family: Family, fam_cfg: Any, spec: DataSpec, nets: torch.nn.ModuleDict, meta: dict, run_dir: Path, device: torch.device):
        self.family, self.fam_cfg, self.spec, self.nets = family, fam_cfg, spec, nets
        self.meta, self.run_dir, self.device = meta, run_dir, device
        self.step = int(meta["step"])
        self.config = TrainConfig.from_dict(meta["config"])

    @classmethod
    def load(cls, run: str | os.PathLike, *, checkpoint: str | int = "latest", device: str = "cpu") -> Model:
        from ..training.loop import build_model

        run_dir = find_run(run)
        base = ckpt.resolve_checkpoint(run_dir, checkpoint)
        meta = ckpt.read_meta(base)
        cfg = TrainConfig.from_dict(meta["config"])
        spec = DataSpec.from_dict(meta["spec"])
        dev = select_device(device)
        family, fam_cfg, nets = build_model(cfg, spec, dev)
        ckpt.load_nets(nets, ckpt.load_tensors(base))
        nets.eval().requires_grad_(False)
        return cls(family, fam_cfg, spec, nets, meta, run_dir, dev)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return self.family.latent_shape(self.fam_cfg, self.spec)

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

    @torch.no_grad()
    def sample_latents(self, z: torch.Tensor, labels: torch.Tensor | None = None, batch: int = 64) -> torch.Tensor:
        """Images (or points) for given latents, in batches; float in [-1, 1], on the CPU."""
        outs = []
        for i in range(0, z.shape[0], batch):
            lab = labels[i : i + batch].to(self.device) if labels is not None else None
            outs.append(self.family.sample(self.nets, z[i : i + batch].to(self.device), lab).float().cpu())
        return torch.cat(outs)

    def generate(
        self, seeds: Sequence[int], *, label: int | str | None = None, output: str = "pil", batch: int = 64
    ) -> list[Image.Image] | torch.Tensor:
        """One image per seed (same seed, same image). output="pil" gives PIL images, "tensor" a float
        tensor (B, C, H, W) in [-1, 1]. For conditional models, `label` (index or class name) applies to
        every seed; by default seed s gets class s % num_classes."""
        z = latents_for_seeds(seeds, self.latent_shape)
        labels = labels_for_seeds(seeds, self.spec.num_classes, self.label_index(label))
        x = self.sample_latents(z, labels, batch=batch)
        if output == "tensor":
            return x
        if output != "pil":
            raise ValueError("output must be 'pil' or 'tensor'")
        if self.spec.kind != "image":
            raise ConfigError("this model generates points, not images: use output='tensor'")
        return to_pil(x)
