"""Inception Score (Salimans et al. 2016, Sec. 4): exp E_x KL(p(y|x) || p(y)), mean and std over splits.

Computed from the classifier's logits (for the FID Inception network, the 1008 "unbiased" logits
without the fc bias, as torch-fidelity and the original TF code do). Samples are shuffled with
numpy RandomState(2020) before splitting, like torch-fidelity, so the numbers agree with it.
"""

from __future__ import annotations

import numpy as np
import torch


def inception_score(
    logits: np.ndarray | torch.Tensor, *, splits: int = 10, shuffle: bool = True, seed: int = 2020
) -> tuple[float, float]:
    """IS mean and std over `splits` equal parts (10 by convention; fewer when there are fewer samples)."""
    x = torch.as_tensor(np.asarray(logits)) if not isinstance(logits, torch.Tensor) else logits.cpu()
    x = x.double()  # (N, K)
    n = x.shape[0]
    if x.ndim != 2 or n < 2:
        raise ValueError(f"Inception Score needs (N, K) logits with N >= 2, got {tuple(x.shape)}")
    splits = min(splits, n)
    if shuffle:
        x = x[torch.from_numpy(np.random.RandomState(seed).permutation(n))]
    p, log_p = x.softmax(1), x.log_softmax(1)
    scores = []
    for i in range(splits):
        lo, hi = i * n // splits, (i + 1) * n // splits
        q = p[lo:hi].mean(0, keepdim=True)  # marginal p(y) of the split
        kl = (p[lo:hi] * (log_p[lo:hi] - q.log())).sum(1).mean()  # E_x KL(p(y|x) || p(y)), Salimans et al. eq. (Sec. 4)
        scores.append(float(kl.exp()))
    return float(np.mean(scores)), float(np.std(scores))
