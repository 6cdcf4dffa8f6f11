"""Training diagnostics users ask for: one side winning for too long, and collapsing diversity.

Thresholds are heuristics, stated in the messages; see the README section "When training goes wrong".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..families.base import DataSpec


def mean_pairwise_distance(x: torch.Tensor) -> float:
    """Mean Euclidean distance between all pairs of a batch (flattened), a cheap diversity measure."""
    f = x.detach().float().flatten(1)
    if f.shape[0] < 2:
        return 0.0
    d = torch.cdist(f, f)  # (B, B)
    n = f.shape[0]
    return float(d.sum() / (n * (n - 1)))


@dataclass
class Diagnostics:
    spec: DataSpec
    patience: int = 500  # steps a condition must hold before it is reported
    d_win: float = 0.01  # D(G(z)) below this: D rejects every fake
    g_win: float = 0.99  # D(x) and D(G(z)) both above... D cannot tell anything apart in the wrong way
    collapse_ratio: float = 0.25  # sample diversity below this fraction of the data's
    collapse_warmup: int = 1000  # no collapse warnings before this step (early samples all look alike)
    mode_ratio: float = 0.5  # point data with known modes: samples cover fewer than this fraction of the data's modes
    _d_streak: int = 0
    _g_streak: int = 0
    _warned: set[str] = field(default_factory=set)

    def observe(self, step: int, logs: dict[str, float]) -> list[str]:
        out: list[str] = []
        if "D_fake" in logs:
            self._d_streak = self._d_streak + 1 if logs["D_fake"] < self.d_win else 0
            if self._d_streak == self.patience:
                out.append(
                    f"discriminator is overpowering the generator: D(G(z)) < {self.d_win} for {self.patience} steps "
                    "(try --set lr_d=..., a smaller D, --loss hinge or more data augmentation)"
                )
        if "D_fake" in logs and "D_real" in logs:
            fooled = logs["D_fake"] > self.g_win and logs["D_real"] > self.g_win
            self._g_streak = self._g_streak + 1 if fooled else 0
            if self._g_streak == self.patience:
                out.append(
                    f"the discriminator has stopped learning: D(x) and D(G(z)) > {self.g_win} for {self.patience} steps"
                )
        return out

    def observe_samples(
        self, step: int, fake: torch.Tensor, real: torch.Tensor,
        fake_labels: torch.Tensor | None = None, real_labels: torch.Tensor | None = None,
    ) -> list[str]:
        """Compare the diversity of a fixed batch of samples with a batch of real data. With labels
        (conditional models), also class by class: a generator that draws one prototype per class
        looks diverse across the whole grid but not within a class."""
        if step < self.collapse_warmup:
            return []
        df, dr = mean_pairwise_distance(fake), mean_pairwise_distance(real)
        if dr > 0 and df / dr < self.collapse_ratio:
            return [
                f"possible mode collapse: samples are {dr / max(df, 1e-12):.1f}x less diverse than the data "
                f"(mean pairwise distance {df:.3g} vs {dr:.3g})"
            ]
        if fake_labels is None or real_labels is None:
            return []
        ratios = []
        for c in fake_labels.unique().tolist():
            fc, rc = fake[fake_labels == c], real[real_labels == c]
            if len(fc) >= 2 and len(rc) >= 2:
                ref = mean_pairwise_distance(rc)
                if ref > 0:
                    ratios.append(mean_pairwise_distance(fc) / ref)
        if ratios and sum(ratios) / len(ratios) < self.collapse_ratio:
            mean = sum(ratios) / len(ratios)
            return [
                f"possible mode collapse within classes: samples of one class are {1 / max(mean, 1e-12):.1f}x less "
                f"diverse than the data's images of that class (mean over {len(ratios)} classes); G may be "
                "ignoring z and drawing one image per label"
            ]
        return []

    def observe_points(
        self, step: int, fake: torch.Tensor, real: torch.Tensor, centers: torch.Tensor | None = None, std: float = 0.0
    ) -> list[str]:
        """Mode collapse on point data. When the mixture's modes are known (ring8, grid25), count the modes
        the samples cover, by the rule of the mode-collapse benchmark, against those that the same number of
        real points cover; otherwise fall back to the pairwise-distance check."""
        if step < self.collapse_warmup:
            return []
        if centers is None or std <= 0:
            return self.observe_samples(step, fake, real)
        from ..data.points import mode_stats

        f, r = mode_stats(fake, centers, std), mode_stats(real, centers, std)
        if r.modes and f.modes < self.mode_ratio * r.modes:
            return [
                f"possible mode collapse: samples cover {f.modes} of the data's {r.modes} modes "
                f"({f.hq_fraction:.0%} of samples within 3 std of a mode)"
            ]
        return []


@dataclass
class DivergenceCheck:
    """Stops a run that can no longer learn, rather than letting it print "done" after hours of noise:
    a loss that is NaN, infinite or astronomically large (|loss| > `max_loss`; GAN losses live within a few
    hundred even for Wasserstein critics), or a network whose gradient has been exactly zero for
    `zero_patience` steps in a row (e.g. `--set lr=1e9`: saturated units pass no gradient)."""

    max_loss: float = 1e6
    zero_patience: int = 100
    _zero: dict[str, int] = field(default_factory=dict)

    def __call__(self, step: int, logs: dict[str, float]) -> str | None:
        for k, v in logs.items():
            if not k.startswith("loss"):
                continue
            if v != v or abs(v) == float("inf"):
                return f"{k} is {v} at step {step}"
            if abs(v) > self.max_loss:
                return f"{k} = {v:.3g} at step {step} (larger than {self.max_loss:.0e})"
        for k, v in logs.items():
            if k.startswith("grad"):
                self._zero[k] = self._zero.get(k, 0) + 1 if v == 0.0 else 0
                if self._zero[k] >= self.zero_patience:
                    who = {"grad_G": "the generator", "grad_D": "the discriminator"}.get(k, k)
                    return f"{who} has had no gradient (|{k}| = 0) for {self.zero_patience} steps, up to step {step}"
        return None
