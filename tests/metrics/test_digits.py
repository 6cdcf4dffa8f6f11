"""The built-in `digits` dataset (scikit-learn's handwritten digits, upsampled)."""

from __future__ import annotations

import torch

from ganforge.data import builtin, load_dataset


def test_digits_builtin():
    ds = load_dataset("digits")
    assert ds.images.shape == (1797, 1, 32, 32) and ds.images.dtype == torch.uint8
    assert ds.labels is not None and sorted(set(ds.labels.tolist())) == list(range(10))
    assert ds.class_names == [str(k) for k in range(10)]
    # White digits on black, like MNIST: dark corners and background, bright strokes.
    assert ds.images[:, 0, 0, 0].float().mean() < 5 and ds.images.float().mean() < 100
    assert ds.images.float().amax((1, 2, 3)).mean() > 200
    assert "digits" in builtin.names() and "digits16" in builtin.names()


def test_digits_variants():
    assert load_dataset("digits16").images.shape == (1797, 1, 16, 16)
    assert load_dataset("digits", resolution=64, channels=3).images.shape == (1797, 3, 64, 64)
    assert torch.equal(load_dataset("digits").images, load_dataset("digits").images)  # deterministic
