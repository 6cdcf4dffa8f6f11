"""StyleGAN2 generator and discriminator as plain PyTorch modules.

Sources: Karras et al. 2020a, "Analyzing and Improving the Image Quality of StyleGAN" (StyleGAN2, config F),
and Karras et al. 2020b, "Training Generative Adversarial Networks with Limited Data" (StyleGAN2-ADA), whose
public PyTorch release fixed the network layout that trained checkpoints use.

Why this file looks the way it does: module names, parameter names and shapes, buffers, initialisation and the
order of floating point operations follow the layout of NVlabs' public stylegan2-ada-pytorch networks, so that a
converter can copy its state dicts into these modules key by key and reproduce its images (within 1e-4 in fp32).
Every line is written here from the papers and plain torch ops (`F.conv2d`, `F.conv_transpose2d`, `F.pad`) with
no custom CUDA kernels, so the networks run on a CPU and support the double backward that R1 and path-length
regularisation need. Images are float tensors in [-1, 1], NCHW (the generator output is not clamped).

Half precision: blocks marked `use_fp16` compute in float16 only on CUDA; on a CPU they always compute in fp32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..vocab import NOISE_MODES

FilterSpec = Sequence[float] | torch.Tensor | None
Padding = int | Sequence[int]

# ---------------------------------------------------------------------------------------------------------------------
# FIR resampling.


def setup_filter(
    f: FilterSpec = (1, 3, 3, 1),
    *,
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1.0,
    separable: bool | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Turns 1-D taps into the 2-D low-pass filter used for resampling.

    StyleGAN replaces nearest/strided resampling by a binomial [1, 3, 3, 1] low-pass filter (after Zhang 2019,
    "Making Convolutional Networks Shift-Invariant Again"). Short filters become their outer product (k, k); taps
    of 8 or more stay 1-D (k,) and are applied separably. Normalising to unit sum keeps a constant image constant.
    """
    t = torch.as_tensor(1.0 if f is None else f, dtype=torch.float32)
    if t.ndim == 0:
        t = t.reshape(1)
    if separable is None:
        separable = t.ndim == 1 and t.numel() >= 8
    if t.ndim == 1 and not separable:
        t = torch.outer(t, t)  # (k,) -> (k, k)
    if normalize:
        t = t / t.sum()
    if flip_filter:
        t = t.flip(list(range(t.ndim)))
    t = t * (gain ** (t.ndim / 2))
    return t.to(device) if device is not None else t


def _parse_padding(padding: Padding) -> tuple[int, int, int, int]:
    """int | (x, y) | (x0, x1, y0, y1) -> (x0, x1, y0, y1)."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    p = [int(v) for v in padding]
    if len(p) == 2:
        return p[0], p[0], p[1], p[1]
    if len(p) == 4:
        return p[0], p[1], p[2], p[3]
    raise ValueError(f"padding must be an int, (x, y) or (x0, x1, y0, y1), got {padding!r}")


def _filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(width, height) of a filter; a 1-D filter is square."""
    if f is None:
        return 1, 1
    return int(f.shape[-1]), int(f.shape[0])


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int = 1,
    down: int = 1,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample by zero insertion, pad (negative = crop), convolve with the FIR filter, keep every `down`-th pixel.

    The same sequence as scipy.signal.upfirdn, per channel of an NCHW batch. Padding is counted on the upsampled
    image. `flip_filter=False` is a true convolution (the taps are flipped before F.conv2d, which correlates).
    `gain` scales the filter (so a 2x upsample needs gain 4 to keep the signal level: 3 of 4 samples are zeros).
    """
    if f is None:
        f = torch.ones(1, 1, dtype=torch.float32, device=x.device)
    n, c, h, w = x.shape
    px0, px1, py0, py1 = _parse_padding(padding)

    # 1. Upsample by inserting up - 1 zeros after every pixel.
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])  # (N, C, H, up, W, up)
        x = x.reshape(n, c, h * up, w * up)  # (N, C, H * up, W * up)

    # 2. Pad with zeros, or crop where the padding is negative.
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]

    # 3. Depthwise FIR filter; "valid" convolution, so the output shrinks by the filter size - 1.
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 2:
        x = F.conv2d(x, f[None, None].repeat(c, 1, 1, 1), groups=c)  # weight (C, 1, fh, fw)
    else:
        x = F.conv2d(x, f.reshape(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)  # horizontal pass, (C, 1, 1, k)
        x = F.conv2d(x, f.reshape(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)  # vertical pass, (C, 1, k, 1)

    # 4. Downsample by keeping every down-th pixel.
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def upsample2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int = 2,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
) -> torch.Tensor:
    """Filtered upsampling to exactly `up` times the size; `padding` is relative to the output."""
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _filter_size(f)
    # A k-tap filter after zero insertion needs (k + up - 1) // 2 zeros before and (k - up) // 2 after to yield up * H.
    p = (px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2, py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2)
    return upfirdn2d(x, f, up=up, padding=p, flip_filter=flip_filter, gain=gain * up * up)


def downsample2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    down: int = 2,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
) -> torch.Tensor:
    """Filtered downsampling to exactly 1 / `down` of the size; `padding` is relative to the input."""
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _filter_size(f)
    p = (px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2, py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2)
    return upfirdn2d(x, f, down=down, padding=p, flip_filter=flip_filter, gain=gain)


def _conv(
    x: torch.Tensor,
    w: torch.Tensor,
    stride: int = 1,
    padding: tuple[int, int] = (0, 0),
    groups: int = 1,
    transpose: bool = False,
    flip_weight: bool = True,
) -> torch.Tensor:
    """F.conv2d / F.conv_transpose2d; flip_weight=False turns torch's correlation into a true convolution."""
    if not flip_weight:
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: Padding = 0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
) -> torch.Tensor:
    """Convolution with FIR-filtered up- or downsampling; `padding` is counted on the upsampled image.

    Mathematically this is upfirdn2d(up) -> conv -> upfirdn2d(down). Because convolutions commute, it is computed
    the cheap way, in the same order of operations as the reference release (so results agree to rounding):
    1x1 down: filter+subsample, then conv. 1x1 up: conv, then zero-insert+filter. down only: filter, then strided
    conv. up: transposed strided conv (zero insertion + conv in one op), then filter.
    """
    out_channels, in_per_group, kh, kw = w.shape
    fw, fh = _filter_size(f)
    px0, px1, py0, py1 = _parse_padding(padding)

    # Widen the padding by the filter's support so that the output is exactly up * H / down.
    if up > 1:
        px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
        py0, py1 = py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2

    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=(px0, px1, py0, py1), flip_filter=flip_filter)
        return _conv(x, w, groups=groups, flip_weight=flip_weight)

    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=(px0, px1, py0, py1), gain=up**2, flip_filter=flip_filter)

    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=(px0, px1, py0, py1), flip_filter=flip_filter)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)

    if up > 1:
        # conv_transpose2d wants (in, out / groups, kh, kw): swap the two channel axes within every group.
        if groups == 1:
            w = w.transpose(0, 1)  # (I, O, kh, kw)
        else:
            w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw)  # (G, O/G, I/G, kh, kw)
            w = w.transpose(1, 2).reshape(groups * in_per_group, out_channels // groups, kh, kw)  # (I, O/G, kh, kw)
        # The transposed conv already grows the image by kh - 1 (full convolution); take that off the FIR padding,
        # and let the conv itself crop whatever both sides would crop anyway.
        px0, px1 = px0 - (kw - 1), px1 - (kw - up)
        py0, py1 = py0 - (kh - 1), py1 - (kh - up)
        pxt, pyt = max(min(-px0, -px1), 0), max(min(-py0, -py1), 0)
        # A transposed conv computes a true convolution, so the flip sense is inverted.
        x = _conv(x, w, stride=up, padding=(pyt, pxt), groups=groups, transpose=True, flip_weight=not flip_weight)
        x = upfirdn2d(x, f, padding=(px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt), gain=up**2, flip_filter=flip_filter)
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x

    if up == 1 and down == 1 and px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, w, padding=(py0, px0), groups=groups, flip_weight=flip_weight)

    # General case (asymmetric or negative padding).
    x = upfirdn2d(x, f if up > 1 else None, up=up, padding=(px0, px1, py0, py1), gain=up**2, flip_filter=flip_filter)
    x = _conv(x, w, groups=groups, flip_weight=flip_weight)
    if down > 1:
        x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
    return x


# ---------------------------------------------------------------------------------------------------------------------
# Bias + activation and equalized-learning-rate layers.

# Default gains keep the signal's second moment through the activation (He et al. 2015): sqrt(2) for (leaky) ReLU.
_ACT_GAINS: dict[str, float] = {"linear": 1.0, "relu": math.sqrt(2), "lrelu": math.sqrt(2), "tanh": 1.0, "sigmoid": 1.0}


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float = 0.2,
    gain: float | None = None,
    clamp: float | None = None,
) -> torch.Tensor:
    """x + b (b along `dim`) -> activation -> * gain -> clamp to [-clamp, clamp] (clamp after gain)."""
    if act not in _ACT_GAINS:
        raise ValueError(f"unknown activation {act!r}; choose one of {sorted(_ACT_GAINS)}")
    if b is not None:
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    if act == "lrelu":
        x = F.leaky_relu(x, alpha)
    elif act == "relu":
        x = F.relu(x)
    elif act == "tanh":
        x = torch.tanh(x)
    elif act == "sigmoid":
        x = torch.sigmoid(x)
    g = _ACT_GAINS[act] if gain is None else float(gain)
    if g != 1:
        x = x * g
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale to unit mean square along `dim` (pixel norm, Karras et al. 2018, eq. in sec. 4.2)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class FullyConnectedLayer(nn.Module):
    """Linear layer with equalized learning rate (Karras et al. 2018, sec. 4.1).

    Weights are stored as N(0, 1) / lr_multiplier and scaled at run time by lr_multiplier / sqrt(fan_in), so Adam's
    per-parameter step is the same for every layer; lr_multiplier < 1 slows the mapping network (StyleGAN, 0.01).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())  # (N, out)
        return bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class Conv2dLayer(nn.Module):
    """Equalized-learning-rate convolution with optional FIR up/downsampling, bias, activation and clamp."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "linear",
        up: int = 1,
        down: int = 1,
        resample_filter: FilterSpec = (1, 3, 3, 1),
        conv_clamp: float | None = None,
        channels_last: bool = False,
        trainable: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.activation = activation
        self.up, self.down = up, down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)  # He init applied at run time
        self.act_gain = _ACT_GAINS[activation]

        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        bias_t = torch.zeros([out_channels]) if bias else None
        # Frozen layers (Freeze-D, Mo et al. 2020) keep the same state-dict keys, as buffers.
        if trainable:
            self.weight = nn.Parameter(weight)
            self.bias = nn.Parameter(bias_t) if bias_t is not None else None
        else:
            self.register_buffer("weight", weight)
            if bias_t is not None:
                self.register_buffer("bias", bias_t)
            else:
                self.bias = None

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = conv2d_resample(
            x,
            w.to(x.dtype),
            f=self.resample_filter,
            up=self.up,
            down=self.down,
            padding=self.padding,
            flip_weight=(self.up == 1),
        )
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=act_clamp)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, kernel_size={self.kernel_size}, "
            f"activation={self.activation}, up={self.up}, down={self.down}"
        )


# ---------------------------------------------------------------------------------------------------------------------
# Generator.


class MappingNetwork(nn.Module):
    """z (N, z_dim) [+ label c (N, c_dim)] -> w, broadcast to (N, num_ws, w_dim) (StyleGAN, Karras et al. 2019).

    z and the label embedding are each normalised to unit second moment, concatenated and passed through
    `num_layers` equalized FC layers. In training mode a moving average of w is tracked; it is the centre of the
    truncation trick. The discriminator reuses this class (z_dim=0, num_ws=None) to embed labels.
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int | None,
        num_layers: int = 8,
        embed_features: int | None = None,
        layer_features: int | None = None,
        activation: str = "lrelu",
        lr_multiplier: float = 0.01,
        w_avg_beta: float | None = 0.995,
    ) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.num_ws, self.num_layers, self.w_avg_beta = num_ws, num_layers, w_avg_beta
        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]

        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(
                features[idx], features[idx + 1], activation=activation, lr_multiplier=lr_multiplier
            )
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: torch.Tensor | None,
        c: torch.Tensor | None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        skip_w_avg_update: bool = False,
        *,
        psi: float | None = None,
    ) -> torch.Tensor:
        """`psi` is an alias of `truncation_psi`. Returns (N, num_ws, w_dim), or (N, w_dim) when num_ws is None."""
        if psi is not None:
            truncation_psi = psi
        x: torch.Tensor | None = None
        if self.z_dim > 0:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                raise ValueError(f"z must have shape (N, {self.z_dim})")
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                raise ValueError(f"c must have shape (N, {self.c_dim}) (one-hot labels)")
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y  # (N, z_dim + embed_features)
        if x is None:
            raise ValueError("a mapping network needs z_dim > 0 or c_dim > 0")

        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)

        # Track the mean of w (StyleGAN, appendix B): w_avg <- beta * w_avg + (1 - beta) * batch mean.
        if self.w_avg_beta is not None and self.training and not skip_w_avg_update:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])  # (N, w_dim) -> (N, num_ws, w_dim)

        # Truncation trick in W (StyleGAN, appendix B): w' = w_avg + psi * (w - w_avg), on the first
        # `truncation_cutoff` layers only when a cutoff is given.
        if truncation_psi != 1:
            if self.w_avg_beta is None or not hasattr(self, "w_avg"):
                raise ValueError("truncation needs a tracked w_avg (w_avg_beta is None)")
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                head = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
                x = torch.cat([head, x[:, truncation_cutoff:]], dim=1)
        return x


# The reference release's way of computing what ganforge computes more cheaply, switched on only to measure
# the difference (benchmarks/stylegan_speed.py --reference) and to test that both agree.
REFERENCE_PATH: dict[str, bool] = {"demodulation": False}


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: Padding = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    fused_modconv: bool = True,
) -> torch.Tensor:
    """Weight modulation and demodulation (StyleGAN2, sec. 2.2, eqs. 1-3).

    x (N, I, H, W), weight (O, I, k, k), styles (N, I). Each sample gets its own weights w' = s_i * w (eq. 1),
    rescaled per output channel to unit expected output variance, w'' = w' / sqrt(sum w'^2 + eps) (eq. 3), which
    replaces AdaIN's explicit normalisation of the activations. The fused path runs all samples as one grouped
    convolution; the non-fused path scales activations before and after a shared convolution (same result).
    """
    n = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise ValueError(f"x must be (N, {in_channels}, H, W), got {tuple(x.shape)}")
    if styles.shape != (n, in_channels):
        raise ValueError(f"styles must be ({n}, {in_channels}), got {tuple(styles.shape)}")

    # In float16, pre-normalise so that w' cannot overflow; demodulation undoes the scale.
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (
            1 / math.sqrt(in_channels * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True)
        )
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    w: torch.Tensor | None = None
    dcoefs: torch.Tensor | None = None
    if fused_modconv or (demodulate and REFERENCE_PATH["demodulation"]):
        w = weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)  # (N, O, I, k, k), eq. 1
    if demodulate and REFERENCE_PATH["demodulation"]:
        assert w is not None
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # (N, O), eq. 3 as the reference computes it
    elif demodulate:
        # eq. 3 without building the per-sample weights: sum_{i,k} (s_i w_oik)^2 = sum_i s_i^2 (sum_k w_oik^2),
        # one (N, I) x (I, O) product. The reference multiplies out (N, O, I, k, k) even when it does not
        # convolve with it (training): on a CPU that product, its square and their backward passes were a
        # quarter of a stylegan2 `small` step (benchmarks/stylegan_speed.py).
        # In float32 whatever autocast would choose for a matmul (as the elementwise reference computes it).
        dt = torch.promote_types(styles.dtype, torch.float32)
        with torch.autocast(x.device.type, enabled=False):
            dcoefs = (styles.to(dt).square() @ weight.to(dt).square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # (N, O)

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)  # (N, I, H, W)
        x = conv2d_resample(
            x, weight.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding, flip_weight=flip_weight
        )
        if dcoefs is not None and noise is not None:
            return torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(n, -1, 1, 1))  # x * d + noise
        if dcoefs is not None:
            return x * dcoefs.to(x.dtype).reshape(n, -1, 1, 1)  # (N, O, H', W')
        if noise is not None:
            return x + noise.to(x.dtype)
        return x

    assert w is not None
    if dcoefs is not None:
        w = w * dcoefs.reshape(n, -1, 1, 1, 1)  # (N, O, I, k, k)
    x = x.reshape(1, -1, *x.shape[2:])  # (N, I, H, W) -> (1, N * I, H, W)
    w = w.reshape(-1, in_channels, kh, kw)  # (N * O, I, k, k)
    x = conv2d_resample(
        x, w.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding, groups=n, flip_weight=flip_weight
    )
    x = x.reshape(n, -1, *x.shape[2:])  # (1, N * O, H', W') -> (N, O, H', W')
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (optionally 2x upsampling) + per-pixel noise + bias + lrelu (StyleGAN2, fig. 2d)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        kernel_size: int = 3,
        up: int = 1,
        use_noise: bool = True,
        activation: str = "lrelu",
        resample_filter: FilterSpec = (1, 3, 3, 1),
        conv_clamp: float | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.resolution, self.up = resolution, up
        self.use_noise, self.activation, self.conv_clamp = use_noise, activation, conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = _ACT_GAINS[activation]

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)  # styles start at 1 (identity modulation)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        )
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(
        self,
        x: torch.Tensor,
        w: torch.Tensor,
        noise_mode: str = "random",
        fused_modconv: bool = True,
        gain: float = 1.0,
    ) -> torch.Tensor:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be 'random', 'const' or 'none', got {noise_mode!r}")
        in_res = self.resolution // self.up
        if x.shape[1:] != (self.in_channels, in_res, in_res):
            raise ValueError(f"expected (N, {self.in_channels}, {in_res}, {in_res}), got {tuple(x.shape)}")
        styles = self.affine(w)  # (N, I)

        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device)
            noise = noise * self.noise_strength  # (N, 1, H, W)
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength  # (H, W)

        x = modulated_conv2d(
            x,
            self.weight,
            styles,
            noise=noise,
            up=self.up,
            padding=self.padding,
            resample_filter=self.resample_filter,
            flip_weight=(self.up == 1),
            fused_modconv=fused_modconv,
        )
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=self.act_gain * gain, clamp=act_clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 convolution to image channels, without demodulation (StyleGAN2, fig. 7 skip generator)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        kernel_size: int = 1,
        conv_clamp: float | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        )
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain  # no demodulation, so the He gain goes into the styles
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


def _block_dtype(use_fp16: bool, force_fp32: bool, device: torch.device) -> torch.dtype:
    """float16 only for fp16 blocks on CUDA; CPUs always compute in fp32."""
    return torch.float16 if use_fp16 and not force_fp32 and device.type == "cuda" else torch.float32


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network: [const | 2x up conv0] -> conv1 -> [toRGB, added to the
    upsampled image] ('skip', StyleGAN2 sec. 4.1) or with a residual 1x1 path ('resnet')."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        is_last: bool,
        architecture: str = "skip",
        resample_filter: FilterSpec = (1, 3, 3, 1),
        conv_clamp: float | None = None,
        use_fp16: bool = False,
        fp16_channels_last: bool = False,
        **layer_kwargs: Any,
    ) -> None:
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"architecture must be 'orig', 'skip' or 'resnet', got {architecture!r}")
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.w_dim, self.resolution, self.img_channels = w_dim, resolution, img_channels
        self.is_last, self.architecture = is_last, architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0

        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        if in_channels != 0:
            self.conv0 = SynthesisLayer(
                in_channels,
                out_channels,
                w_dim=w_dim,
                resolution=resolution,
                up=2,
                resample_filter=resample_filter,
                conv_clamp=conv_clamp,
                channels_last=self.channels_last,
                **layer_kwargs,
            )
            self.num_conv += 1
        self.conv1 = SynthesisLayer(
            out_channels,
            out_channels,
            w_dim=w_dim,
            resolution=resolution,
            conv_clamp=conv_clamp,
            channels_last=self.channels_last,
            **layer_kwargs,
        )
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(
                out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp, channels_last=self.channels_last
            )
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(
                in_channels,
                out_channels,
                kernel_size=1,
                bias=False,
                up=2,
                resample_filter=resample_filter,
                channels_last=self.channels_last,
            )

    def forward(
        self,
        x: torch.Tensor | None,
        img: torch.Tensor | None,
        ws: torch.Tensor,
        force_fp32: bool = False,
        fused_modconv: bool | None = None,
        **layer_kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """ws (N, num_conv + num_torgb, w_dim) -> features (N, C, res, res), image (N, img_channels, res, res).

        The image is None only for non-skip blocks before the last one."""
        if ws.ndim != 3 or ws.shape[1:] != (self.num_conv + self.num_torgb, self.w_dim):
            raise ValueError(f"ws must be (N, {self.num_conv + self.num_torgb}, {self.w_dim}), got {tuple(ws.shape)}")
        w_iter = iter(ws.unbind(dim=1))
        dtype = _block_dtype(self.use_fp16, force_fp32, ws.device)
        use_cl = self.channels_last and dtype == torch.float16
        memory_format = torch.channels_last if use_cl else torch.contiguous_format
        if fused_modconv is None:
            # Grouped conv is fastest at inference; per-sample scaling is cheaper to differentiate when training.
            fused_modconv = (not self.training) and (dtype == torch.float32 or int(ws.shape[0]) == 1)

        if self.in_channels == 0:
            x = self.const.to(dtype=dtype, memory_format=memory_format)
            x = x.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])  # (C, 4, 4) -> (N, C, 4, 4)
        else:
            half = self.resolution // 2
            if x is None or x.shape[1:] != (self.in_channels, half, half):
                raise ValueError(f"x must be (N, {self.in_channels}, {half}, {half})")
            x = x.to(dtype=dtype, memory_format=memory_format)

        if self.in_channels == 0:
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
        elif self.architecture == "resnet":
            # Residual branches are summed with a 1/sqrt(2) gain to keep the variance (StyleGAN2, sec. 4.1).
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, gain=math.sqrt(0.5), **layer_kwargs)
            x = y + x
        else:
            x = self.conv0(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)
            x = self.conv1(x, next(w_iter), fused_modconv=fused_modconv, **layer_kwargs)

        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
            y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            img = img + y if img is not None else y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws (N, num_ws, w_dim) -> image (N, img_channels, img_resolution, img_resolution), in [-1, 1] nominally.

    Channels per resolution: min(channel_base // res, channel_max). Consecutive blocks share one w: block b's
    toRGB and block b+1's first conv read the same entry, as in the reference layout."""

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 0,
        **block_kwargs: Any,
    ) -> None:
        if img_resolution < 4 or img_resolution & (img_resolution - 1) != 0:
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.img_resolution_log2 = int(math.log2(img_resolution))
        self.block_resolutions = [2**i for i in range(2, self.img_resolution_log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)

        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = channels[res // 2] if res > 4 else 0
            is_last = res == img_resolution
            block = SynthesisBlock(
                in_channels,
                channels[res],
                w_dim=w_dim,
                resolution=res,
                img_channels=img_channels,
                is_last=is_last,
                use_fp16=res >= fp16_resolution,
                **block_kwargs,
            )
            self.num_ws += block.num_conv
            if is_last:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    def forward(self, ws: torch.Tensor, **block_kwargs: Any) -> torch.Tensor:
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must be (N, {self.num_ws}, {self.w_dim}), got {tuple(ws.shape)}")
        ws = ws.to(torch.float32)
        block_ws = []
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            block_ws.append(ws.narrow(1, w_idx, block.num_conv + block.num_torgb))  # (N, n_b, w_dim)
            w_idx += block.num_conv  # the toRGB's w is also the next block's first

        x = img = None
        for res, cur_ws in zip(self.block_resolutions, block_ws):
            x, img = getattr(self, f"b{res}")(x, img, cur_ws, **block_kwargs)
        assert img is not None
        return img


class Generator(nn.Module):
    """z (N, z_dim), c (N, c_dim) -> image (N, img_channels, R, R), unclamped (nominally [-1, 1])."""

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        mapping_kwargs: dict[str, Any] | None = None,
        synthesis_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        # Synthesis first, then mapping: the same random-number order as the reference, so a seed gives the same init.
        self.synthesis = SynthesisNetwork(
            w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels, **(synthesis_kwargs or {})
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **(mapping_kwargs or {})
        )

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "const",
        **synthesis_kwargs: Any,
    ) -> torch.Tensor:
        """noise_mode defaults to 'const' (same seed, same image); training passes 'random'."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, **synthesis_kwargs)


# ---------------------------------------------------------------------------------------------------------------------
# Discriminator.


class DiscriminatorBlock(nn.Module):
    """One resolution of the discriminator: [fromRGB] -> conv0 -> conv1 (2x down), with a 1x1 residual path
    ('resnet', StyleGAN2 fig. 7) or a downsampled image fed to every block ('skip')."""

    def __init__(
        self,
        in_channels: int,
        tmp_channels: int,
        out_channels: int,
        resolution: int,
        img_channels: int,
        first_layer_idx: int,
        architecture: str = "resnet",
        activation: str = "lrelu",
        resample_filter: FilterSpec = (1, 3, 3, 1),
        conv_clamp: float | None = None,
        use_fp16: bool = False,
        fp16_channels_last: bool = False,
        freeze_layers: int = 0,
    ) -> None:
        if in_channels not in (0, tmp_channels):
            raise ValueError("in_channels must be 0 (first block) or tmp_channels")
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"architecture must be 'orig', 'skip' or 'resnet', got {architecture!r}")
        super().__init__()
        self.in_channels, self.resolution, self.img_channels = in_channels, resolution, img_channels
        self.first_layer_idx, self.architecture = first_layer_idx, architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", setup_filter(resample_filter))

        # Layers are numbered across the whole discriminator; the first `freeze_layers` are frozen (Freeze-D).
        self.num_layers = 0

        def trainable() -> bool:
            idx = self.first_layer_idx + self.num_layers
            self.num_layers += 1
            return idx >= freeze_layers

        cl = self.channels_last
        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(
                img_channels,
                tmp_channels,
                kernel_size=1,
                activation=activation,
                trainable=trainable(),
                conv_clamp=conv_clamp,
                channels_last=cl,
            )
        self.conv0 = Conv2dLayer(
            tmp_channels,
            tmp_channels,
            kernel_size=3,
            activation=activation,
            trainable=trainable(),
            conv_clamp=conv_clamp,
            channels_last=cl,
        )
        self.conv1 = Conv2dLayer(
            tmp_channels,
            out_channels,
            kernel_size=3,
            activation=activation,
            down=2,
            trainable=trainable(),
            resample_filter=resample_filter,
            conv_clamp=conv_clamp,
            channels_last=cl,
        )
        if architecture == "resnet":
            self.skip = Conv2dLayer(
                tmp_channels,
                out_channels,
                kernel_size=1,
                bias=False,
                down=2,
                trainable=trainable(),
                resample_filter=resample_filter,
                channels_last=cl,
            )

    def forward(
        self, x: torch.Tensor | None, img: torch.Tensor | None, force_fp32: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        ref = x if x is not None else img
        assert ref is not None
        dtype = _block_dtype(self.use_fp16, force_fp32, ref.device)
        memory_format = (
            torch.channels_last if self.channels_last and dtype == torch.float16 else torch.contiguous_format
        )

        if x is not None:
            if x.shape[1:] != (self.in_channels, self.resolution, self.resolution):
                raise ValueError(f"x must be (N, {self.in_channels}, {self.resolution}, {self.resolution})")
            x = x.to(dtype=dtype, memory_format=memory_format)

        if self.in_channels == 0 or self.architecture == "skip":
            if img is None or img.shape[1:] != (self.img_channels, self.resolution, self.resolution):
                raise ValueError(f"img must be (N, {self.img_channels}, {self.resolution}, {self.resolution})")
            img = img.to(dtype=dtype, memory_format=memory_format)
            y = self.fromrgb(img)
            x = x + y if x is not None else y
            img = downsample2d(img, self.resample_filter) if self.architecture == "skip" else None

        assert x is not None
        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))  # 1/sqrt(2) residual gain, StyleGAN2 sec. 4.1
            x = self.conv0(x)
            x = self.conv1(x, gain=math.sqrt(0.5))
            x = y + x
        else:
            x = self.conv0(x)
            x = self.conv1(x)
        return x, img


class MinibatchStdLayer(nn.Module):
    """Appends the standard deviation across groups of samples as extra feature maps (Karras et al. 2018, sec. 3),
    so the discriminator can see a lack of variety. Samples i, i + N/G, i + 2N/G, ... form one group."""

    def __init__(self, group_size: int | None, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n) if self.group_size is not None else n
        if n % g != 0:
            raise ValueError(f"the batch size ({n}) must be a multiple of the mbstd group size ({g})")
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)  # (G, n, F, c, H, W): batch split into groups, channels into F sets
        y = y - y.mean(dim=0)  # deviation from the group mean
        y = y.square().mean(dim=0)  # (n, F, c, H, W) variance over the group
        y = (y + 1e-8).sqrt()  # standard deviation
        y = y.mean(dim=[2, 3, 4])  # (n, F) averaged over channels and pixels
        y = y.reshape(-1, f, 1, 1)  # (n, F, 1, 1)
        y = y.repeat(g, 1, h, w)  # (N, F, H, W)
        return torch.cat([x, y], dim=1)  # (N, C + F, H, W)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


class DiscriminatorEpilogue(nn.Module):
    """The 4x4 head: [fromRGB] -> minibatch std -> conv -> fc -> out, with the projection discriminator's
    label conditioning (Miyato & Koyama 2018): logit = <out, cmap> / sqrt(cmap_dim)."""

    def __init__(
        self,
        in_channels: int,
        cmap_dim: int,
        resolution: int,
        img_channels: int,
        architecture: str = "resnet",
        mbstd_group_size: int | None = 4,
        mbstd_num_channels: int = 1,
        activation: str = "lrelu",
        conv_clamp: float | None = None,
    ) -> None:
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"architecture must be 'orig', 'skip' or 'resnet', got {architecture!r}")
        super().__init__()
        self.in_channels, self.cmap_dim, self.resolution = in_channels, cmap_dim, resolution
        self.img_channels, self.architecture = img_channels, architecture

        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = (
            MinibatchStdLayer(group_size=mbstd_group_size, num_channels=mbstd_num_channels)
            if mbstd_num_channels > 0
            else None
        )
        self.conv = Conv2dLayer(
            in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation=activation, conv_clamp=conv_clamp
        )
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(
        self, x: torch.Tensor, img: torch.Tensor | None, cmap: torch.Tensor | None, force_fp32: bool = False
    ) -> torch.Tensor:
        del force_fp32  # the epilogue always runs in fp32
        if x.shape[1:] != (self.in_channels, self.resolution, self.resolution):
            raise ValueError(f"x must be (N, {self.in_channels}, {self.resolution}, {self.resolution})")
        x = x.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        if self.architecture == "skip":
            assert img is not None
            img = img.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            x = x + self.fromrgb(img)

        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))  # (N, C * 4 * 4) -> (N, C)
        x = self.out(x)  # (N, 1) or (N, cmap_dim)

        if self.cmap_dim > 0:
            if cmap is None or cmap.shape[1:] != (self.cmap_dim,):
                raise ValueError(f"cmap must be (N, {self.cmap_dim})")
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))  # (N, 1)
        return x


class Discriminator(nn.Module):
    """image (N, img_channels, R, R) in [-1, 1], labels c (N, c_dim) -> logits (N, 1)."""

    def __init__(
        self,
        c_dim: int,
        img_resolution: int,
        img_channels: int,
        architecture: str = "resnet",
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 0,
        conv_clamp: float | None = None,
        cmap_dim: int | None = None,
        block_kwargs: dict[str, Any] | None = None,
        mapping_kwargs: dict[str, Any] | None = None,
        epilogue_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if img_resolution < 4 or img_resolution & (img_resolution - 1) != 0:
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        super().__init__()
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        self.img_resolution_log2 = int(math.log2(img_resolution))
        self.block_resolutions = [2**i for i in range(self.img_resolution_log2, 2, -1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions + [4]}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)
        if cmap_dim is None:
            cmap_dim = channels[4]
        if c_dim == 0:
            cmap_dim = 0
        self.cmap_dim = cmap_dim

        common: dict[str, Any] = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        layer_idx = 0
        for res in self.block_resolutions:
            block = DiscriminatorBlock(
                channels[res] if res < img_resolution else 0,
                channels[res],
                channels[res // 2],
                resolution=res,
                first_layer_idx=layer_idx,
                use_fp16=res >= fp16_resolution,
                **(block_kwargs or {}),
                **common,
            )
            setattr(self, f"b{res}", block)
            layer_idx += block.num_layers
        if c_dim > 0:
            self.mapping = MappingNetwork(
                z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None, **(mapping_kwargs or {})
            )
        self.b4 = DiscriminatorEpilogue(
            channels[4], cmap_dim=cmap_dim, resolution=4, **(epilogue_kwargs or {}), **common
        )

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None, **block_kwargs: Any) -> torch.Tensor:
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img, **block_kwargs)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, img, cmap)
