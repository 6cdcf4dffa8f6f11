"""The classifier extractor: accurate on digits, deterministic, cached as safetensors + JSON, and the
class-coverage signal that shows a GAN generating "just one digit"."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ganforge.data.dataset import ImageDataset
from ganforge.errors import DataError
from ganforge.metrics import Evaluator
from ganforge.metrics.classifier import (
    CLASSIFIER_VERSION,
    ClassifierExtractor,
    classifier_path,
    get_classifier,
    train_classifier,
)


def test_digits_classifier_is_accurate(digits_classifier):
    assert digits_classifier.meta["heldout_accuracy"] > 0.95
    assert digits_classifier.meta["heldout_images"] >= 150


def test_training_is_deterministic(digits):
    small = ImageDataset(digits.images[:300], digits.labels[:300], digits.class_names, "digits300")
    a = train_classifier(small, steps=5).net.state_dict()
    b = train_classifier(small, steps=5).net.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_emoji_classifier_predicts_every_class_of_the_real_data():
    """The coverage metric's ceiling: the real data must cover every class. Version 1's head, short of
    convergence, predicted none of emoji's 5 `Component` images (of 3,786) as Component."""
    import numpy as np

    from ganforge.data import load_dataset
    from ganforge.metrics.classes import class_coverage

    ds = load_dataset("emoji")
    a = train_classifier(ds, head_steps=0)  # the body alone: features identical with or without the refit
    b = train_classifier(ds)
    body = [k for k in a.net.state_dict() if not k.startswith("head.")]
    assert all(torch.equal(a.net.state_dict()[k], b.net.state_dict()[k]) for k in body)
    pred = ClassifierExtractor(b)(ds.images)["logits"].argmax(1).numpy()
    hist = np.bincount(pred, minlength=ds.num_classes) / len(pred)
    assert class_coverage(pred, hist)[0] == ds.num_classes == 10
    component = ds.class_names.index("Component")
    assert (pred[ds.labels.numpy() == component] == component).mean() >= 0.8


def test_cached_as_safetensors_and_json(digits, digits_classifier, metrics_cache):
    clf, path, trained = get_classifier(digits, cache=metrics_cache)
    assert not trained and path == classifier_path(digits_classifier.meta["dataset_sha256"], metrics_cache, "digits")
    assert path.suffix == ".safetensors" and path.read_bytes()[:8] != b"\x80\x02\x8a\x0a"  # not a pickle
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["num_classes"] == 10 and meta["version"] == CLASSIFIER_VERSION == 2
    ext = ClassifierExtractor(clf)
    out = ext(digits.images[:7])
    assert out["features"].shape == (7, 128) and out["logits"].shape == (7, 10)


def test_unlabelled_data_is_a_clear_error():
    ds = ImageDataset(torch.zeros(30, 1, 8, 8, dtype=torch.uint8), None, [], "blank")
    with pytest.raises(DataError, match="needs labelled data"):
        train_classifier(ds)
    with pytest.raises(DataError, match="labelled real data"):
        Evaluator(ds, metrics="coverage")


def test_one_digit_generator_covers_one_class(digits, digits_classifier):
    """The classic failure: every generated image is the same digit -> 1 class covered, KL ~ log 10."""
    ev = Evaluator(digits, metrics="fid,coverage", extractor="classifier")
    same = ev(digits, num=None)
    assert same["classes_covered"] == 10 and same["class_kl"] < 1e-6 and same["fid"] == pytest.approx(0, abs=1e-6)
    three = digits.images[digits.labels == 3][0:1].float() / 127.5 - 1  # one image, repeated

    def collapsed(start: int, n: int) -> torch.Tensor:
        return three.expand(n, -1, -1, -1)

    res = ev(collapsed, num=200)
    assert res["classes_covered"] == 1 and res["num_classes"] == 10
    assert res["class_kl"] == pytest.approx(math.log(10), abs=0.05)
    assert res["fid"] > 50 * max(same["fid"], 1e-3)
    assert res["extractor"].startswith("classifier-v2-") and res["real_stats"] == "memory"
