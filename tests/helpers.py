"""Helpers shared by tests: tiny datasets and configurations (import as `from helpers import ...`)."""

from __future__ import annotations

import numpy as np

from ganforge.config import TrainConfig
from ganforge.data.archive import ArchiveData, write_archive


def make_archive(path, n: int = 40, res: int = 16, classes: int = 0, channels: int = 3, seed: int = 0):
    """A small prepared dataset of coloured blobs, written in the StyleGAN2-ADA archive format."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:res, 0:res]
    imgs = np.zeros((n, res, res, channels), np.uint8)
    labels = rng.integers(0, max(classes, 1), n) if classes else None
    for i in range(n):
        cx, cy, r = rng.uniform(res * 0.3, res * 0.7, 2).tolist() + [rng.uniform(res * 0.15, res * 0.35)]
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
        color = rng.integers(0, 256, channels)
        imgs[i] = 255
        imgs[i][mask] = color
    names = [f"c{k}" for k in range(classes)] if classes else []
    write_archive(ArchiveData(imgs, labels, names), path)
    return path


def tiny_config(tmp_path, data: str, model: str = "dcgan", **kw) -> TrainConfig:
    fam = kw.pop("family", {"ngf": 8, "ndf": 8, "nz": 8} if model == "dcgan" else {})
    base = dict(
        data=data, model=model, steps=4, batch=8, runs_dir=str(tmp_path / "runs"), run="t",
        sample_every=1000, ckpt_every=1000, log_every=1, grid_size=4, precision="fp32", family=fam,
    )
    base.update(kw)
    return TrainConfig(**base)
