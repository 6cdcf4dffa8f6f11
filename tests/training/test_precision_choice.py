"""`--precision auto`: what it picks on each kind of CPU and why, as the start line says it (issue 29)."""

from __future__ import annotations

import pytest
import torch

from ganforge import device as D


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("fpu sse avx avx2 fma", "AVX2"),
        ("avx2 avx512f avx512bw", "AVX-512"),
        ("avx2 avx512f avx512_bf16", "AVX-512 BF16"),
        ("avx2 avx512f avx512_bf16 amx_bf16 amx_tile", "AMX"),
        ("neon asimd", "other"),
    ],
)
def test_cpu_features_from_cpuinfo_flags(flags: str, expected: str, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nmodel name\t: test\nflags\t\t: {flags}\n\n")
    real_open = open
    monkeypatch.setattr(
        "builtins.open", lambda path, *a, **k: real_open(info if path == "/proc/cpuinfo" else path, *a, **k)
    )
    assert D.cpu_features() == expected


def test_precision_auto_on_a_cpu_follows_native_bf16_and_the_family(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(D, "cpu_features", lambda: "AVX2")
    monkeypatch.setattr(D, "cpu_has_native_bf16", lambda: False)
    assert D.precision_choice("auto", cpu, family="dcgan") == (None, "this CPU (AVX2) has no native bf16")
    monkeypatch.setattr(D, "cpu_features", lambda: "AMX")
    monkeypatch.setattr(D, "cpu_has_native_bf16", lambda: True)
    assert D.precision_choice("auto", cpu, family="dcgan") == (torch.bfloat16, "native bf16 on this CPU (AMX)")
    amp, why = D.precision_choice("auto", cpu, family="stylegan2", cpu_bf16=False)
    assert amp is None and "measured slower" in why and "stylegan2" in why
    assert D.precision_choice("bf16", cpu) == (torch.bfloat16, "as --precision asked")
    assert D.precision_choice("fp32", cpu) == (None, "as --precision asked")
