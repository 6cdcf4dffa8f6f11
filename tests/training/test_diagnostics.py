"""The training warnings: one side winning for too long, and collapsing diversity (images)."""

from __future__ import annotations

import torch

from ganforge.families.base import DataSpec
from ganforge.training.diagnostics import Diagnostics


def diag(**kw) -> Diagnostics:
    return Diagnostics(spec=DataSpec(kind="image", resolution=8, channels=1), **kw)


def test_overpowering_discriminator_is_reported_once_after_patience():
    d = diag(patience=5)
    quiet = [d.observe(s, {"D_real": 0.99, "D_fake": 0.001}) for s in range(4)]
    assert quiet == [[]] * 4
    (msg,) = d.observe(4, {"D_real": 0.99, "D_fake": 0.001})
    assert "overpowering" in msg and "D(G(z)) < 0.01 for 5 steps" in msg
    assert d.observe(5, {"D_real": 0.99, "D_fake": 0.001}) == []  # once, not every step


def test_a_good_step_resets_the_streak():
    d = diag(patience=3)
    for s in range(2):
        d.observe(s, {"D_real": 0.9, "D_fake": 0.001})
    d.observe(2, {"D_real": 0.9, "D_fake": 0.3})
    assert all(d.observe(s, {"D_real": 0.9, "D_fake": 0.001}) == [] for s in range(3, 5))


def test_discriminator_that_stopped_learning():
    d = diag(patience=2)
    d.observe(0, {"D_real": 0.995, "D_fake": 0.995})
    (msg,) = d.observe(1, {"D_real": 0.995, "D_fake": 0.995})
    assert "stopped learning" in msg


def test_collapsed_samples_warn_after_warmup_only():
    g = torch.Generator().manual_seed(0)
    real = torch.rand(32, 1, 8, 8, generator=g) * 2 - 1
    collapsed = real[:1].repeat(32, 1, 1, 1) + 0.01 * torch.randn(32, 1, 8, 8, generator=g)
    d = diag(collapse_warmup=100)
    assert d.observe_samples(50, collapsed, real) == []
    (msg,) = d.observe_samples(100, collapsed, real)
    assert "possible mode collapse" in msg
    assert d.observe_samples(100, real.flip(0), real) == []


def test_one_prototype_per_class_is_caught_by_the_per_class_check():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(40) % 4
    real = torch.rand(40, 1, 8, 8, generator=g) * 2 - 1
    protos = real[:4][labels] + 0.01 * torch.randn(40, 1, 8, 8, generator=g)  # diverse across classes only
    d = diag(collapse_warmup=0)
    assert d.observe_samples(10, protos, real) == [], "the whole grid still looks diverse"
    (msg,) = d.observe_samples(10, protos, real, labels, labels)
    assert "within classes" in msg
    assert d.observe_samples(10, real.flip(0), real, labels.flip(0), labels) == []


def test_divergence_check_catches_huge_losses_and_dead_gradients():
    from ganforge.training.diagnostics import DivergenceCheck

    check = DivergenceCheck(zero_patience=3)
    assert check(1, {"loss_D": 0.7, "grad_G": 1.0}) is None
    assert "loss_G = 1e+20" in check(2, {"loss_G": 1e20})
    assert "nan" in check(3, {"loss_D": float("nan")})
    assert check(4, {"loss_D": 0.1, "grad_G": 0.0}) is None
    assert check(5, {"loss_D": 0.1, "grad_G": 0.0}) is None
    assert "no gradient" in check(6, {"loss_D": 0.1, "grad_G": 0.0})


def test_absurd_learning_rate_stops_the_run_with_a_clear_message(tmp_path, tiny_data):
    # Regression: --set lr=1e9 trained to losses of 1e20 with |gG| = 0 for the whole run and printed "done".
    import pytest

    from ganforge.errors import GanforgeError
    from ganforge.training.loop import train
    from helpers import tiny_config

    cfg = tiny_config(tmp_path, tiny_data, steps=300, family={"ngf": 8, "ndf": 8, "nz": 8, "lr": 1e9})
    with pytest.raises(GanforgeError, match="training diverged"):
        train(cfg, progress=False)
