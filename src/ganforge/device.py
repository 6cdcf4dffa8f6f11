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
