"""Class labels for conditional generators: by seed (s % K, or one class), and, for evaluation, drawn
with the real data's class frequencies, fixed by the seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganforge.data.dataset import ImageDataset
from ganforge.metrics import Evaluator, generator_from_model
from ganforge.sample.latents import labels_by_frequency, labels_for_seeds, noise_request
from ganforge.spec import DataSpec


def test_labels_by_frequency_follow_the_counts_and_never_pick_an_empty_class():
    counts = [600, 0, 300, 100]
    lab = labels_by_frequency(range(20000), counts)
    freq = np.bincount(lab.numpy(), minlength=4) / 20000
    assert freq[1] == 0
    assert np.allclose(freq, np.array(counts) / 1000, atol=0.015)


def test_labels_by_frequency_are_fixed_by_the_seed_whatever_the_batch():
    counts = [5, 1, 1, 3]
    whole = labels_by_frequency(range(100), counts)
    parts = torch.cat([labels_by_frequency(range(i, i + 7), counts) for i in range(0, 100, 7)])[:100]
    assert torch.equal(whole, parts)
    assert torch.equal(labels_by_frequency([42, 7], counts), whole[[42, 7]])


def test_labels_by_frequency_rejects_empty_counts():
    with pytest.raises(ValueError):
        labels_by_frequency([0, 1], [0, 0])


def test_noise_request_prefers_an_explicit_label_then_the_counts_then_seed_mod_k():
    seeds = list(range(12))
    assert torch.equal(noise_request(seeds, (4,), 3, 2, label_counts=[1, 1, 1]).labels, torch.full((12,), 2))
    assert torch.equal(noise_request(seeds, (4,), 3, label_counts=[0, 0, 1]).labels, torch.full((12,), 2))
    assert torch.equal(noise_request(seeds, (4,), 3).labels, labels_for_seeds(seeds, 3))
    assert noise_request(seeds, (4,), 0, label_counts=[1, 2]).labels is None  # unconditional: no labels
    # The latents do not depend on how the labels were chosen.
    assert torch.equal(noise_request(seeds, (4,), 3, label_counts=[1, 1, 1]).z, noise_request(seeds, (4,), 3).z)


class _Recorder:
    """A stand-in conditional Model: records the labels it generates for (as `Model.generate` chooses them)."""

    def __init__(self, num_classes: int, class_names: list[str]) -> None:
        self.spec = DataSpec(resolution=8, channels=3, num_classes=num_classes, class_names=class_names)
        self.labels: list[int] = []

    def generate(self, seeds, output="tensor", batch=64, label_counts=None):
        self.labels += noise_request(list(seeds), (2,), self.spec.num_classes, label_counts=label_counts).labels.tolist()
        return torch.zeros(len(seeds), 3, 8, 8)


def _real(labels: list[int], names: list[str]) -> ImageDataset:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (len(labels), 3, 8, 8), dtype=torch.uint8, generator=g)
    return ImageDataset(images, torch.tensor(labels), names)


def test_evaluation_draws_a_conditional_models_classes_with_the_real_frequencies():
    names = ["a", "b", "c"]
    # 3 classes, the last one absent from the real data.
    ev = Evaluator(_real([0] * 90 + [1] * 10, names), extractor="classifier", metrics="fid", progress=False)
    model = _Recorder(3, names)
    assert ev.label_counts(model.spec) == [90, 10, 0]
    fn = generator_from_model(model, batch=50, label_counts=ev.label_counts(model.spec))
    fn(0, 400)
    freq = np.bincount(model.labels, minlength=3) / 400
    assert freq[2] == 0 and 0.8 < freq[0] < 0.97
    # Other classes than the model's (or unlabelled real data, or an unconditional model): no counts.
    assert ev.label_counts(DataSpec(num_classes=3, class_names=["x", "y", "z"])) is None
    assert ev.label_counts(DataSpec(num_classes=2)) is None
    assert ev.label_counts(DataSpec()) is None
