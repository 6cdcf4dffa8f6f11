"""The models an attack can target, as differentiable classifiers of pixels in [0, 1].

The maintained attack libraries (ART, foolbox, torchattacks) agree on one convention, and ganforge follows it:
the attacker works in pixel space [0, 1] with ε in that space (8/255 for L∞, 0.5 for L2), and whatever
normalisation a network wants happens *inside* the model. So every target here is an `nn.Module` taking float
(B, C, H, W) in [0, 1] and returning logits (B, K), with `class_names` beside it:

- `PixelClassifier`: the small CNN of the classifier extractor (`metrics.classifier.SmallClassifier`): the
  shipped weights of a built-in set, the cached classifier of any labelled prepared set, or a classifier saved
  as safetensors + JSON (e.g. one trained adversarially by `train_robust`). Its preprocessing is the
  extractor's (`preprocess`: luma or channel repeat, bilinear antialiased resize to 32 px, then [-1, 1]) in
  float32 and differentiable (scoring runs it in float64; attacks need gradients, not cross-machine digits).
- `DiscriminatorClassifier`: a run's discriminator as a two-class "fake" / "real" classifier, logits
  (0, D(x)), so that softmax gives p(real) = sigmoid(D(x)), the non-saturating GAN's reading of D.

`train_robust` is PGD adversarial training (Madry et al. 2018) of the same small architecture.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.kinds import ImageDataset
from ..errors import ConfigError, DataError
from ..metrics.classifier import (
    CLASSIFIER_VERSION,
    INPUT_RES,
    SHIPPED_DATASETS,
    SmallClassifier,
    TrainedClassifier,
    _shift,
    fit_input,
    get_classifier,
    load_shipped_classifier,
    save_classifier,
)

ROBUST_KIND = "robust-classifier"  # "kind" in the JSON of a classifier `train_robust` wrote


def to_input(x: torch.Tensor, channels: int, resolution: int = INPUT_RES) -> torch.Tensor:
    """float (B, C, H, W) in [0, 1] -> (B, channels, resolution, resolution) in [-1, 1], differentiably: the
    classifier extractor's `preprocess` (BT.601 luma for RGB -> gray, repeat for gray -> RGB, bilinear
    antialiased resize), on [0, 1] pixels instead of 0..255."""
    return fit_input(x, channels, resolution) * 2.0 - 1.0


class PixelClassifier(nn.Module):
    """A `SmallClassifier` with its normalisation inside: float (B, C, H, W) in [0, 1] -> logits (B, K)."""

    def __init__(self, net: SmallClassifier, meta: dict[str, Any], name: str) -> None:
        super().__init__()
        self.net = net
        self.meta = meta
        self.name = name
        self.channels = int(meta["channels"])
        self.class_names = [str(c) for c in meta.get("class_names") or range(int(meta["num_classes"]))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(to_input(x, self.channels))[1]


class DiscriminatorClassifier(nn.Module):
    """A run's discriminator as a classifier of two classes, 0 "fake" and 1 "real": logits (0, D(x)), so that
    softmax gives p(real) = sigmoid(D(x)). Images are resized to the run's resolution and channels, then
    mapped to [-1, 1] (the run's data convention). A patch discriminator's outputs are averaged per image.
    For hinge and Wasserstein critics D(x) is a score, not a logit: "real" still means D(x) > 0, but the
    confidences are only a monotone reading of the score."""

    class_names = ["fake", "real"]

    def __init__(self, D: nn.Module, channels: int, resolution: int, name: str) -> None:
        super().__init__()
        self.D = D
        self.channels = channels
        self.resolution = resolution
        self.name = name
        self.meta: dict[str, Any] = {"channels": channels, "num_classes": 2, "class_names": self.class_names}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.D(to_input(x, self.channels, self.resolution))
        if isinstance(out, (tuple, list)):  # discriminators that also return reconstructions (FastGAN)
            out = out[0]
        d = out.reshape(out.shape[0], -1).float().mean(1)  # (B,): one score per image
        return torch.stack([torch.zeros_like(d), d], 1)  # (B, 2)


AttackModel = PixelClassifier | DiscriminatorClassifier


# ---- loading -------------------------------------------------------------------------------------------------

MODEL_HELP = (
    "a built-in labelled set (digits, emoji, digits16: their shipped classifier), a labelled dataset (its cached "
    "classifier, trained on first use), a classifier file (.safetensors with its .json, e.g. from --train-robust) "
    "or a run folder (its discriminator: fake vs real)"
)


def load_model(
    source: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    cache: str | os.PathLike | None = None,
    checkpoint: str | int = "latest",
) -> AttackModel:
    """The model to attack named by `source` (see MODEL_HELP), in eval mode with frozen weights, on `device`."""
    text = str(source)
    path = Path(text).expanduser()
    dev = torch.device(device)
    if text.lower().endswith(".safetensors"):
        model: AttackModel = load_classifier_file(path)
    elif text in SHIPPED_DATASETS and not path.exists():
        clf, p = load_shipped_classifier(text)
        model = PixelClassifier(clf.net, clf.meta, f"{text} (shipped classifier {p.name})")
    elif _is_run(path):
        model = _discriminator(text, checkpoint, dev)
    elif path.exists():
        model = _dataset_classifier(text, cache, dev)
    else:
        from ..data.builtin import names as builtin_names

        if text in builtin_names():
            model = _dataset_classifier(text, cache, dev)
        else:
            try:
                from ..locate import find_run

                find_run(text)
            except ConfigError:
                raise DataError(f"unknown model '{text}': give {MODEL_HELP}") from None
            model = _discriminator(text, checkpoint, dev)
    return model.to(dev).eval().requires_grad_(False)


def _is_run(path: Path) -> bool:
    return path.is_dir() and ((path / "config.json").is_file() or (path / "checkpoints").is_dir())


def _dataset_classifier(source: str, cache: str | os.PathLike | None, device: torch.device) -> PixelClassifier:
    from ..data import load_dataset

    ds = load_dataset(source)
    if not isinstance(ds, ImageDataset) or ds.labels is None or ds.num_classes < 2:
        raise DataError(
            f"'{source}' has no class labels, so it has no classifier to attack: give a labelled dataset (class "
            "sub-folders, dataset.json labels), a built-in labelled set (digits, emoji) or a run folder"
        )
    clf, path, _ = get_classifier(ds, cache=cache, device=device)
    return PixelClassifier(clf.net, clf.meta, f"{source} (classifier {path.name})")


def _discriminator(run: str, checkpoint: str | int, device: torch.device) -> DiscriminatorClassifier:
    from ..sample.model import Model

    model = Model.load(run, checkpoint=checkpoint, device=str(device), nets="all")
    D = model.nets["D"] if "D" in model.nets else None
    if D is None or model.spec.kind != "image" or model.capabilities.inputs != "noise":
        raise ConfigError(
            f"{model.run_dir} has no image discriminator to attack (a {model.config.model} run); give a run of a "
            "GAN trained on images, or a classifier"
        )
    if model.spec.num_classes:
        raise ConfigError(
            f"{model.run_dir} is class-conditional: its discriminator needs each image's class, which attacks on "
            "images do not carry; attack its data's classifier instead (--model DATASET)"
        )
    return DiscriminatorClassifier(D, model.spec.channels, model.spec.resolution, f"{model.run_dir} (discriminator)")


def load_classifier_file(path: str | os.PathLike) -> PixelClassifier:
    """A `SmallClassifier` saved as safetensors + JSON (`save_classifier`: a cached or an adversarially trained
    one). Loading runs no code from the files. Anything missing or inconsistent is one DataError line."""
    from safetensors.torch import load_file

    path = Path(path).expanduser()
    jpath = path.with_suffix(".json")
    for p in (path, jpath):
        if not p.is_file():
            raise DataError(
                f"no classifier at {path}: {p} is missing (a classifier is a .safetensors file with its .json "
                "beside it, as `ganforge attack --train-robust DATA --out FILE.safetensors` writes)"
            )
    try:
        meta = json.loads(jpath.read_text())
        net = SmallClassifier(int(meta["channels"]), int(meta["num_classes"]))
        net.load_state_dict(load_file(str(path)))
    except Exception as exc:  # safetensors raises its own SafetensorError for a damaged file
        why = " ".join(str(exc).split())[:200]
        raise DataError(f"cannot load the classifier {path}: {why}") from None
    if meta.get("version") != CLASSIFIER_VERSION:
        raise DataError(
            f"{path} is a version {meta.get('version')} classifier; this ganforge reads version {CLASSIFIER_VERSION}: "
            "train it again"
        )
    kind = "robust classifier" if meta.get("kind") == ROBUST_KIND else "classifier"
    return PixelClassifier(net.eval(), meta, f"{path.name} ({kind} of {meta.get('dataset') or 'its data'})")


# ---- held-out images -----------------------------------------------------------------------------------------


def heldout_split(n: int, *, seed: int = 0, holdout: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held-out) indices exactly as `metrics.classifier.train_classifier` splits n images: the held-out
    ones are the first round(holdout * n) of a seeded permutation (none below 20 images). The shipped
    classifiers were trained with seed 0 and holdout 0.1, so these are the images they never saw."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = max(1, int(round(n * holdout))) if n >= 20 else 0
    return perm[n_test:], perm[:n_test]


# ---- adversarial training ------------------------------------------------------------------------------------


def train_robust(
    ds: ImageDataset,
    *,
    eps: float = 8 / 255,
    norm: str = "linf",
    steps: int = 1000,
    attack_steps: int = 7,
    batch: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    holdout: float = 0.1,
    ramp: float = 0.3,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> TrainedClassifier:
    """PGD adversarial training (Madry et al. 2018, eq. 2.1: min over θ of the expected max over the ε-ball of
    the loss) of the classifier extractor's architecture: every minibatch is replaced by its PGD adversarial
    examples (random start, `attack_steps` steps of 2.5·ε/steps, the attack run with the network in eval mode,
    as torchattacks does), and the network takes its step on those. ε grows linearly from 0 over the first
    `ramp` of the steps, which small networks need to start learning at all. Same data split as the extractor
    (`heldout_split`), same augmentation (±2 px shifts), same optimiser (Adam, cosine schedule); the head is not
    refit on clean features afterwards (that would undo the robustness). Deterministic on one machine."""
    from .methods import check_eps, pgd

    if ds.labels is None or ds.num_classes < 2:
        raise DataError(
            f"adversarial training needs labelled data with at least 2 classes; '{ds.name or 'the dataset'}' has no "
            "labels: give a labelled dataset (digits, emoji, class sub-folders)"
        )
    check_eps(eps, norm)
    if steps < 1 or attack_steps < 1:
        raise ConfigError("adversarial training needs at least one step and one attack step")
    dev = torch.device(device)
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    train_idx, test_idx = heldout_split(len(ds), seed=seed, holdout=holdout)
    x_all = ds.images.float() / 255.0  # (N, C, H, W) in [0, 1]: the attack's pixel space
    y_all = ds.labels.to(torch.int64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = SmallClassifier(ds.channels, ds.num_classes).to(dev)
    meta: dict[str, Any] = {
        "version": CLASSIFIER_VERSION,
        "kind": ROBUST_KIND,
        "dataset": ds.name,
        "channels": ds.channels,
        "input_resolution": INPUT_RES,
        "num_classes": ds.num_classes,
        "class_names": list(ds.class_names) or [str(k) for k in range(ds.num_classes)],
    }
    from ..metrics.cache import dataset_sha256

    meta["dataset_sha256"] = dataset_sha256(ds.images, ds.labels)
    model = PixelClassifier(net, meta, "robust")
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    order = torch.empty(0, dtype=torch.int64)
    ramp_steps = max(1, int(ramp * steps))
    for step in range(steps):
        if order.numel() < batch:
            order = torch.cat([order, train_idx[torch.randperm(train_idx.numel(), generator=g)]])
        idx, order = order[:batch], order[batch:]
        x = _shift(x_all[idx], g).to(dev)
        y = y_all[idx].to(dev)
        step_eps = eps * min(1.0, (step + 1) / ramp_steps)
        net.eval()
        x_adv = pgd(model, x, y, eps=step_eps, norm=norm, steps=attack_steps, generator=g)
        net.train()
        loss = F.cross_entropy(model(x_adv), y, label_smoothing=0.1)  # smoothing as the extractor's training
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if progress is not None:
            progress(step + 1, steps)
    net.eval().requires_grad_(False)
    acc = float("nan")
    if test_idx.numel():
        with torch.no_grad():
            pred = torch.cat(
                [model(x_all[test_idx[i : i + 512]].to(dev)).argmax(1).cpu() for i in range(0, test_idx.numel(), 512)]
            )
        acc = float((pred == y_all[test_idx]).double().mean())
    meta.update(
        seed=seed,
        steps=steps,
        train_images=int(train_idx.numel()),
        heldout_images=int(test_idx.numel()),
        heldout_accuracy=acc,
        robust={
            "method": "pgd",
            "norm": norm,
            "eps": eps,
            "attack_steps": attack_steps,
            "ramp": ramp,
            "lr": lr,
            "batch": batch,
        },
        train_seconds=round(time.perf_counter() - t0, 2),
    )
    return TrainedClassifier(net.cpu(), meta)


def robust_path(ds: ImageDataset, norm: str, eps: float, cache: str | os.PathLike | None = None) -> Path:
    """Where `--train-robust` keeps a classifier when no --out is given: the cache's classifiers/ folder."""
    from ..metrics import weights as W
    from ..metrics.cache import dataset_sha256

    label = "".join(c if c.isalnum() or c in "-_" else "_" for c in ds.name) or "data"
    h = dataset_sha256(ds.images, ds.labels)[:16]
    return (
        W.cache_dir(cache)
        / "classifiers"
        / f"robust-{label}-{h}-{norm}-eps{eps * 255:.3g}-v{CLASSIFIER_VERSION}.safetensors"
    )


def save_robust(path: str | os.PathLike, clf: TrainedClassifier) -> Path:
    """Write the classifier as safetensors + JSON (never pickle), atomically."""
    path = Path(path).expanduser()
    if path.suffix.lower() != ".safetensors":
        raise ConfigError(f"a classifier is saved as a .safetensors file (with its .json beside it), not {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_classifier(path, clf)
    return path
