"""A small CNN classifier trained by ganforge on the real labelled data: the offline, CPU-friendly extractor.

The FID Inception network needs a 95 MB download and costs ~6 GFLOP per image; on a laptop CPU that is
minutes per evaluation. For labelled data (digits, emoji) a classifier trained on that very data gives
(a) features for FID/KID/precision/recall that are meaningful for this domain, computed in milliseconds,
and (b) class predictions for generated images, so that class coverage and the KL divergence of the
class histogram expose mode collapse directly ("the GAN generates just one digit").

One score on every machine: training is deterministic on one machine (fixed seed, forked RNG, ordered
batches) but not across machines, whose CPU kernels (AVX2, AVX-512, AMX) round float32 differently. So
- the built-in labelled sets (`SHIPPED_CLASSIFIERS`: emoji, digits, digits16) use weights trained once by
  `scripts/train_classifiers.py` and shipped in the package (`ganforge/builtin/classifiers/`), checked
  against the sha256 recorded here and never retrained; a dataset gets them only when its content hash is
  the recorded one, so a modified copy trains its own;
- scoring runs in float64 (`ClassifierExtractor`), so the features agree across CPUs and thread counts
  to float32 rounding and FD/KID computed from them to ~1e-6. It costs about 4x the float32 time,
  which for this tiny network is ~0.2 s instead of ~0.05 s per 2,000 images on a 2-core CPU.
Other labelled data trains a classifier on first use, cached under `<cache>/classifiers/` keyed by the
dataset's content hash and `CLASSIFIER_VERSION`, as safetensors plus JSON (never pickle). Numbers computed
with it are labelled `classifier-v2-<weights sha256 prefix>`, the prefix of the weights' safetensors file
checksum: they compare between runs scored with the same weights, not with papers.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.dataset import ImageDataset
from ..errors import DataError
from . import weights as W
from .cache import _atomic_write, dataset_sha256
from .extractors import FeatureExtractor

# 2: the head is refit to convergence on the frozen features (version 1's features, so FD/KID/PR are unchanged;
# class predictions, and with them coverage and class KL, are not; see `_refit_head`).
# Shipped weights and float64 scoring came without a new version: the extractor's name carries the weights'
# checksum (`classifier-v2-<sha256[:8]>`), so results and cached real statistics tell them apart anyway.
CLASSIFIER_VERSION = 2
INPUT_RES = 32  # every image is resized to this before classification
FEATURE_DIM = 128

# The weights shipped for the built-in labelled sets, written once by scripts/train_classifiers.py (which
# prints these entries) to ganforge/builtin/classifiers/<name>-v<CLASSIFIER_VERSION>.safetensors + .json.
# "dataset": the content hash (images + labels, `dataset_sha256`) of the data they are for: only that exact
# data gets them, whatever its name; "weights" / "meta": sha256 of the .safetensors / .json files. "weights"
# is also the extractor's `weights_sha256` and its prefix is in the extractor's name.
SHIPPED_CLASSIFIERS: dict[str, dict[str, str]] = {
    "emoji": {
        "dataset": "6e53e91ac8aabe1e9b0127b9764aeb93f970d2a6ec31644359e8413ec962c5c4",
        "weights": "640a04780a46f9b2f512e06fca942c00fbae34d4a145821e224b8667e9074dcc",
        "meta": "723070758b963b62910f4747bf84c005dbe05d2f5e4f7db5d8f413660beaa346",
    },
    "digits": {
        "dataset": "4fcd2fa45f76cc3bc6c521a6c0ba8b276e9f831f21eeb15dc55609885e32c21e",
        "weights": "aa967089b3b426e7e7717ee7a1cab2f02a4bdbb331ec5c480b01f0c1c97baa90",
        "meta": "6157e8e0f42506e72629182cfd3676eb0f9815dba18c8b6ceaf9ab7111e57680",
    },
    "digits16": {
        "dataset": "a7278ec8057ff8ca316729127c491953c051418f02109abf8f3ad3c7118ce13e",
        "weights": "2cba547cc21ab089ae2423c52ce8c905c54157075ec675d07a8ef33da32bf912",
        "meta": "46a87c05ec6acdda28379aee5244b42c7fd2466fc2b4c33c6632da4bb282d8a9",
    },
}
SHIPPED_DATASETS = ("emoji", "digits", "digits16")  # the built-in labelled sets, as `load_dataset` names them


class SmallClassifier(nn.Module):
    """Three strided conv blocks (32 -> 16 -> 8 -> 4 px) and two linear layers; the 128-D hidden layer is the
    feature. About 1.6 MFLOP per image, so that training takes seconds on a CPU."""

    def __init__(self, channels: int, num_classes: int, width: int = 16) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [
                nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]

        self.body = nn.Sequential(*block(channels, width), *block(width, 2 * width), *block(2 * width, 4 * width))
        self.hidden = nn.Linear(4 * width * (INPUT_RES // 8) ** 2, FEATURE_DIM)
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: float (B, C, 32, 32) in [-1, 1] -> (features (B, 128), logits (B, K))."""
        h = self.body(x).flatten(1)  # (B, 4w * 4 * 4)
        feats = F.relu(self.hidden(h))
        return feats, self.head(feats)


def fit_input(x: torch.Tensor, channels: int, resolution: int = INPUT_RES) -> torch.Tensor:
    """Float images (B, C, H, W), in any pixel scale -> (B, channels, resolution, resolution) in the same scale,
    differentiably: BT.601 luma for RGB -> gray, repetition for gray -> RGB, a bilinear antialiased resize. The
    one path by which every classifier input (scoring, attacks) reaches its network's size and channels."""
    c = x.shape[1]
    if c != channels:
        if channels == 1 and c == 3:
            w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            x = (x * w).sum(1, keepdim=True)  # BT.601 luma
        elif channels == 3 and c == 1:
            x = x.expand(-1, 3, -1, -1)
        else:
            raise DataError(f"cannot feed {c}-channel images to a classifier trained on {channels}-channel data")
    if x.shape[-1] != resolution or x.shape[-2] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
    return x


def preprocess(images: torch.Tensor, channels: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 (B, C, H, W) -> `dtype` (B, channels, 32, 32) in [-1, 1]: the same path for real and generated images
    (float32 for training, float64 for scoring)."""
    return fit_input(images.to(dtype), channels) / 127.5 - 1.0


def _shift(x: torch.Tensor, g: torch.Generator, pad: int = 2) -> torch.Tensor:
    """Random translation by up to `pad` pixels per image (edge-replicated): generated images are rarely centred
    exactly like the data, and the classifier should not care."""
    b, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    off = torch.randint(0, 2 * pad + 1, (b, 2), generator=g)
    rows = (off[:, 0:1] + torch.arange(h))[:, :, None]  # (B, H, 1)
    cols = (off[:, 1:2] + torch.arange(w))[:, None, :]  # (B, 1, W)
    out = xp.permute(0, 2, 3, 1)[torch.arange(b)[:, None, None], rows, cols]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


@dataclass
class TrainedClassifier:
    net: SmallClassifier
    meta: dict[str, Any]


def train_classifier(
    ds: ImageDataset,
    *,
    seed: int = 0,
    steps: int = 300,
    batch: int = 64,
    lr: float = 3e-3,
    device: str | torch.device = "cpu",
    holdout: float = 0.1,
    head_steps: int = 500,
) -> TrainedClassifier:
    """Train deterministically on (1 - holdout) of the labelled data; report accuracy on the held-out rest.
    Then the head is refit to convergence on the frozen features (`_refit_head`)."""
    if ds.labels is None or ds.num_classes < 2:
        raise DataError(
            f"the classifier extractor needs labelled data with at least 2 classes; '{ds.name or 'the dataset'}' has "
            "no labels: use --extractor inception, or a labelled dataset (e.g. digits, emoji, class sub-folders)"
        )
    dev = torch.device(device)
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    n = len(ds)
    perm = torch.randperm(n, generator=g)
    n_test = max(1, int(round(n * holdout))) if n >= 20 else 0
    test_idx, train_idx = perm[:n_test], perm[n_test:]
    x_all = preprocess(ds.images, ds.channels)  # (N, C, 32, 32)
    y_all = ds.labels.to(torch.int64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # parameter init, without touching the caller's global RNG afterwards
        net = SmallClassifier(ds.channels, ds.num_classes).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )  # cosine
    net.train()
    order = torch.empty(0, dtype=torch.int64)
    for _ in range(steps):
        if order.numel() < batch:
            order = torch.cat([order, train_idx[torch.randperm(train_idx.numel(), generator=g)]])
        idx, order = order[:batch], order[batch:]
        x = _shift(x_all[idx], g).to(dev)
        # Label smoothing bounds the logits: over-confident softmax outputs underflow to denormals, 4x slower on CPUs.
        loss = F.cross_entropy(net(x)[1], y_all[idx].to(dev), label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    net.eval().requires_grad_(False)
    _refit_head(net, x_all[train_idx], y_all[train_idx], dev, head_steps)
    acc = float("nan")
    if n_test:
        with torch.inference_mode():
            pred = torch.cat(
                [net(x_all[test_idx[i : i + 512]].to(dev))[1].argmax(1).cpu() for i in range(0, n_test, 512)]
            )
        acc = float((pred == y_all[test_idx]).double().mean())
    meta = {
        "version": CLASSIFIER_VERSION,
        "dataset": ds.name,
        "dataset_sha256": dataset_sha256(ds.images, ds.labels),
        "channels": ds.channels,
        "input_resolution": INPUT_RES,
        "num_classes": ds.num_classes,
        "class_names": list(ds.class_names),
        "seed": seed,
        "steps": steps,
        "head_steps": head_steps,
        "train_images": int(train_idx.numel()),
        "heldout_images": int(n_test),
        "heldout_accuracy": acc,
        "train_seconds": round(time.perf_counter() - t0, 2),
    }
    return TrainedClassifier(net.cpu(), meta)


def _refit_head(net: SmallClassifier, x: torch.Tensor, y: torch.Tensor, dev: torch.device, steps: int) -> None:
    """Refit the linear head on the frozen 128-D features, full-batch, to convergence (Adam, `steps` steps).

    300 minibatch steps with label smoothing train the features well but leave the head short of
    convergence on rare classes: on emoji, whose `Component` class is 5 skin-tone swatches among 3,786
    images, version 1 predicted `Component` for none of the real images, so class coverage topped out
    at 9/10 even for the data itself. The body, and so every feature (FD, KID, precision/recall), is
    unchanged by this; only the predictions (coverage, class KL) are."""
    if steps <= 0:
        return
    with torch.no_grad():
        feats = torch.cat([net(x[i : i + 512].to(dev))[0] for i in range(0, x.shape[0], 512)])
    y = y.to(dev)
    head = net.head.requires_grad_(True)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = F.cross_entropy(head(feats), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    head.requires_grad_(False)


def classifier_path(ds_hash: str, cache: str | os.PathLike | None = None, name: str = "") -> Path:
    label = "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "data"
    return W.cache_dir(cache) / "classifiers" / f"{label}-{ds_hash[:16]}-v{CLASSIFIER_VERSION}.safetensors"


def _state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}


def weights_sha256(net: nn.Module) -> str:
    """sha256 of the network's weights as the safetensors file `save_classifier` writes (its tensors in a fixed
    order, no metadata): for shipped weights this is the file's own checksum."""
    from safetensors.torch import save

    return hashlib.sha256(save(_state(net))).hexdigest()


def save_classifier(path: Path, clf: TrainedClassifier) -> None:
    from safetensors.torch import save

    data = save(_state(clf.net))
    _atomic_write(path, lambda f: f.write(data))
    _atomic_write(path.with_suffix(".json"), lambda f: f.write(json.dumps(clf.meta, indent=1).encode()))


def load_classifier(path: Path, expect_hash: str | None = None) -> TrainedClassifier | None:
    """A cached classifier, or None when it is missing, unreadable or made for other data / another version."""
    from safetensors.torch import load_file

    jpath = path.with_suffix(".json")
    if not path.is_file() or not jpath.is_file():
        return None
    try:
        meta = json.loads(jpath.read_text())
        if meta.get("version") != CLASSIFIER_VERSION or (expect_hash and meta.get("dataset_sha256") != expect_hash):
            return None
        net = SmallClassifier(int(meta["channels"]), int(meta["num_classes"]))
        net.load_state_dict(load_file(str(path)))
    except (OSError, ValueError, KeyError, RuntimeError, json.JSONDecodeError):
        return None
    return TrainedClassifier(net.eval().requires_grad_(False), meta)


def shipped_dir() -> Path:
    """The folder of the shipped classifier weights inside the installed package."""
    return Path(str(resources.files("ganforge.builtin") / "classifiers"))


def shipped_path(name: str, directory: str | os.PathLike | None = None) -> Path:
    return Path(directory or shipped_dir()) / f"{name}-v{CLASSIFIER_VERSION}.safetensors"


def shipped_name(ds_hash: str) -> str | None:
    """The built-in set whose shipped weights are for data with content hash `ds_hash`, if any."""
    return next((name for name, e in SHIPPED_CLASSIFIERS.items() if e["dataset"] == ds_hash), None)


def load_shipped_classifier(name: str, directory: str | os.PathLike | None = None) -> tuple[TrainedClassifier, Path]:
    """The shipped classifier for the built-in set `name`, its files checked against the recorded sha256.
    A missing or altered file is a damaged installation: one clear line, never a silent retrain."""
    from safetensors.torch import load

    entry = SHIPPED_CLASSIFIERS[name]
    path = shipped_path(name, directory)
    files = {}
    for key, p in (("weights", path), ("meta", path.with_suffix(".json"))):
        try:
            files[key] = p.read_bytes()
        except OSError:
            raise DataError(
                f"the classifier weights shipped with ganforge for '{name}' are missing ({p}): the installation "
                "is damaged; reinstall ganforge (pip install --force-reinstall ganforge)"
            ) from None
        got = hashlib.sha256(files[key]).hexdigest()
        if got != entry[key]:
            raise DataError(
                f"{p} fails its checksum (sha256 {got[:16]}..., expected {entry[key][:16]}...): the classifier "
                "weights shipped with ganforge are damaged; reinstall ganforge (pip install --force-reinstall ganforge)"
            )
    meta = json.loads(files["meta"])
    net = SmallClassifier(int(meta["channels"]), int(meta["num_classes"]))
    net.load_state_dict(load(files["weights"]))
    return TrainedClassifier(net.eval().requires_grad_(False), meta), path


def get_classifier(
    ds: ImageDataset,
    *,
    cache: str | os.PathLike | None = None,
    retrain: bool = False,
    device: str | torch.device = "cpu",
    ds_hash: str | None = None,
) -> tuple[TrainedClassifier, Path, bool]:
    """The classifier for `ds`: the shipped one for a built-in labelled set (never retrained, `retrain` or not:
    those weights define its scores), else from the cache, else trained now and cached.
    Returns (classifier, path, trained)."""
    ds_hash = ds_hash or dataset_sha256(ds.images, ds.labels)
    name = shipped_name(ds_hash)
    if name is not None:
        clf, path = load_shipped_classifier(name)
        return clf, path, False
    path = classifier_path(ds_hash, cache, ds.name)
    clf = None if retrain else load_classifier(path, ds_hash)
    if clf is not None:
        return clf, path, False
    clf = train_classifier(ds, device=device)
    save_classifier(path, clf)
    return clf, path, True


class ClassifierExtractor(FeatureExtractor):
    """Features = the classifier's 128-D hidden layer; logits over the dataset's classes.

    Scoring runs in float64: float32 conv and matmul kernels differ between CPUs (AVX2, AVX-512, AMX) and
    thread counts in the last bits, float64 ones only around 1e-16, so the float32 features returned agree
    on every machine (but for a rare last-bit rounding tie) and FD/KID from them to ~1e-6. The network has no
    reductions but its convolutions' and linear layers' dot products (BatchNorm is an affine map in eval
    mode), so nothing else depends on the kernels. On CUDA it runs in float64 too (expected to agree with the
    CPU likewise; not covered by the tests); on MPS, which has no float64, it runs on the CPU."""

    resize = f"bilinear-antialias-{INPUT_RES}"
    dim = FEATURE_DIM
    has_logits = True

    def __init__(self, clf: TrainedClassifier, *, device: str | torch.device = "cpu") -> None:
        self.meta = clf.meta
        self.device = torch.device(device)
        if self.device.type not in ("cpu", "cuda"):
            self.device = torch.device("cpu")  # MPS has no float64; the network is small enough for any CPU
        self.weights_sha256 = weights_sha256(clf.net)  # of the float32 weights, as stored
        self.net = copy.deepcopy(clf.net).to(self.device, torch.float64).eval().requires_grad_(False)
        self.channels = int(clf.meta["channels"])
        self.num_classes = int(clf.meta["num_classes"])
        self.class_names = list(clf.meta.get("class_names", []))
        self.name = f"classifier-v{CLASSIFIER_VERSION}-{self.weights_sha256[:8]}"

    @classmethod
    def for_dataset(
        cls,
        ds: ImageDataset,
        *,
        cache: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        ds_hash: str | None = None,
    ) -> ClassifierExtractor:
        clf, _, _ = get_classifier(ds, cache=cache, device=device, ds_hash=ds_hash)
        return cls(clf, device=device)

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.inference_mode():
            feats, logits = self.net(preprocess(images.to(self.device), self.channels, torch.float64))
        return {"features": feats.float().cpu(), "logits": logits.float().cpu()}
