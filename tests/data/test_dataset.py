from __future__ import annotations

import pytest
import torch

from ganforge.data import load_dataset
from ganforge.data.dataset import BatchSampler, class_weights
from ganforge.errors import DataError
from helpers import make_archive


def test_builtin_emoji():
    ds = load_dataset("emoji")
    assert ds.images.shape == (3786, 3, 32, 32) and ds.images.dtype == torch.uint8
    assert ds.num_classes == 10 and "Flags" in ds.class_names
    assert ds.labels is not None and int(ds.labels.max()) == 9
    # Flattened on white: the corners of almost every emoji are white.
    corners = ds.images[:, :, 0, 0].float().mean()
    assert corners > 240
    small = load_dataset("emoji", resolution=16, channels=1)
    assert small.images.shape == (3786, 1, 16, 16)


def test_prepared_archive_round_trip(tmp_path):
    path = make_archive(tmp_path / "d.zip", n=12, res=8, classes=2)
    ds = load_dataset(str(path))
    assert ds.images.shape == (12, 3, 8, 8)
    assert ds.num_classes == 2 and ds.class_names == ["c0", "c1"]
    spec = ds.spec(conditional=False)
    assert spec.num_classes == 0 and spec.resolution == 8


def test_batch_is_float_in_range_and_xflip_mirrors():
    ds = load_dataset("emoji")
    idx = torch.arange(8)
    b = ds.batch(idx)
    x = b["image"]
    assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1 and b["label"].shape == (8,)
    torch.manual_seed(0)
    flipped = ds.batch(idx, xflip=True)["image"]
    same = [(flipped[i] == x[i]).all() or (flipped[i] == x[i].flip(2)).all() for i in range(8)]
    assert all(same)


def test_sampler_is_deterministic_and_resumable():
    a = BatchSampler(10, 4, seed=3)
    seq = [a.next() for _ in range(6)]
    b = BatchSampler(10, 4, seed=3)
    for _ in range(3):
        b.next()
    c = BatchSampler(10, 4, seed=3)
    c.load_state_dict(b.state_dict())
    for i in range(3, 6):
        assert torch.equal(c.next(), seq[i])
    # Each epoch is a permutation.
    d = BatchSampler(10, 5, seed=0)
    assert sorted(torch.cat([d.next(), d.next()]).tolist()) == list(range(10))


def test_class_balanced_sampler_draws_rare_classes_more_and_resumes():
    labels = torch.tensor([0] * 90 + [1] * 9 + [2] * 1)
    for power, expect in [(0.0, [0.9, 0.09, 0.01]), (1.0, [1 / 3] * 3)]:
        w = class_weights(labels, power)
        share = torch.zeros(3, dtype=torch.float64).index_add_(0, labels, w) / w.sum()
        assert torch.allclose(share, torch.tensor(expect, dtype=torch.float64)), power
    s = BatchSampler(100, 50, seed=1, weights=class_weights(labels, 1.0))
    drawn = torch.cat([s.next() for _ in range(200)])  # 100 epochs of 100 indices, with replacement
    counts = torch.bincount(labels[drawn], minlength=3).double() / drawn.numel()
    assert (counts - 1 / 3).abs().max() < 0.03, counts
    # Deterministic and resumable like the plain sampler: its state is (epoch, position).
    a = BatchSampler(100, 30, seed=2, weights=class_weights(labels, 0.5))
    seq = [a.next() for _ in range(7)]
    c = BatchSampler(100, 30, seed=2, weights=class_weights(labels, 0.5))
    for _ in range(4):
        c.next()
    d = BatchSampler(100, 30, seed=2, weights=class_weights(labels, 0.5))
    d.load_state_dict(c.state_dict())
    assert all(torch.equal(d.next(), seq[i]) for i in range(4, 7))


def test_class_balance_needs_labels(tmp_path):
    ds = load_dataset(str(make_archive(tmp_path / "d.zip", n=8, res=8)))
    with pytest.raises(DataError, match="has no labels"):
        ds.stream(4, 0, class_balance=0.5)


def test_missing_and_unknown_sources(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_dataset(str(tmp_path / "missing"))
    with pytest.raises(DataError, match="unknown dataset 'nope'"):
        load_dataset("nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty folder"):
        load_dataset(str(tmp_path / "empty"))
