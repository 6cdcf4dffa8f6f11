"""Class coverage of a generator, judged by a classifier trained on the real labelled data.

The classic GAN failure on MNIST-like data is mode collapse: every sample is the same digit. FID moves
slowly with it; counting the classes a classifier finds among generated images shows it at once
(as the Stacked-MNIST protocol does with its 1,000 modes, Metz et al. 2017 / Srivastava et al. 2017).
"""

from __future__ import annotations

import numpy as np


def class_histogram(pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Share of each class among predicted labels (K,), summing to 1."""
    counts = np.bincount(np.asarray(pred, dtype=np.int64), minlength=num_classes)[:num_classes].astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def class_coverage(
    fake_pred: np.ndarray, real_hist: np.ndarray, *, min_fraction: float = 0.1, eps: float = 1e-6
) -> tuple[int, float]:
    """(classes covered, KL(p_fake || p_real)).

    A class counts as covered when its share among generated images is at least `min_fraction` of its
    share in the real data: a stray misclassification must not make a collapsed generator look diverse,
    while a class that is merely under-represented still counts. The KL divergence of the generated class
    histogram from the real one is 0 for a perfect match and log(K) for a one-class generator on K balanced
    classes; it stays finite for missing classes (0 log 0 = 0), and `eps` guards classes absent from the
    real histogram."""
    q = np.asarray(real_hist, dtype=np.float64)
    p = class_histogram(fake_pred, len(q))
    covered = int(((p >= min_fraction * q) & (p > 0)).sum())
    qs = (q + eps) / (q + eps).sum()
    nz = p > 0
    kl = float((p[nz] * np.log(p[nz] / qs[nz])).sum())
    return covered, max(kl, 0.0)
