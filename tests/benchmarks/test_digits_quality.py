"""The digits benchmark's within-class diversity: 1 for the data itself, ~0 for one prototype per class."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def load():
    spec = importlib.util.spec_from_file_location("digits_quality_bench", ROOT / "benchmarks" / "digits_quality.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.modules.pop(spec.name, None)
    return mod


def test_within_class_diversity():
    bench = load()
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(200) % 4
    real = torch.randn(200, 1, 8, 8, generator=g) + labels[:, None, None, None].float()
    assert abs(bench.within_class_diversity(real, labels, real, labels, 4) - 1.0) < 1e-6
    protos = real[:4][labels]  # one image per class, repeated
    assert bench.within_class_diversity(protos, labels, real, labels, 4) == 0.0
    jitter = protos + 0.05 * torch.randn(protos.shape, generator=g)
    assert bench.within_class_diversity(jitter, labels, real, labels, 4) < 0.1
    # A class the generator never draws counts as 0.
    assert bench.within_class_diversity(real[labels < 2], labels[labels < 2], real, labels, 4) < 0.51
