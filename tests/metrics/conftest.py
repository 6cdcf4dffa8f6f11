"""Fixtures for metric tests: a private cache, no network, random Inception weights, a quickly trained
digits classifier, all created once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def metrics_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("ganforge-cache")


@pytest.fixture(autouse=True)
def _isolated_cache(metrics_cache, monkeypatch):
    # Tests never touch the user's cache or the network.
    monkeypatch.setenv("GANFORGE_CACHE", str(metrics_cache))
    monkeypatch.setenv("GANFORGE_OFFLINE", "1")
    monkeypatch.delenv("GANFORGE_INCEPTION_WEIGHTS", raising=False)


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory):
    """Randomly initialised FID-Inception weights saved as a .pth file (no download needed)."""
    from ganforge.metrics.extractors import save_random_inception_weights

    return save_random_inception_weights(tmp_path_factory.mktemp("weights") / "random-inception.pth", seed=0)


@pytest.fixture(scope="session")
def digits():
    from ganforge.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="session")
def digits_classifier(metrics_cache, digits):
    """The digits classifier, trained once (fewer steps than the default, still > 95 % held-out) into the cache
    where `ClassifierExtractor.for_dataset` finds it."""
    from ganforge.metrics.classifier import classifier_path, save_classifier, train_classifier

    clf = train_classifier(digits, steps=120)
    path = classifier_path(clf.meta["dataset_sha256"], metrics_cache, digits.name)
    save_classifier(path, clf)
    return clf


@pytest.fixture(scope="session")
def digits_extractor(digits_classifier):
    """The digits classifier as an extractor object: evaluators on subsets of digits use it instead of
    training a classifier for each subset."""
    from ganforge.metrics.classifier import ClassifierExtractor

    return ClassifierExtractor(digits_classifier)
