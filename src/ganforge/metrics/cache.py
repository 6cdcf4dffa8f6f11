"""On-disk cache of reference (real-data) statistics: .npz arrays (no pickle) + a JSON description.

The statistics of the real data do not change between evaluations of a training run, and computing
them is as costly as evaluating the generator. A cache entry is named by a hash of everything it
depends on (dataset content hash, extractor name, weights checksum, resize mode, number of images,
format version) and that description is stored beside it and compared again on load: if any field
differs, or the arrays are unreadable, the entry is recomputed and replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATS_VERSION = 1


def dataset_sha256(images: torch.Tensor, labels: torch.Tensor | None = None) -> str:
    """Content hash of uint8 images (N, C, H, W) and their labels: two datasets with the same hash are the
    same data, whatever file they came from."""
    h = hashlib.sha256(b"ganforge-dataset-v1")
    h.update(repr((tuple(images.shape), str(images.dtype))).encode())
    x = images.detach().cpu().contiguous().numpy()
    step = 4096  # images per update, to bound the temporary copy
    for i in range(0, x.shape[0], step):
        h.update(np.ascontiguousarray(x[i : i + step]).tobytes())
    if labels is not None:
        h.update(labels.detach().cpu().to(torch.int64).contiguous().numpy().tobytes())
    else:
        h.update(b"no-labels")
    return h.hexdigest()


@dataclass
class RealStats:
    """What the metrics need from the real data, for one extractor.

    mu/sigma (FID), count, and optionally the features themselves (KID and the k-NN metrics need them),
    k-NN radii for precision/recall and density/coverage, and the class histogram (class coverage)."""

    meta: dict[str, Any]
    mu: np.ndarray | None = None
    sigma: np.ndarray | None = None
    features: np.ndarray | None = None
    class_hist: np.ndarray | None = None
    radii: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return int(self.meta["count"])

    def satisfies(self, *, features: bool, radii: tuple[int, ...], class_hist: bool) -> bool:
        return (
            self.mu is not None
            and (not features or self.features is not None)
            and all(k in self.radii for k in radii)
            and (not class_hist or self.class_hist is not None)
        )


def cache_key(meta: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]


def stats_path(root: Path, meta: dict[str, Any]) -> Path:
    """<root>/stats/<dataset>-<extractor>-<key>.npz; the key covers the whole description."""
    label = "".join(
        c if c.isalnum() or c in "-_." else "_" for c in f"{meta.get('dataset', 'data')}-{meta['extractor']}"
    )
    return root / "stats" / f"{label}-{cache_key(meta)}.npz"


def _atomic_write(path: Path, write) -> None:  # noqa: ANN001 - write(file object)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_stats(path: Path, stats: RealStats) -> None:
    arrays: dict[str, np.ndarray] = {}
    for name in ("mu", "sigma", "features", "class_hist"):
        v = getattr(stats, name)
        if v is not None:
            arrays[name] = np.asarray(v)
    for k, v in stats.radii.items():
        arrays[f"radii_{k}"] = np.asarray(v, dtype=np.float32)
    _atomic_write(path, lambda f: np.savez(f, **arrays))
    _atomic_write(
        path.with_suffix(".json"), lambda f: f.write(json.dumps(stats.meta, indent=1, sort_keys=True).encode())
    )


def load_stats(path: Path, meta: dict[str, Any]) -> RealStats | None:
    """The cached entry if it exists, is readable and was computed with exactly `meta`; else None."""
    jpath = path.with_suffix(".json")
    if not path.is_file() or not jpath.is_file():
        return None
    try:
        stored = json.loads(jpath.read_text())
        if stored != meta:
            return None
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, json.JSONDecodeError):
        return None
    if "mu" not in arrays or "sigma" not in arrays:
        return None
    radii = {int(k.split("_", 1)[1]): v for k, v in arrays.items() if k.startswith("radii_")}
    stats = RealStats(
        meta=stored,
        mu=arrays["mu"],
        sigma=arrays["sigma"],
        features=arrays.get("features"),
        class_hist=arrays.get("class_hist"),
        radii=radii,
    )
    if stats.mu.shape[0] != stats.sigma.shape[0] or (
        stats.features is not None and stats.features.shape[0] != stats.count
    ):
        return None
    return stats
