"""Inception Score and class coverage: limiting cases and torch-fidelity parity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ganforge.metrics.classes import class_coverage, class_histogram
from ganforge.metrics.inception_score import inception_score


def test_inception_score_limits():
    n, k = 1000, 10
    assert inception_score(np.zeros((n, k)))[0] == pytest.approx(1.0)  # uniform p(y|x): IS 1
    confident = np.full((n, k), -50.0)
    confident[np.arange(n), np.arange(n) % k] = 50.0  # one-hot, balanced: IS = K
    assert inception_score(confident, shuffle=False)[0] == pytest.approx(k, rel=1e-6)  # every split balanced
    one_class = np.full((n, k), -50.0)
    one_class[:, 3] = 50.0  # collapsed: IS 1
    assert inception_score(one_class)[0] == pytest.approx(1.0, abs=1e-6)


def test_inception_score_matches_torch_fidelity():
    isc = pytest.importorskip("torch_fidelity.metric_isc")
    logits = np.random.default_rng(0).standard_normal((500, 1008)).astype(np.float32) * 3
    ours = inception_score(logits)
    theirs = isc.isc_features_to_metric(torch.from_numpy(logits), splits=10, shuffle=True, rng_seed=2020)
    assert ours == pytest.approx((theirs["inception_score_mean"], theirs["inception_score_std"]), rel=1e-9)


def test_class_coverage():
    real = class_histogram(np.arange(1000) % 10, 10)
    assert class_coverage(np.arange(500) % 10, real) == (10, pytest.approx(0.0, abs=1e-9))
    covered, kl = class_coverage(np.full(500, 7), real)  # "generates just one digit"
    assert covered == 1 and kl == pytest.approx(math.log(10), rel=1e-4)
    # A few stray predictions of other classes do not count as covering them.
    pred = np.full(1000, 7)
    pred[:5] = 2
    assert class_coverage(pred, real)[0] == 1
