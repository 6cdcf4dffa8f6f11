"""A small CNN classifier trained by ganforge on the real labelled data: the offline, CPU-friendly extractor.

The FID Inception network needs a 95 MB download and costs ~6 GFLOP per image; on a laptop CPU that is
minutes per evaluation. For labelled data (digits, emoji) a classifier trained on that very data gives
(a) features for FID/KID/precision/recall that are meaningful for this domain, computed in milliseconds,
and (b) class predictions for generated images, so that class coverage and the KL divergence of the
class histogram expose mode collapse directly ("the GAN generates just one digit").

Training is deterministic (fixed seed, forked RNG, ordered batches); the network is cached under
`<cache>/classifiers/` keyed by the dataset's content hash and `CLASSIFIER_VERSION`, as safetensors plus
JSON (never pickle). Numbers computed with it are labelled `classifier-v2-<dataset hash>`: they compare
between runs on the same data, not with papers.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
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
CLASSIFIER_VERSION = 2
INPUT_RES = 32  # every image is resized to this before classification
FEATURE_DIM = 128


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


def preprocess(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float (B, channels, 32, 32) in [-1, 1]: the same path for real and generated images."""
    x = images.float()
    c = x.shape[1]
    if c != channels:
        if channels == 1 and c == 3:
            x = (x * torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)).sum(
                1, keepdim=True
            )  # BT.601 luma
        elif channels == 3 and c == 1:
            x = x.expand(-1, 3, -1, -1)
        else:
            raise DataError(f"cannot feed {c}-channel images to a classifier trained on {channels}-channel data")
    if x.shape[-1] != INPUT_RES or x.shape[-2] != INPUT_RES:
        x = F.interpolate(x, size=(INPUT_RES, INPUT_RES), mode="bilinear", antialias=True, align_corners=False)
    return x / 127.5 - 1.0


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


def save_classifier(path: Path, clf: TrainedClassifier) -> None:
    from safetensors.torch import save

    state = {k: v.contiguous() for k, v in clf.net.state_dict().items()}
    _atomic_write(path, lambda f: f.write(save(state)))
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


def get_classifier(
    ds: ImageDataset,
    *,
    cache: str | os.PathLike | None = None,
    retrain: bool = False,
    device: str | torch.device = "cpu",
    ds_hash: str | None = None,
) -> tuple[TrainedClassifier, Path, bool]:
    """The classifier for `ds`: from the cache, else trained now and cached. Returns (classifier, path, trained)."""
    ds_hash = ds_hash or dataset_sha256(ds.images, ds.labels)
    path = classifier_path(ds_hash, cache, ds.name)
    clf = None if retrain else load_classifier(path, ds_hash)
    if clf is not None:
        return clf, path, False
    clf = train_classifier(ds, device=device)
    save_classifier(path, clf)
    return clf, path, True


class ClassifierExtractor(FeatureExtractor):
    """Features = the classifier's 128-D hidden layer; logits over the dataset's classes."""

    resize = f"bilinear-antialias-{INPUT_RES}"
    dim = FEATURE_DIM
    has_logits = True

    def __init__(self, clf: TrainedClassifier, *, device: str | torch.device = "cpu") -> None:
        self.meta = clf.meta
        self.device = torch.device(device)
        self.net = clf.net.to(self.device)
        self.channels = int(clf.meta["channels"])
        self.num_classes = int(clf.meta["num_classes"])
        self.class_names = list(clf.meta.get("class_names", []))
        h = str(clf.meta["dataset_sha256"])
        self.name = f"classifier-v{CLASSIFIER_VERSION}-{h[:8]}"
        self.weights_sha256 = _state_sha256(self.net)

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
            feats, logits = self.net(preprocess(images.to(self.device), self.channels))
        return {"features": feats.float().cpu(), "logits": logits.float().cpu()}


def _state_sha256(net: nn.Module) -> str:
    import hashlib

    h = hashlib.sha256()
    for k, v in sorted(net.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
