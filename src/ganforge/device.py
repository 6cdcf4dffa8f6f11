"""Device and precision selection. Nothing here runs at import time."""

from __future__ import annotations

import torch

from .errors import ConfigError


def select_device(name: str = "auto") -> torch.device:
    """auto -> CUDA if available, else Apple MPS, else CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device '{name}': use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("--device mps was asked for but MPS is not available; use --device cpu or auto")
    return dev


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX-512 BF16 or AMX). Without it, bf16 autocast is
    emulated and many times slower than fp32 (measured: 25x slower convolutions on an AVX2-only CPU)."""
    for probe in (
        lambda: torch.cpu._is_avx512_bf16_supported(),  # type: ignore[attr-defined]
        lambda: torch.cpu._is_amx_tile_supported(),  # type: ignore[attr-defined]
        lambda: torch.ops.mkldnn._is_mkldnn_bf16_supported(),
    ):
        try:
            if probe():
                return True
        except (AttributeError, RuntimeError):
            continue
    return False


def cpu_features() -> str:
    """The CPU's vector feature set as ganforge reports it: "AMX", "AVX-512 BF16", "AVX-512", "AVX2" or "other"
    (from /proc/cpuinfo's flags; "other" where there is none, e.g. on macOS or ARM)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        flags = []
    for flag, name in (("amx_tile", "AMX"), ("avx512_bf16", "AVX-512 BF16"), ("avx512f", "AVX-512"), ("avx2", "AVX2")):
        if flag in flags:
            return name
    return "other"


def precision_choice(
    name: str, device: torch.device, *, family: str = "", cpu_bf16: bool = True, cuda_autocast: bool = True
) -> tuple[torch.dtype | None, str]:
    """The autocast dtype for `--precision name` and why, in words for the start line. `cpu_bf16` /
    `cuda_autocast`: the family's measured preferences (Family.cpu_bf16, Family.cuda_autocast)."""
    amp = select_precision(name, device)
    if name != "auto":
        return amp, "as --precision asked"
    if device.type == "cuda":
        if not cuda_autocast:
            return None, f"{family} runs its own mixed precision on CUDA"
        return amp, "this GPU computes bf16" if amp == torch.bfloat16 else "this GPU has no bf16"
    if device.type != "cpu":
        return amp, f"auto on {device.type}"
    feats = cpu_features()
    if amp is None:
        return None, f"this CPU ({feats}) has no native bf16"
    if not cpu_bf16:
        return None, f"bf16 measured slower than fp32 for {family} on a CPU (benchmarks/stylegan_speed.py)"
    return amp, f"native bf16 on this CPU ({feats})"


def select_precision(name: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for `name` on `device` (None: full fp32)."""
    if name == "fp32":
        return None
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and cpu_has_native_bf16():
            return torch.bfloat16
        return None
    if name == "bf16":
        return torch.bfloat16
    if name == "fp16":
        # fp16 with loss scaling is what CUDA GPUs without bf16 get. A CPU runs it too (slowly; it is
        # there so that the fp16 path can be tested anywhere).
        return torch.float16
    raise ConfigError(f"unknown precision '{name}': use auto, fp32, bf16 or fp16")


def precision_name(dtype: torch.dtype | None) -> str:
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
