"""Scorers: one number per image, higher = better, for curation (`ganforge curate`) and, when differentiable,
as training-time constraints (`ganforge train --constraint NAME:WEIGHT`).

A scorer maps a batch of images in [0, 1], float (N, C, H, W), to a float tensor (N,). It declares whether it
is `differentiable` (only those can be a constraint on G's loss). Built in (`BUILTIN`):

- `sharpness`: variance of the Laplacian of the luma (BT.601), on intensities in [0, 1] with reflected borders:
  OpenCV's `cv2.Laplacian(gray, cv2.CV_64F).var()` divided by 255^2. Differentiable.
- `iqa`: 100 - PIQE (Venkatanath et al. 2015), a no-reference image quality score that needs no model;
  PIQE is 0 for the best and 100 for the worst images (a flat image scores 100), so `iqa` is 100 for the best.
- `classifier:<class>`: the dataset's classifier's softmax confidence for that class (index or name); the
  shipped one for the built-in sets (`ganforge.metrics.classifier.get_classifier`).
- `realness`: the run's own discriminator's raw output (logit) on the image, in evaluation mode.
- `realism`: Kynkäänniemi et al. 2019's realism score in the evaluation features (the classifier's for
  labelled data): max over real samples phi_r of NND_k(phi_r) / ||phi(x) - phi_r||, k = 3, the half of the real
  samples with the largest radii left out (sec. 5 of the paper). Above 1: inside the real manifold.
- `face-pose`: needs a face detector with landmarks, which no installed package ships; says so in one line.

Users add scorers without touching ganforge: `--scorer module:function` on the command line, or an entry
point in the group `ganforge.scorers` (name = the scorer's name, object = `module:function`). The function
either takes images and returns scores (its attribute `differentiable`, default False, declares the flag),
or is a factory `f(arg, context) -> Scorer` when it has the attribute `scorer_factory = True`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError, MissingDependencyError

Tensor = torch.Tensor
ENTRY_POINT_GROUP = "ganforge.scorers"
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as OpenCV's and MATLAB's rgb2gray


@dataclass
class Scorer:
    """A named score: `scorer(images, labels)` -> (N,) float, higher = better. `fn` takes the images in [0, 1]
    (and, when `takes_labels`, the class labels of a conditional model, or None)."""

    name: str
    fn: Callable[..., Tensor]
    differentiable: bool = False
    description: str = ""
    takes_labels: bool = False

    def __call__(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        if images.ndim != 4:
            raise DataError(f"scorer '{self.name}' needs images (N, C, H, W), got shape {tuple(images.shape)}")
        out = self.fn(images, labels) if self.takes_labels else self.fn(images)
        out = torch.as_tensor(out)
        if out.shape != (images.shape[0],):
            raise ConfigError(
                f"scorer '{self.name}' returned shape {tuple(out.shape)} for {images.shape[0]} images; "
                "a scorer returns one number per image"
            )
        return out


@dataclass
class ScoringContext:
    """What the scorers that need more than the images get: the run's model (a `ganforge.load(..., nets="all")`
    Model, for the discriminator), the real data (a source name/path, or a loaded ImageDataset), the device and
    the feature cache folder. Loaded lazily and shared between scorers."""

    model: Any = None
    data: Any = None
    device: str | torch.device = "cpu"
    cache: str | None = None
    _real: Any = field(default=None, repr=False)
    _classifier: Any = field(default=None, repr=False)

    def real(self) -> Any:
        """The real images (an ImageDataset, uint8) at the model's resolution and channels."""
        if self._real is None:
            from ..data.dataset import ImageDataset, load_dataset

            if self.data is None:
                raise ConfigError("this scorer needs the real data: give the dataset (--data) or score a run's model")
            spec = self.model.spec if self.model is not None else None  # a loaded Model, or no model
            res = spec.resolution if spec is not None else None
            ch = spec.channels if spec is not None else None
            ds = (
                self.data
                if isinstance(self.data, ImageDataset)
                else load_dataset(self.data, resolution=res, channels=ch)
            )
            if not isinstance(ds, ImageDataset):
                raise DataError(f"'{self.data}' is not a set of images; scorers need image data")
            self._real = ds
        return self._real

    def classifier(self) -> Any:
        """The dataset's classifier (`ClassifierExtractor`): shipped for built-in sets, else cached or trained."""
        if self._classifier is None:
            from ..metrics.classifier import ClassifierExtractor

            self._classifier = ClassifierExtractor.for_dataset(self.real(), cache=self.cache, device=self.device)
        return self._classifier

    def discriminator(self, why: str) -> tuple[torch.nn.Module, torch.device]:
        """The run's discriminator D (in evaluation mode) and its device."""
        nets = self.model.nets if self.model is not None else None
        if nets is None or "D" not in nets:
            raise ConfigError(
                f"{why} needs the run's discriminator: load the run with nets='all' (an exported model holds only "
                "its generator; use the training run folder)"
            )
        return nets["D"].eval(), torch.device(self.model.device)


Factory = Callable[[str | None, ScoringContext], Scorer]


# ---- sharpness: variance of the Laplacian ---------------------------------------------------------------


def luma(images: Tensor) -> Tensor:
    """(N, C, H, W) in [0, 1] -> (N, 1, H, W): BT.601 luma for RGB, the channel itself for grayscale."""
    if images.shape[1] == 1:
        return images
    if images.shape[1] != 3:
        raise DataError(f"expected 1 or 3 channels, got {images.shape[1]}")
    w = torch.tensor(LUMA, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * w).sum(1, keepdim=True)


def laplacian_variance(images: Tensor) -> Tensor:
    """Variance of the 4-neighbour Laplacian of the luma per image (Pech-Pacheco et al. 2000's focus measure):
    reflected borders (OpenCV's default BORDER_REFLECT_101), population variance. Differentiable."""
    kernel = torch.tensor(
        [[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=images.dtype, device=images.device
    )
    y = F.pad(luma(images), (1, 1, 1, 1), mode="reflect")
    lap = F.conv2d(y, kernel.view(1, 1, 3, 3))  # (N, 1, H, W)
    return lap.flatten(1).var(dim=1, unbiased=False)


def _sharpness(arg: str | None, ctx: ScoringContext) -> Scorer:
    _no_arg("sharpness", arg)
    return Scorer("sharpness", laplacian_variance, differentiable=True, description="variance of the Laplacian")


# ---- iqa: PIQE (Venkatanath et al. 2015) -------------------------------------------------------------------

PIQE_BLOCK = 16  # block side in pixels
PIQE_ACTIVITY = 0.1  # a block is spatially active when the variance of its MSCN coefficients exceeds this
PIQE_IMPAIRED = 0.1  # an edge segment whose MSCN std is below this marks a noticeable artifact
PIQE_SEGMENT = 6  # pixels per edge segment (11 overlapping segments per 16-pixel edge)


def _symmetric_pad(x: Tensor, bottom: int, right: int) -> Tensor:
    """Mirror padding that repeats the edge pixel (MATLAB's 'symmetric'), at the bottom and right only."""
    if bottom:
        x = torch.cat([x, x.flip(-2)[..., :bottom, :]], dim=-2)
    if right:
        x = torch.cat([x, x.flip(-1)[..., :right]], dim=-1)
    return x


def _gaussian_blur(x: Tensor, size: int = 7, sigma: float = 7 / 6) -> Tensor:
    """Separable Gaussian filter with replicated borders."""
    r = size // 2
    t = torch.arange(size, dtype=x.dtype, device=x.device) - r
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    x = F.pad(x, (r, r, r, r), mode="replicate")
    x = F.conv2d(x, g.view(1, 1, 1, size))
    return F.conv2d(x, g.view(1, 1, size, 1))


def piqe(images: Tensor) -> Tensor:
    """PIQE score per image (0 best, 100 worst), after Venkatanath et al. 2015 and MATLAB's `piqe`: the luma
    scaled to 0..255 by its maximum, MSCN coefficients (7x7 Gaussian, sigma 7/6, C = 1), 16x16 blocks; each
    spatially active block (MSCN variance > 0.1) scores (1 - var) when an edge segment of 6 pixels is flat
    (std < 0.1: a noticeable artifact) plus var when its centre/surround deviation says noise (sigma > 2 beta);
    PIQE = 100 (sum + 1) / (active blocks + 1). Not differentiable (thresholds). Computed in float64."""
    x = luma(images.detach().to(torch.float64))  # (N, 1, H, W)
    n, _, h, w = x.shape
    x = _symmetric_pad(x, (-h) % PIQE_BLOCK, (-w) % PIQE_BLOCK)
    peak = x.flatten(1).amax(1).clamp_min(1e-12).view(n, 1, 1, 1)
    x = torch.round(255.0 * x / peak)
    mu = _gaussian_blur(x)
    sigma = (_gaussian_blur(x * x) - mu * mu).abs().sqrt()
    mscn = (x - mu) / (sigma + 1.0)
    b = PIQE_BLOCK
    blocks = mscn.unfold(2, b, b).unfold(3, b, b).reshape(n, -1, b, b)  # (N, blocks, 16, 16)
    var = blocks.flatten(2).var(dim=2, unbiased=True)  # (N, blocks)
    active = var > PIQE_ACTIVITY
    # Noticeable artifacts: any 6-pixel segment of the four edges with (sample) std below the threshold.
    edges = torch.stack([blocks[..., 0, :], blocks[..., :, b - 1], blocks[..., b - 1, :], blocks[..., :, 0]], dim=2)
    seg_std = edges.unfold(-1, PIQE_SEGMENT, 1).std(dim=-1, unbiased=True)  # (N, blocks, 4, 11)
    impaired = (seg_std < PIQE_IMPAIRED).flatten(2).any(dim=2)
    # Noise: the std of the two centre columns against that of the surrounding ones.
    c = (b - 1 + 1) // 2  # 1-based centre columns c and c + 1 of the block (8 and 9 for 16 px)
    centre = blocks[..., c - 1 : c + 1].flatten(2).std(dim=2, unbiased=True)
    surround = torch.cat([blocks[..., : c - 1], blocks[..., c + 1 :]], dim=-1).flatten(2).std(dim=2, unbiased=True)
    ratio = torch.nan_to_num(centre / surround, nan=0.0, posinf=0.0)
    block_sigma = var.sqrt()
    beta = (block_sigma - ratio).abs() / torch.maximum(block_sigma, ratio).clamp_min(1e-300)
    noisy = block_sigma > 2 * beta
    dist = active * (impaired * (1 - var) + noisy * var)
    return 100.0 * (dist.sum(1) + 1.0) / (active.sum(1) + 1.0)


def _iqa(arg: str | None, ctx: ScoringContext) -> Scorer:
    _no_arg("iqa", arg)
    return Scorer("iqa", lambda im: (100.0 - piqe(im)).to(im.dtype), description="100 - PIQE (no-reference IQA)")


# ---- scorers that use the dataset's classifier, the run's D, or the real features --------------------------


def to_uint8(images: Tensor) -> Tensor:
    """[0, 1] float -> uint8, rounding to nearest."""
    return (images.detach().clamp(0, 1) * 255 + 0.5).to(torch.uint8)


def _classifier(arg: str | None, ctx: ScoringContext) -> Scorer:
    if not arg:
        raise ConfigError("the classifier scorer needs a class: --by classifier:NAME (a class name or index)")
    clf = ctx.classifier()
    names = list(clf.class_names)
    if arg.isdigit() and int(arg) < clf.num_classes:
        idx = int(arg)
    elif arg in names:
        idx = names.index(arg)
    else:
        raise ConfigError(
            f"classifier:{arg}: unknown class; classes: {', '.join(names) or f'0..{clf.num_classes - 1}'}"
        )

    def confidence(images: Tensor) -> Tensor:
        logits = clf(to_uint8(images))["logits"]
        return logits.softmax(dim=1)[:, idx].to(images.device)

    return Scorer(
        f"classifier:{arg}", confidence, description=f"classifier confidence for '{names[idx] if names else idx}'"
    )


def _realness(arg: str | None, ctx: ScoringContext) -> Scorer:
    _no_arg("realness", arg)
    D, dev = ctx.discriminator("the realness scorer")

    def logit(images: Tensor, labels: Tensor | None) -> Tensor:
        return discriminator_logits(D, images * 2 - 1, labels, dev).to(images.device)

    return Scorer("realness", logit, takes_labels=True, description="the run's discriminator output")


def discriminator_logits(D: torch.nn.Module, images: Tensor, labels: Tensor | None, device: torch.device) -> Tensor:
    """D's output per image for images in [-1, 1] (patch outputs averaged), in evaluation mode, without gradients."""
    with torch.no_grad():
        out = D(images.to(device), None if labels is None else labels.to(device))
    return out.float().reshape(images.shape[0], -1).mean(1).cpu()


REALISM_K = 3  # Kynkäänniemi et al. 2019, as for precision and recall
REALISM_KEEP = 0.5  # share of real samples kept as reference: the half with the smallest radii (paper, sec. 5)


def realism_score(fake: Tensor, real: Tensor, radii: Tensor, *, keep: float = REALISM_KEEP) -> Tensor:
    """Realism of each fake feature (N, D) against real features (M, D) with their k-NN radii (M,):
    max over kept real samples of radius / distance. Reals with the largest radii are left out (`keep`)."""
    thresh = torch.quantile(radii.double(), keep)
    sel = radii <= thresh
    r, rad = real[sel].double(), radii[sel].double()
    out = []
    for i in range(0, fake.shape[0], 1024):
        d = torch.cdist(fake[i : i + 1024].double(), r).clamp_min(1e-12)  # (b, M')
        out.append((rad[None, :] / d).amax(1))
    return torch.cat(out).float()


def _realism(arg: str | None, ctx: ScoringContext) -> Scorer:
    _no_arg("realism", arg)
    from ..metrics.prdc import knn_radii

    real = ctx.real()
    if real.labels is None or real.num_classes < 2:
        raise DataError(
            "the realism scorer uses the classifier's features, which need labelled real data (digits, emoji, a "
            f"prepared set with labels); '{real.name or 'the data'}' has none"
        )
    clf = ctx.classifier()
    feats = torch.cat([clf(real.images[i : i + 512])["features"] for i in range(0, len(real), 512)])
    radii = knn_radii(feats, (REALISM_K,))[REALISM_K]

    def realism(images: Tensor) -> Tensor:
        return realism_score(clf(to_uint8(images))["features"], feats, radii).to(images.device)

    return Scorer("realism", realism, description="realism score (Kynkäänniemi et al. 2019)")


def _face_pose(arg: str | None, ctx: ScoringContext) -> Scorer:
    raise MissingDependencyError(
        "the face-pose scorer needs a face detector with landmarks, and no package installed here ships one "
        "(OpenCV's Haar cascades find faces but give no pose); use another scorer, or add one with --scorer module:function"
    )


BUILTIN: dict[str, Factory] = {
    "sharpness": _sharpness,
    "iqa": _iqa,
    "classifier": _classifier,
    "realness": _realness,
    "realism": _realism,
    "face-pose": _face_pose,
}


def _no_arg(name: str, arg: str | None) -> None:
    if arg:
        raise ConfigError(f"the {name} scorer takes no argument; use --by {name}")


# ---- the registry: built-in, entry points, module:function --------------------------------------------------


def plugin_names() -> dict[str, str]:
    """Scorers installed by other packages: entry point name -> 'module:function'."""
    from importlib.metadata import entry_points

    try:
        eps = entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # noqa: BLE001 - a broken distribution must not break the built-in scorers
        return {}
    return {ep.name: ep.value for ep in eps}


def scorer_names() -> list[str]:
    """Every scorer name that `get_scorer` knows (built-in first, then entry points)."""
    return list(BUILTIN) + sorted(set(plugin_names()) - set(BUILTIN))


def load_object(target: str) -> Any:
    """`module:attribute` (the module importable from sys.path) -> the attribute; one line when it fails."""
    module, _, attr = target.partition(":")
    if not module or not attr:
        raise ConfigError(f"--scorer {target!r}: give module:function, e.g. --scorer myscores:brightness")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"--scorer {target}: cannot import module '{module}' ({exc})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"--scorer {target}: module '{module}' has no '{attr}'")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"--scorer {target}: '{attr}' is not a function")
    return obj


def from_callable(name: str, obj: Any, arg: str | None, ctx: ScoringContext) -> Scorer:
    """A user's function as a Scorer: a factory (`scorer_factory = True`) is called with (arg, ctx), a Scorer is
    taken as it is, any other function maps images to scores (`differentiable` attribute, default False)."""
    if isinstance(obj, Scorer):
        return obj
    if getattr(obj, "scorer_factory", False):
        made = obj(arg, ctx)
        if not isinstance(made, Scorer):
            raise ConfigError(f"scorer factory '{name}' returned {type(made).__name__}, not a Scorer")
        return made
    return Scorer(name, obj, differentiable=bool(getattr(obj, "differentiable", False)), description=obj.__doc__ or "")


def get_scorer(spec: str, ctx: ScoringContext | None = None, *, extra: dict[str, str] | None = None) -> Scorer:
    """The scorer named by `spec` ("sharpness", "classifier:cat", a name from an entry point, or a name given with
    --scorer as `extra` {name: "module:function"}). Unknown names list what exists; a scorer that cannot run here
    says why (ConfigError / MissingDependencyError / DataError)."""
    ctx = ctx or ScoringContext()
    spec = spec.strip()
    name, _, arg = spec.partition(":")
    name = name.strip()
    extra = extra or {}
    if name in extra:
        return from_callable(name, load_object(extra[name]), arg or None, ctx)
    if name in BUILTIN:
        return BUILTIN[name](arg or None, ctx)
    plugins = plugin_names()
    if name in plugins:
        return from_callable(name, load_object(plugins[name]), arg or None, ctx)
    known = scorer_names() + sorted(extra)
    raise ConfigError(
        f"unknown scorer '{name}'; scorers: {', '.join(known)} (or add one with --scorer module:function)"
    )


def parse_scorer_option(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """--scorer values ("module:function", or "name=module:function") -> {name: "module:function"}."""
    out = {}
    for item in items:
        name, eq, target = item.partition("=")
        if not eq:
            target, name = item, item.rpartition(":")[2].rpartition(".")[2]
        if not name or ":" not in target:
            raise ConfigError(f"--scorer {item!r}: give module:function or name=module:function")
        out[name.strip()] = target.strip()
    return out


def score_batches(
    scorers: list[Scorer], images: Tensor, labels: Tensor | None = None, batch: int = 256
) -> dict[str, Tensor]:
    """Every scorer on images in [0, 1] (N, C, H, W), `batch` at a time, without gradients: {name: (N,) float}."""
    out: dict[str, list[Tensor]] = {s.name: [] for s in scorers}
    with torch.no_grad():
        for i in range(0, images.shape[0], batch):
            part = images[i : i + batch]
            lab = None if labels is None else labels[i : i + batch]
            for s in scorers:
                out[s.name].append(s(part, lab).detach().float().cpu())
    res = {k: torch.cat(v) for k, v in out.items()}
    for k, v in res.items():
        bad = (~torch.isfinite(v)).sum().item()
        if bad:
            raise DataError(f"scorer '{k}' gave {bad} non-finite score(s); fix the scorer")
    return res


__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "ScoringContext",
    "Scorer",
    "discriminator_logits",
    "get_scorer",
    "laplacian_variance",
    "parse_scorer_option",
    "piqe",
    "realism_score",
    "score_batches",
    "scorer_names",
]
