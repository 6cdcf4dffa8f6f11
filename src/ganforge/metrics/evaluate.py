"""Evaluate generated images against real ones: sources and generators in, one flat dict of numbers out.

    ev = Evaluator("digits", metrics=["fid", "kid", "coverage"], extractor="classifier")
    ev(lambda start, n: model.generate(seeds=range(start, start + n), output="tensor"), num=10_000)

An `Evaluator` holds the extractor and the real-data statistics in memory (and on disk, see
`ganforge.metrics.cache`), so calling it every N training steps only costs the generated images.
`evaluate` and `evaluate_generator` are one-call conveniences on top of it.

Every result names what it was computed with (extractor, weights checksum, resize mode, numbers of
real and generated images) and carries a label such as `fid10k[inception-2015-12-05]`.
"""

from __future__ import annotations

import json
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__, distributed
from ..data.dataset import ImageDataset, PointDataset, load_dataset
from ..errors import ConfigError, DataError
from ..images import quantize
from ..sample.model import Model
from ..spec import DataSpec
from . import weights as W
from .cache import STATS_VERSION, RealStats, dataset_sha256, load_stats, save_stats, stats_path
from .classes import class_coverage, class_histogram
from .extractors import DinoV2Extractor, EfficientNetExtractor, FeatureExtractor, InceptionExtractor
from .frechet import RunningStatistics, feature_statistics, frechet_distance, frechet_distance_to_features
from .inception_score import inception_score
from .kid import kernel_inception_distance
from .memorization import (
    image_groups,
    memorization_ratios,
    nearest,
    real_self_memorization,
    reference_nn,
    summarize,
)
from .prdc import knn_radii, prdc

# A generator as the evaluator sees it: (start, count) -> float images in [-1, 1], (count, C, H, W).
# Image i must depend only on i (e.g. seed = i), so that evaluations are reproducible.
GenerateFn = Callable[[int, int], torch.Tensor]
# Anything that holds images: a built-in name, a folder, a zip, a prepared archive, a dataset, a tensor
# (uint8 0..255, or float in [-1, 1]).
ImageSource = str | os.PathLike | ImageDataset | torch.Tensor

METRICS = ("fid", "kid", "pr", "dc", "is", "coverage", "memorization")
# The keys each metric adds to a result.
RESULT_KEYS: dict[str, tuple[str, ...]] = {
    "fid": ("fid",),
    "kid": ("kid_mean", "kid_std"),
    "pr": ("precision", "recall"),
    "dc": ("density", "coverage"),
    "is": ("is_mean", "is_std"),
    "coverage": ("classes_covered", "class_kl"),
    # Median ratio, its 10th percentile and the share of copies (ratio < 0.5), in pixels and in the
    # extractor's features (see `memorization`).
    "memorization": (
        "memorization_px",
        "memorization_px_p10",
        "copies_px",
        "memorization_feat",
        "memorization_feat_p10",
        "copies_feat",
    ),
}
# Direction of every numeric result key, for choosing a `best` checkpoint and for tables.
LOWER_IS_BETTER: dict[str, bool] = {
    "fid": True,
    "kid_mean": True,
    "precision": False,
    "recall": False,
    "density": False,
    "coverage": False,
    "is_mean": False,
    "classes_covered": False,
    "class_kl": True,
    # Memorisation: a higher ratio is farther from the training images (less copying), fewer copies is better.
    # Alone it would rank noise first (it is far from everything): rank by it only next to a quality metric.
    "memorization_px": False,
    "memorization_px_p10": False,
    "copies_px": True,
    "memorization_feat": False,
    "memorization_feat_p10": False,
    "copies_feat": True,
}
# The one key that ranks checkpoints for each metric name (as in --eval-metrics): recall and coverage
# for the manifold metrics, since a collapsed generator can keep a high precision/density.
PRIMARY_KEY: dict[str, str] = {
    "fid": "fid",
    "kid": "kid_mean",
    "pr": "recall",
    "dc": "coverage",
    "is": "is_mean",
    "coverage": "class_kl",
    # Pixels: the same number whatever the extractor, and a copy in pixels is a copy beyond doubt.
    "memorization": "memorization_px",
}
_ALIASES = {
    "prc": "pr",
    "precision": "pr",
    "recall": "pr",
    "density": "dc",
    "isc": "is",
    "classes": "coverage",
    "fd": "fid",
    "memorisation": "memorization",
    "mem": "memorization",
    "copies": "memorization",
}
from ..vocab import EXTRACTORS  # noqa: E402

PR_K, DC_K = 3, 5  # Kynkäänniemi et al. 2019; Naeem et al. 2020
# Generated images one evaluation takes: 20x the 50k papers use; FID's estimate stops moving long before.
MAX_NUM = 1_000_000
# KID, precision/recall, density/coverage, IS and memorization keep every generated image's features (Inception: 2048
# floats, 8 KB, plus 1008 logits for IS); FID alone streams them into running statistics, any count.
MAX_KEPT = 200_000
_KEPT_METRICS = ("kid", "pr", "dc", "is", "memorization")
# For FID, generated features are kept (and the result is exactly the in-memory one, as before) while they
# take at most this many bytes (Inception: 65k images); more are streamed into running statistics.
FEATURE_BYTES = 512 * 2**20
# Memorization keeps the real images (uint8) on a CUDA device while they take at most this many bytes.
PIXELS_ON_DEVICE = 2 * 2**30


def check_num(metrics: Sequence[str], num: int | None) -> None:
    """Refuse, before any work, a number of generated images that is absurd, or too many for the metrics
    that keep every image's features in memory (a one-line ConfigError naming the fix)."""
    if num is None:
        return
    if num > MAX_NUM:
        raise ConfigError(
            f"--num {num:,} is more than {MAX_NUM:,} generated images ({num / 50000:,.0f}x the 50,000 papers use, "
            "and FID stops changing long before); use --num 50000"
        )
    kept = [m for m in parse_metrics(metrics) if m in _KEPT_METRICS]
    if kept and num > MAX_KEPT:
        gb = num * (2048 + (1008 if "is" in kept else 0)) * 4 / 1e9
        raise ConfigError(
            f"{', '.join(kept)} keep every generated image's features in memory (about {gb:,.1f} GB for {num:,} images "
            f"with Inception): use --num {MAX_KEPT:,} or less for them, or --metrics fid alone, which streams any "
            f"count up to {MAX_NUM:,}"
        )


def parse_metrics(metrics: str | Sequence[str]) -> list[str]:
    """'fid,kid' or ['fid', 'kid'] -> validated, de-duplicated names in the given order."""
    items = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    out: list[str] = []
    for m in items:
        m = _ALIASES.get(m.strip().lower(), m.strip().lower())
        if not m:
            continue
        if m not in METRICS:
            raise ConfigError(f"unknown metric '{m}'; choose from {', '.join(METRICS)}")
        if m not in out:
            out.append(m)
    if not out:
        raise ConfigError(f"no metrics given; choose from {', '.join(METRICS)}")
    return out


def primary_key(metric: str) -> str:
    """The result key that ranks checkpoints for a metric name: primary_key('kid') == 'kid_mean'."""
    return PRIMARY_KEY[parse_metrics(metric)[0]]


def is_better(key: str, new: float, old: float | None) -> bool:
    """Whether result value `new` beats `old` for result key `key` (None: nothing to beat yet)."""
    if old is None or (isinstance(old, float) and np.isnan(old)):
        return not (isinstance(new, float) and np.isnan(new))
    return new < old if LOWER_IS_BETTER[key] else new > old


def count_label(n: int) -> str:
    """50000 -> '50k', 3786 -> '3786': the StyleGAN naming of metrics (fid50k)."""
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def metric_label(metric: str, extractor: str, num_fake: int) -> str:
    """e.g. fid50k[inception-2015-12-05], pr10k3[...], fd10k[dinov2-vitl14] (a Fréchet distance that is not FID)."""
    n = count_label(num_fake)
    base = {
        "fid": "fid" if extractor.startswith("inception") else "fd",
        "pr": "pr",
        "dc": "dc",
        "is": "is",
        "kid": "kid",
    }.get(metric, metric)
    suffix = {"pr": str(PR_K), "dc": str(DC_K)}.get(metric, "")
    if suffix and not n.endswith("k"):
        suffix = "_" + suffix  # pr1797_3, not pr17973
    return f"{base}{n}{suffix}[{extractor}]"


# ---------------------------------------------------------------------------------------------- sources


def as_dataset(
    source: ImageSource, *, resolution: int | None = None, channels: int | None = None, progress: bool = False
) -> ImageDataset:
    """Any image source as an in-memory uint8 dataset."""
    if isinstance(source, ImageDataset):
        ds = source
    elif isinstance(source, torch.Tensor):
        ds = ImageDataset(to_uint8(source).cpu(), None, [], name="tensor")
    else:
        loaded = load_dataset(source, resolution=resolution, channels=channels, progress=progress)
        if isinstance(loaded, PointDataset):
            raise DataError(f"'{source}' holds points, not images; image metrics need image data")
        return loaded
    if channels is not None:
        ds = ds.with_channels(channels)
    if resolution is not None:
        ds = ds.resized(resolution)
    return ds


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """uint8 stays; float images in [-1, 1] map to 0..255 rounding to nearest (StyleGAN's x * 127.5 + 128, truncated)."""
    if images.ndim != 4:
        raise DataError(f"expected images (B, C, H, W), got shape {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return images
    if not images.is_floating_point():
        raise DataError(f"expected uint8 or float images, got {images.dtype}")
    return quantize(images)


def _subset(n: int, k: int | None, seed: int = 0) -> torch.Tensor | None:
    """A fixed random subset of k of n indices (None: all). Random, not the first k, because datasets are
    often sorted by class."""
    if k is None or k >= n:
        return None
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:k].sort().values


def _part(idx: torch.Tensor | None, n: int, lo: int, hi: int) -> torch.Tensor | None:
    """Positions lo..hi-1 of the index list `idx` (None: all n images, in order)."""
    if idx is None and (lo, hi) == (0, n):
        return None
    return (torch.arange(n) if idx is None else idx)[lo:hi]


def _dataset_batches(ds: ImageDataset, idx: torch.Tensor | None, batch: int) -> Iterator[torch.Tensor]:
    n = len(ds) if idx is None else idx.numel()
    for i in range(0, n, batch):
        yield ds.images[i : i + batch] if idx is None else ds.images[idx[i : i + batch]]


def _generator_batches(fn: GenerateFn, num: int, batch: int, lo: int = 0) -> Iterator[torch.Tensor]:
    """Images lo..num-1 of the generator, in batches."""
    for start in range(lo, num, batch):
        count = min(batch, num - start)
        x = fn(start, count)
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[0] != count:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ConfigError(
                f"the generator returned {shape} for {count} images; expected a tensor ({count}, C, H, W)"
            )
        yield to_uint8(x)


def generator_from_model(
    model: Any, *, batch: int = 64, first_seed: int = 0, label_counts: Sequence[float] | None = None
) -> GenerateFn:
    """Adapt a `ganforge.load(...)` Model: image i is the model's image for seed first_seed + i. For a
    conditional model, `label_counts` (the real data's class histogram, `Evaluator.label_counts`) draws
    each seed's class with the real frequencies; without it, seed s gets class s % num_classes."""

    def fn(start: int, count: int) -> torch.Tensor:
        seeds = list(range(first_seed + start, first_seed + start + count))
        return model.generate(seeds=seeds, output="tensor", batch=batch, label_counts=label_counts)

    return fn


# ---------------------------------------------------------------------------------------------- evaluator


def _progress(it: Iterator[torch.Tensor], total: int, desc: str, enabled: bool) -> Iterator[torch.Tensor]:
    """A bar on a terminal; elsewhere a plain line with an ETA every 30 s (see `sample.progress`)."""
    if not enabled:
        yield from it
        return
    from ..sample.progress import Progress

    with Progress(total, "img", desc) as bar:
        for x in it:
            yield x
            bar.update(x.shape[0])


class Evaluator:
    """Real data + extractor + metrics, prepared once; call it with generated images as often as needed.

    real: the reference images (source name/path, dataset or tensor). metrics: names from METRICS.
    extractor: 'inception' (the FID network; numbers comparable with papers), 'classifier' (trained on the
    labelled real data; offline and fast, comparable only between runs on the same data), 'dinov2', or
    'efficientnet-lite0' (ImageNet weights shipped in a pip package, the `offline` extra: any folder, no download,
    no labels; numbers NOT comparable with Inception FID).
    num_real: use a fixed random subset of this many real images (None: all, StyleGAN's "_full").
    resolution/channels: bring the real data to the generator's format when loading it from a source.
    group: under distributed training, the process group: each process extracts its share of the images
    (real and generated) and the features are gathered in order, so every process gets the numbers one
    process would compute.
    max_seconds: refuse (ConfigError, after the first two batches) an evaluation of generated images that
    would take longer than this at the speed measured (None: no limit; `ganforge eval --max-hours`).

    Generated images are streamed: FID needs only their features' mean and covariance, accumulated batch
    by batch in float64 (`frechet.RunningStatistics`), so memory does not grow with `num`. KID, PR, DC,
    IS and memorization keep every image's features and so take at most MAX_KEPT images; no evaluation takes over
    MAX_NUM. Memorization finds each generated image's nearest real image in pixels as its batch passes (the
    images are not kept) and reuses the features the other metrics extract; it compares every pair of real
    images once per evaluator (N_real^2 distances in pixels, float64: seconds for 4k images of 32x32 on a CPU).
    """

    def __init__(
        self,
        real: ImageSource,
        *,
        metrics: str | Sequence[str] = ("fid",),
        extractor: str | FeatureExtractor = "inception",
        num_real: int | None = None,
        device: str | torch.device = "cpu",
        batch: int = 64,
        inception_weights: str | os.PathLike | None = None,
        cache: str | os.PathLike | None = None,
        use_cache: bool = True,
        allow_download: bool = True,
        resolution: int | None = None,
        channels: int | None = None,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        is_splits: int = 10,
        progress: bool = False,
        group: distributed.ProcessGroup | None = None,
        max_seconds: float | None = None,
    ) -> None:
        self.group = group or distributed.ProcessGroup()
        self.max_seconds = max_seconds
        self.metrics = parse_metrics(metrics)
        self.source = real
        if isinstance(extractor, str) and extractor not in EXTRACTORS:
            raise ConfigError(f"unknown extractor '{extractor}'; choose from {', '.join(EXTRACTORS)}")
        if batch < 1:
            raise ConfigError("batch must be at least 1")
        self.real = as_dataset(real, resolution=resolution, channels=channels, progress=progress)
        if len(self.real) < 2:
            raise DataError(f"the real data has {len(self.real)} image(s); metrics need at least 2")
        if num_real is not None and num_real < 2:
            raise ConfigError("num_real must be at least 2")
        needs_labels = "coverage" in self.metrics or extractor == "classifier"
        if needs_labels and (self.real.labels is None or self.real.num_classes < 2):
            what = "class coverage" if "coverage" in self.metrics else "the classifier extractor"
            raise DataError(
                f"{what} needs labelled real data (at least 2 classes) and '{self.real.name or 'the real data'}' has no labels; "
                "use labelled data (digits, emoji, a prepared dataset with labels) or drop it"
            )
        self.device = torch.device(device)
        self.batch = batch
        self.num_real = num_real
        self.inception_weights = inception_weights
        self.cache_root = W.cache_dir(cache)
        self.use_cache = use_cache
        self.allow_download = allow_download
        self.kid_subsets, self.kid_subset_size, self.is_splits = kid_subsets, kid_subset_size, is_splits
        self.progress = progress
        self._extractor_spec = extractor
        self._extractor: FeatureExtractor | None = extractor if isinstance(extractor, FeatureExtractor) else None
        self._classifier: FeatureExtractor | None = None
        self._real_hash: str | None = None
        self._stats: dict[str, RealStats] = {}  # extractor name -> statistics held in memory
        self.last_real_source = ""  # "memory", "disk" or "computed": where the last call found the real statistics
        # Memorisation's reference, computed once: the real images as pixel rows with their duplicate groups,
        # their nearest-neighbour distances in pixels, and in features (keyed by the statistics' description).
        self._px_rows: tuple[torch.Tensor, torch.Tensor] | None = None
        self._px_nn: torch.Tensor | None = None
        self._feat_nn: dict[str, torch.Tensor] = {}
        if self._extractor is not None and "is" in self.metrics and not self._extractor.has_logits:
            raise ConfigError(f"IS needs class logits, which the '{self._extractor.name}' extractor has not")
        if extractor == "dinov2" and "is" in self.metrics:
            raise ConfigError("IS needs class logits, which DINOv2 has not; use --extractor inception for IS")

    # -- lazily built parts

    @property
    def real_hash(self) -> str:
        if self._real_hash is None:
            self._real_hash = dataset_sha256(self.real.images, self.real.labels)
        return self._real_hash

    @property
    def extractor(self) -> FeatureExtractor:
        if self._extractor is None:
            spec = self._extractor_spec
            if spec == "inception":
                self._extractor = InceptionExtractor(
                    self.inception_weights,
                    device=self.device,
                    cache=self.cache_root,
                    allow_download=self.allow_download,
                )
            elif spec == "classifier":
                self._extractor = self.classifier
            elif spec == "efficientnet-lite0":
                self._extractor = EfficientNetExtractor(device=self.device)
            else:
                self._extractor = DinoV2Extractor(device=self.device, cache=self.cache_root)
        return self._extractor

    @property
    def classifier(self) -> FeatureExtractor:
        """The class predictor for class coverage: the extractor itself when it is the classifier."""
        if self._classifier is None:
            if isinstance(self._extractor, FeatureExtractor) and self._extractor.num_classes:
                self._classifier = self._extractor
            else:
                from .classifier import ClassifierExtractor

                self._classifier = ClassifierExtractor.for_dataset(
                    self.real, cache=self.cache_root, device=self.device, ds_hash=self.real_hash
                )
        return self._classifier

    def _extractors(self) -> list[tuple[str, FeatureExtractor]]:
        """(role, extractor) pairs that every image goes through: 'main' for features, 'classes' for coverage."""
        roles: list[tuple[str, FeatureExtractor]] = []
        main = None
        if any(m != "coverage" for m in self.metrics):
            main = self.extractor
            roles.append(("main", main))
        if "coverage" in self.metrics:
            clf = self.classifier
            if clf is main:
                roles = [("main+classes", main)]
            else:
                roles.append(("classes", clf))
        return roles

    def _needs(self, role: str) -> dict[str, Any]:
        main = "main" in role
        return {
            "features": main and any(m in self.metrics for m in ("kid", "pr", "dc", "memorization")),
            "radii": tuple(k for m, k in (("pr", PR_K), ("dc", DC_K)) if main and m in self.metrics),
            "class_hist": "classes" in role,
        }

    def _share(self, n: int) -> tuple[int, int]:
        """This process's contiguous share [lo, hi) of n images (all of them on one process)."""
        g = self.group
        return n * g.rank // g.world_size, n * (g.rank + 1) // g.world_size

    def _extract(
        self, batches: Iterator[torch.Tensor], roles: list[tuple[str, FeatureExtractor]], total: int, desc: str
    ) -> dict[str, dict[str, np.ndarray]]:
        """Features of `batches` (this process's share); under distributed training, every process's
        features, gathered in rank order (the order one process would have)."""
        out: dict[str, dict[str, list[torch.Tensor]]] = {name: {} for name, _ in roles}
        for x in _progress(batches, total, desc, self.progress and self.group.rank == 0):
            for name, ext in roles:
                for k, v in ext(x).items():
                    out[name].setdefault(k, []).append(v)
        feats = {name: {k: torch.cat(v) for k, v in d.items()} for name, d in out.items()}
        if self.group.active:
            dev = self.device if self.group.backend == "nccl" else torch.device("cpu")
            feats = {
                name: {k: distributed.gather_rows(v.to(dev), self.group).cpu() for k, v in d.items()}
                for name, d in feats.items()
            }
        return {name: {k: v.numpy() for k, v in d.items()} for name, d in feats.items()}

    def _extract_fake(
        self, batches: Iterator[torch.Tensor], roles: list[tuple[str, FeatureExtractor]], total: int
    ) -> dict[str, dict[str, Any]]:
        """The generated images' features, streamed: per role, "features" (all of them, kept when KID/PR/DC
        need them, when there are no more images than dimensions (FID's exact small form) or while they fit
        in FEATURE_BYTES), else "moments" (their RunningStatistics, for FID); "logits" (for IS) and "pred"
        (class predictions, for coverage). Under distributed training, every process's share, combined in
        rank order."""
        want_fid = "fid" in self.metrics
        want_feats = any(m in self.metrics for m in ("kid", "pr", "dc", "memorization"))
        moments: dict[str, RunningStatistics | None] = {name: None for name, _ in roles}
        lists: dict[str, dict[str, list[torch.Tensor]]] = {name: {} for name, _ in roles}
        keep_features: bool | None = None
        # Memorisation in pixels: each batch's nearest real image, found as the batch passes (the images
        # themselves are not kept), under "pixels": "dist" (float64) and "index" (into the real rows).
        px = self._pixel_rows()[0] if "memorization" in self.metrics else None
        if px is not None:
            self._pixel_nn()
            lists["pixels"] = {}
        timed: list[float] = []  # seconds per image of the first batches
        t = time.perf_counter()
        for i, x in enumerate(_progress(batches, total, "generated images", self.progress and self.group.rank == 0)):
            if px is not None:
                if tuple(x.shape[1:]) != tuple(self.real.images.shape[1:]):
                    raise DataError(
                        f"memorization compares generated and real images pixel by pixel, and they differ in size: "
                        f"generated {tuple(x.shape[1:])}, real {tuple(self.real.images.shape[1:])} (C, H, W); "
                        "use real data of the generated images' size"
                    )
                dist, index = nearest(x, px, device=self.device)
                lists["pixels"].setdefault("dist", []).append(dist)
                lists["pixels"].setdefault("index", []).append(index)
            for name, ext in roles:
                out = ext(x)
                if "main" in name:
                    f = out["features"]
                    if keep_features is None:  # decided once the feature size is known
                        d = f.shape[1]
                        # KID/PR/DC need the rows; FID takes an exact small form while N <= D, and the rows are
                        # kept while they are cheap, so that usual counts give exactly the numbers they gave.
                        keep_features = want_feats or total <= d or total * d * 4 <= FEATURE_BYTES
                        if want_fid and not keep_features:
                            moments[name] = RunningStatistics()
                    stats = moments[name]
                    if stats is not None:
                        stats.add(f)
                    if keep_features:
                        lists[name].setdefault("features", []).append(f)
                    if "is" in self.metrics:
                        lists[name].setdefault("logits", []).append(out["logits"])
                if "classes" in name:
                    pred = out["logits"][:, : ext.num_classes].argmax(1)
                    lists[name].setdefault("pred", []).append(pred)
            if i < 2:
                now = time.perf_counter()
                timed.append((now - t) / max(x.shape[0], 1))
                t = now
                if i == 1:
                    self._check_time(total, min(timed))
        result: dict[str, dict[str, Any]] = {}
        for name in lists:
            got: dict[str, Any] = {k: torch.cat(v) for k, v in lists[name].items()}
            stats = moments.get(name)
            if self.group.active:
                dev = self.device if self.group.backend == "nccl" else torch.device("cpu")
                got = {k: distributed.gather_rows(v.to(dev), self.group).cpu() for k, v in got.items()}
                if stats is not None:
                    stats = _gather_moments(stats, self.group, dev)
            result[name] = {k: v.numpy() for k, v in got.items()}
            result[name]["moments"] = stats
        return result

    def _check_time(self, total: int, per_image: float) -> None:
        """Refuse an evaluation that would run past `max_seconds` at the speed of its first batches."""
        if self.max_seconds is None or self.group.active or per_image <= 0:
            return
        est = per_image * total
        if est > self.max_seconds:
            from ..sample.progress import duration

            fits = max(int(self.max_seconds / per_image) // 1000 * 1000, 1000)
            raise ConfigError(
                f"{total:,} generated images would take about {duration(est)} at the {1 / per_image:,.1f} images/s "
                f"measured on the first batches (limit {duration(self.max_seconds)}); use --num {min(fits, 50000):,}, "
                "a GPU (--device cuda), or raise --max-hours"
            )

    # -- real statistics

    def _stats_meta(self, ext: FeatureExtractor, count: int) -> dict[str, Any]:
        return {
            "version": STATS_VERSION,
            **ext.identity(),
            "dataset": self.real.name,
            "dataset_sha256": self.real_hash,
            "count": count,
            "subset_seed": 0 if count < len(self.real) else None,
        }

    def real_stats(self) -> dict[str, RealStats]:
        """Statistics of the real data for each extractor role: from memory, else the disk cache, else computed."""
        roles = self._extractors()
        count = len(self.real) if self.num_real is None else min(self.num_real, len(self.real))
        todo: list[tuple[str, FeatureExtractor]] = []
        result: dict[str, RealStats] = {}
        sources = set()
        for role, ext in roles:
            need = self._needs(role)
            meta = self._stats_meta(ext, count)
            st = self._stats.get(ext.name)
            if st is not None and st.meta == meta and st.satisfies(**need):
                result[role] = st
                sources.add("memory")
                continue
            if self.use_cache:
                st = load_stats(stats_path(self.cache_root, meta), meta)
                if st is not None and st.satisfies(**need):
                    self._stats[ext.name] = result[role] = st
                    sources.add("disk")
                    continue
            todo.append((role, ext))
        if todo:
            sources.add("computed")
            idx = _subset(len(self.real), self.num_real)
            idx = _part(idx, len(self.real), *self._share(count))
            feats = self._extract(_dataset_batches(self.real, idx, self.batch), todo, count, "real images")
            for role, ext in todo:
                need = self._needs(role)
                f = feats[role]
                st = RealStats(meta=self._stats_meta(ext, count))
                st.mu, st.sigma = feature_statistics(f["features"])
                if need["features"] or need["radii"]:
                    st.features = f["features"].astype(np.float32)
                for k, v in knn_radii(f["features"], need["radii"]).items() if need["radii"] else ():
                    st.radii[k] = v.numpy()
                if need["class_hist"]:
                    st.class_hist = class_histogram(f["logits"][:, : ext.num_classes].argmax(1), ext.num_classes)
                old = self._stats.get(ext.name)
                if old is not None and old.meta == st.meta:  # keep what an earlier call computed and this one did not
                    st.features = st.features if st.features is not None else old.features
                    st.class_hist = st.class_hist if st.class_hist is not None else old.class_hist
                    st.radii = {**old.radii, **st.radii}
                self._stats[ext.name] = result[role] = st
                if self.use_cache and self.group.rank == 0:
                    save_stats(stats_path(self.cache_root, st.meta), st)
        self.last_real_source = "+".join(sorted(sources))
        return result

    def label_counts(self, spec: DataSpec) -> list[int] | None:
        """The real data's class histogram, for drawing a conditional generator's classes with the real
        frequencies (as StyleGAN2-ADA's metrics do); None when the model is unconditional or the real data
        is unlabelled or has other classes than the model."""
        labels, k = self.real.labels, spec.num_classes
        if k < 1 or labels is None or self.real.num_classes != k:
            return None
        names, real_names = list(spec.class_names), list(self.real.class_names)
        if names and real_names and names != real_names:
            return None
        return torch.bincount(torch.as_tensor(labels).long().flatten(), minlength=k)[:k].tolist()

    # -- memorisation's reference

    def _pixel_rows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The real images of the statistics (the same fixed subset, in the same order as their feature rows)
        as uint8 pixel rows (N, C*H*W), and their duplicate groups (`memorization.image_groups`)."""
        if self._px_rows is None:
            idx = _subset(len(self.real), self.num_real)
            rows = (self.real.images if idx is None else self.real.images[idx]).flatten(1)  # (N, C*H*W)
            groups = image_groups(rows)
            if self.device.type == "cuda" and rows.numel() <= PIXELS_ON_DEVICE:
                rows = rows.to(self.device)  # not copied again for every batch of generated images
            self._px_rows = (rows, groups)
        return self._px_rows

    def _pixel_nn(self) -> torch.Tensor:
        """Every real image's distance to its nearest other (non-duplicate) real image, in pixels."""
        if self._px_nn is None:
            rows, groups = self._pixel_rows()
            self._px_nn = reference_nn(rows, groups=groups, device=self.device, check=self._check_real_time)
        return self._px_nn

    def _feature_nn(self, st: RealStats) -> torch.Tensor:
        """The same in the extractor's features (rows of `st.features`, one per real image of `_pixel_rows`)."""
        key = json.dumps(st.meta, sort_keys=True)
        if key not in self._feat_nn:
            groups = self._pixel_rows()[1]
            self._feat_nn = {key: reference_nn(st.features, groups=groups, device=self.device)}
        return self._feat_nn[key]

    def _check_real_time(self, seconds: float) -> None:
        """Refuse nearest-neighbour distances between all real images that would take longer than `max_seconds`."""
        if self.max_seconds is not None and seconds > self.max_seconds:
            from ..sample.progress import duration

            n = self._pixel_rows()[0].shape[0]
            raise ConfigError(
                f"memorization compares every pair of the {n:,} real images in pixels, which would take about "
                f"{duration(seconds)} here (limit {duration(self.max_seconds)}); use --num-real "
                f"{max(n // 4, 2):,}, a GPU (--device cuda), or raise --max-hours"
            )

    def _memorization(self, px: dict[str, np.ndarray], fake: np.ndarray, st: RealStats) -> dict[str, float]:
        """The memorization keys from the generated images' nearest real images in pixels (`px`, found while
        they streamed past) and their features `fake` against the real features of `st`."""
        ratio_px = torch.from_numpy(px["dist"]) / self._pixel_nn()[torch.from_numpy(px["index"])]
        ratio_feat = memorization_ratios(fake, st.features, reference_nn_dist=self._feature_nn(st), device=self.device)
        out: dict[str, float] = {}
        for space, ratios in (("px", ratio_px), ("feat", ratio_feat)):
            got = summarize(ratios)
            out[f"memorization_{space}"] = got["median"]
            out[f"memorization_{space}_p10"] = got["p10"]
            out[f"copies_{space}"] = got["copies"]
        return out

    def real_memorization(self, *, seed: int = 0) -> dict[str, Any]:
        """The real data scored against itself, a random half (fixed by `seed`) as the samples and the other
        half as the reference, with the keys of the memorization metric: what a generator of genuinely new
        images from the real distribution scores, the ceiling for a generator's numbers. Needs "memorization"
        among the metrics (for the real features)."""
        if "memorization" not in self.metrics:
            raise ConfigError("real_memorization needs an evaluator with 'memorization' among its metrics")
        role = next(r for r, _ in self._extractors() if "main" in r)
        st = self.real_stats()[role]
        rows, groups = self._pixel_rows()
        out: dict[str, Any] = {}
        for space, data in (("px", rows), ("feat", st.features)):
            got = real_self_memorization(data, seed=seed, groups=groups, device=self.device)
            out[f"memorization_{space}"] = got["median"]
            out[f"memorization_{space}_p10"] = got["p10"]
            out[f"copies_{space}"] = got["copies"]
        out.update(
            num_samples=got["num_samples"], num_reference=got["num_reference"], seed=seed, extractor=self.extractor.name
        )
        return out

    # -- one evaluation

    def __call__(self, fake: ImageSource | GenerateFn, *, num: int | None = None) -> dict[str, Any]:
        """Evaluate generated images: a source (all of it, or a fixed random subset of `num`), a generator
        `fn(start, count)` called for images 0..num-1, or a `ganforge.load(...)` Model (seeds 0..num-1). Returns a flat dict (see RESULT_KEYS) plus what the
        numbers were computed with."""
        t0 = time.perf_counter()
        if isinstance(fake, Model):  # a `ganforge.load(...)` model: image i = seed i
            fake = generator_from_model(fake, batch=self.batch, label_counts=self.label_counts(fake.spec))
        if callable(fake) and not isinstance(fake, (torch.Tensor, ImageDataset)):
            if num is None or num < 1:
                raise ConfigError("give the number of images to generate (num >= 1)")
            check_num(self.metrics, int(num))  # before any work
            n_fake = int(num)
            lo, hi = self._share(n_fake)
            batches = _generator_batches(fake, hi, self.batch, lo)
        else:
            fds = as_dataset(fake, progress=self.progress)
            idx = _subset(len(fds), num)
            n_fake = len(fds) if idx is None else idx.numel()
            check_num(self.metrics, n_fake)
            batches = _dataset_batches(fds, _part(idx, len(fds), *self._share(n_fake)), self.batch)
        if n_fake < 2:
            raise DataError(f"only {n_fake} generated image(s); metrics need at least 2")
        roles = self._extractors()
        real = self.real_stats()
        self._check_sizes(n_fake, min(st.count for st in real.values()))
        feats = self._extract_fake(batches, roles, n_fake)

        res: dict[str, Any] = {}
        main_role = next((r for r, _ in roles if "main" in r), None)
        if main_role is not None:
            f, st = feats[main_role].get("features"), real[main_role]
            if "fid" in self.metrics:
                if f is not None:  # every row at hand: as before (exact small form when N <= D)
                    res["fid"] = frechet_distance_to_features(st.mu, st.sigma, f)
                else:
                    mu2, sigma2 = feats[main_role]["moments"].statistics()
                    res["fid"] = frechet_distance(st.mu, st.sigma, mu2, sigma2)
            if "kid" in self.metrics:
                res["kid_mean"], res["kid_std"] = kernel_inception_distance(
                    f, st.features, subsets=self.kid_subsets, subset_size=self.kid_subset_size
                )
            if "pr" in self.metrics or "dc" in self.metrics:
                radii = {k: torch.from_numpy(v) for k, v in st.radii.items()}
                res.update(
                    prdc(
                        st.features,
                        f,
                        pr_k=PR_K if "pr" in self.metrics else None,
                        dc_k=DC_K if "dc" in self.metrics else None,
                        real_radii=radii,
                    )
                )
            if "is" in self.metrics:
                res["is_mean"], res["is_std"] = inception_score(feats[main_role]["logits"], splits=self.is_splits)
            if "memorization" in self.metrics:
                res.update(self._memorization(feats["pixels"], f, st))
        if "coverage" in self.metrics:
            role = next(r for r, _ in roles if "classes" in r)
            clf = self.classifier
            pred = feats[role]["pred"]
            res["classes_covered"], res["class_kl"] = class_coverage(pred, real[role].class_hist)
            res["num_classes"] = clf.num_classes
            if main_role is None or clf is not self.extractor:
                res["classifier"] = clf.name
        ext = self.extractor if main_role is not None else self.classifier
        labels = [metric_label(m, ext.name if m != "coverage" else self.classifier.name, n_fake) for m in self.metrics]
        res.update(
            {
                "extractor": ext.name,
                "weights_sha256": ext.weights_sha256,
                "resize": ext.resize,
                "num_real": min(st.count for st in real.values()),
                "num_fake": n_fake,
                "real_sha256": self.real_hash[:16],
                "real_stats": self.last_real_source,  # memory | disk | computed: whether the cache was used
                "label": ",".join(labels),
                "seconds": round(time.perf_counter() - t0, 3),
                "ganforge_version": __version__,
            }
        )
        if ext.note:
            res["note"] = ext.note  # e.g. not comparable with Inception FID
        return res

    def _check_sizes(self, n_fake: int, n_real: int) -> None:
        """Say which metric needs more images, rather than letting a k-NN routine fail deep inside."""
        for m, k in (("pr", PR_K), ("dc", DC_K)):
            if m in self.metrics and min(n_fake, n_real) <= k:
                raise DataError(
                    f"'{m}' uses {k}-nearest neighbours and needs more than {k} images on each side "
                    f"(real {n_real}, generated {n_fake}); use more images"
                )


def _gather_moments(m: RunningStatistics, group: distributed.ProcessGroup, dev: torch.device) -> RunningStatistics:
    """Every process's running statistics merged in rank order (each process gets the same result)."""
    d = int(m.mean.shape[0]) if m.mean is not None else 0
    d = int(distributed.gather_rows(torch.tensor([d], device=dev), group).max())
    mean = m.mean if m.mean is not None else torch.zeros(d, dtype=torch.float64)
    m2 = m.m2 if m.m2 is not None else torch.zeros(d, d, dtype=torch.float64)
    ns = distributed.gather_rows(torch.tensor([m.n], device=dev), group).cpu()
    means = distributed.gather_rows(mean[None].to(dev), group).cpu()
    m2s = distributed.gather_rows(m2[None].to(dev), group).cpu()
    out = RunningStatistics()
    for n, mu, s2 in zip(ns.tolist(), means, m2s):
        out.merge(int(n), mu, s2)
    return out


# ---------------------------------------------------------------------------------------------- one-call API


def evaluate(
    fake: ImageSource | GenerateFn,
    real: ImageSource,
    *,
    metrics: str | Sequence[str] = ("fid",),
    num: int | None = None,
    extractor: str | FeatureExtractor = "inception",
    device: str | torch.device = "cpu",
    batch: int = 64,
    **kwargs: Any,
) -> dict[str, Any]:
    """Compare generated images (a source, or a generator fn(start, count) with `num`) with real ones.
    Extra keyword arguments go to `Evaluator` (num_real, inception_weights, cache, use_cache, progress...)."""
    ev = Evaluator(real, metrics=metrics, extractor=extractor, device=device, batch=batch, **kwargs)
    return ev(fake, num=num)


_EVALUATORS: OrderedDict[tuple, Evaluator] = OrderedDict()  # a small in-process cache for evaluate_generator
_MAX_EVALUATORS = 2


def evaluate_generator(
    generate_fn: GenerateFn,
    real: ImageSource,
    metrics: str | Sequence[str] = ("fid",),
    num: int = 10000,
    extractor: str = "inception",
    device: str | torch.device = "cpu",
    batch: int = 64,
    **kwargs: Any,
) -> dict[str, Any]:
    """Evaluate a generator; cheap to call repeatedly (e.g. every N training steps): the evaluator, its
    network and the real statistics stay in memory between calls with the same arguments (the real
    statistics are also cached on disk, for the next process)."""
    real_key: Any = real if isinstance(real, (str, Path)) else ("object", id(real))
    key = (
        str(real_key),
        tuple(parse_metrics(metrics)),
        extractor,
        str(device),
        batch,
        tuple(sorted((k, str(v)) for k, v in kwargs.items())),
    )
    ev = _EVALUATORS.get(key)
    # The cached evaluator holds `real` itself, so an id() cannot be reused by another object meanwhile.
    if ev is None or ev.source is not real and not isinstance(real, (str, Path)):
        ev = Evaluator(real, metrics=metrics, extractor=extractor, device=device, batch=batch, **kwargs)
        _EVALUATORS[key] = ev
        while len(_EVALUATORS) > _MAX_EVALUATORS:
            _EVALUATORS.popitem(last=False)
    _EVALUATORS.move_to_end(key)
    return ev(generate_fn, num=num)
