"""Curation: generate many images from a trained run, score them, keep the best.

    from ganforge.curate import curate
    res = curate("runs/dcgan-emoji", num=10000, keep=1000, by="sharpness,realism", out="curated")
    res.kept_seeds, res.scores["sharpness"], res.to_dict()

Images are addressed by seed (seed s is `ganforge generate RUN --seeds s`), so a kept image reproduces. Every
image is scored in batches (`ganforge.curate.scorers`); only the kept ones are generated a second time, to be
written. How the kept images are chosen:

- ranks (`by`): each scorer ranks the images (0 = best); an image's combined rank is the mean of its per-scorer
  ranks (a Borda count), and the `keep` images with the smallest combined rank are kept (ties: lower seed first).
  Ranks, not raw scores, so scorers of different scales weigh the same.
- thresholds (`min`, {scorer: value}): only images whose every such score is at least its value can be kept;
  among them the ranks decide (of the `by` scorers, else of the thresholded ones), up to `keep`.
- discriminator rejection sampling (`by="drs"`, Azadi et al., ICLR 2019): D's logit is recalibrated by a
  logistic regression on real (label 1) and generated (label 0) images, as the paper's recalibration does; with
  the calibrated logit L(x), L_M its maximum over the generated pool (the paper's burn-in), F(x) = L(x) - L_M -
  log(1 - exp(L(x) - L_M - eps)) (eps = 1e-6), and gamma the `drs_percentile`-th percentile of F over the pool
  (the paper's 95), x is accepted with probability sigmoid(F(x) - gamma), by a uniform draw seeded with
  `drs_seed`. Every accepted image is kept, up to `keep` (lowest seeds first); `accepted_fraction` is the share
  accepted of `num`.

`out` gets `images/seedNNNN.png` (the kept images), `scores.csv` (seed, label for conditional models, every
score, the DRS acceptance probability, kept), `hist-<scorer>.png` (each scorer's histogram before and after,
needs matplotlib: `pip install 'ganforge[report]'`) and `curate.json` (the settings and the summary).
"""

from __future__ import annotations

import builtins
import csv
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, DataError, MissingDependencyError
from .scorers import Scorer, ScoringContext, discriminator_logits, get_scorer, parse_scorer_option, score_batches

DRS = "drs"  # the --by name of discriminator rejection sampling
DRS_EPS = 1e-6  # Azadi et al.'s epsilon, keeping the log's argument positive at the maximum
DRS_PERCENTILE = 95.0  # gamma: this percentile of F(x) (the paper's choice)
DRS_CALIBRATION = 2000  # real and generated images for the recalibration, at most, each


@dataclass
class CurateResult:
    """What `curate` did: every generated seed, its scores and whether it was kept (in seed order)."""

    seeds: list[int]
    scores: dict[str, torch.Tensor]
    kept: torch.Tensor  # bool (N,)
    method: str  # "rank", "min" or "drs"
    by: list[str]
    labels: torch.Tensor | None = None
    accepted_fraction: float | None = None  # DRS: share of the generated images accepted
    drs: dict[str, Any] = field(default_factory=dict)  # DRS: calibration and the acceptance probabilities
    out: Path | None = None
    files: dict[str, str] = field(default_factory=dict)

    @property
    def kept_seeds(self) -> list[int]:
        return [s for s, k in zip(self.seeds, self.kept.tolist()) if k]

    def summary(self) -> dict[str, Any]:
        """Per scorer: mean before (all generated) and after (kept); counts; DRS's accepted fraction."""
        per = {}
        for name, v in self.scores.items():
            kept = v[self.kept]
            per[name] = {
                "before_mean": float(v.mean()),
                "after_mean": float(kept.mean()) if kept.numel() else math.nan,
                "before_std": float(v.std()) if v.numel() > 1 else 0.0,
                "after_std": float(kept.std()) if kept.numel() > 1 else 0.0,
            }
        out: dict[str, Any] = {
            "num": len(self.seeds),
            "kept": int(self.kept.sum()),
            "method": self.method,
            "by": self.by,
            "scorers": per,
        }
        if self.accepted_fraction is not None:
            out["accepted_fraction"] = self.accepted_fraction
            out["drs"] = {k: v for k, v in self.drs.items() if not isinstance(v, torch.Tensor)}
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the summary, the files written, and per kept image its seed and scores (for a web view)."""
        rows = []
        idx = self.kept.nonzero().flatten().tolist()
        for i in idx:
            row: dict[str, Any] = {"seed": self.seeds[i], **{k: float(v[i]) for k, v in self.scores.items()}}
            if self.labels is not None:
                row["label"] = int(self.labels[i])
            rows.append(row)
        return {**self.summary(), "out": str(self.out) if self.out else None, "files": self.files, "kept_images": rows}


def parse_by(by: str | Sequence[str]) -> list[str]:
    """ "sharpness,realism" -> ["sharpness", "realism"] (a scorer's own argument stays: "classifier:cat")."""
    items = by.split(",") if isinstance(by, str) else list(by)
    names = [b.strip() for b in items if b and b.strip()]
    return list(dict.fromkeys(names))


def parse_min(items: Mapping[str, float] | Sequence[str] | None) -> dict[str, float]:
    """{"sharpness": 0.01} or ["sharpness=0.01", ...] -> {scorer: threshold}; one line when malformed."""
    if not items:
        return {}
    if isinstance(items, Mapping):
        pairs = list(items.items())
    else:
        pairs = []
        for item in items:
            name, eq, value = str(item).rpartition("=")
            if not eq or not name.strip():
                raise ConfigError(f"--min {item!r}: give SCORER=VALUE, e.g. --min sharpness=0.01")
            pairs.append((name.strip(), value))
    out = {}
    for name, value in pairs:
        try:
            v = float(value)
        except (TypeError, ValueError):
            v = math.nan
        if not math.isfinite(v):
            raise ConfigError(f"--min {name}={value}: the threshold must be a finite number")
        out[str(name)] = v
    return out


def check_counts(num: int, keep: int) -> None:
    if num < 1:
        raise ConfigError(f"--num {num}: generate at least 1 image")
    if keep < 1:
        raise ConfigError(f"--keep {keep}: keep at least 1 image")
    if keep > num:
        raise ConfigError(
            f"--keep {keep} is more than --num {num}: keep at most the images generated (raise --num or lower --keep)"
        )


def rank_select(
    scores: Mapping[str, torch.Tensor], names: Sequence[str], keep: int, allowed: torch.Tensor | None = None
) -> torch.Tensor:
    """Keep mask of the `keep` images with the smallest mean per-scorer rank (rank 0 = highest score; ties in a
    scorer share their mean rank; ties in the mean go to the lower index). `allowed`: candidates (bool)."""
    n = next(iter(scores.values())).numel()
    mean_rank = torch.zeros(n, dtype=torch.float64)
    for name in names:
        mean_rank += _ranks(-scores[name].double())
    mean_rank /= max(len(names), 1)
    if allowed is not None:
        mean_rank[~allowed] = math.inf
    order = sorted(range(n), key=lambda i: (mean_rank[i].item(), i))
    kept = torch.zeros(n, dtype=torch.bool)
    for i in order[:keep]:
        if math.isfinite(mean_rank[i].item()):
            kept[i] = True
    return kept


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks 0..n-1 of x ascending, ties sharing their mean rank."""
    order = torch.argsort(x, stable=True)
    ranks = torch.empty_like(x, dtype=torch.float64)
    ranks[order] = torch.arange(x.numel(), dtype=torch.float64)
    uniq, inverse = torch.unique(x, return_inverse=True)
    if uniq.numel() < x.numel():  # average the ranks of ties
        sums = torch.zeros(uniq.numel(), dtype=torch.float64).index_add_(0, inverse, ranks)
        counts = torch.zeros(uniq.numel(), dtype=torch.float64).index_add_(0, inverse, torch.ones_like(ranks))
        ranks = (sums / counts)[inverse]
    return ranks


# ---- discriminator rejection sampling ------------------------------------------------------------------------


def fit_logistic(
    x_pos: torch.Tensor, x_neg: torch.Tensor, *, iters: int = 50, ridge: float = 1e-6
) -> tuple[float, float]:
    """(a, b) of sigmoid(a x + b) fit by maximum likelihood (Newton's method) to x_pos (label 1) and x_neg (label 0):
    DRS's recalibration of D's logit. Classes are weighted equally."""
    x = torch.cat([x_pos, x_neg]).double()
    y = torch.cat([torch.ones(len(x_pos)), torch.zeros(len(x_neg))]).double()
    wts = torch.cat([torch.full((len(x_pos),), 0.5 / len(x_pos)), torch.full((len(x_neg),), 0.5 / len(x_neg))]).double()
    scale = x.std().clamp_min(1e-12)
    xs = (x - x.mean()) / scale  # Newton on standardised inputs, mapped back below
    X = torch.stack([xs, torch.ones_like(xs)], dim=1)  # (N, 2)
    theta = torch.zeros(2, dtype=torch.float64)
    for _ in range(iters):
        p = torch.sigmoid(X @ theta)
        grad = X.T @ (wts * (p - y)) + ridge * theta
        hess = (X * (wts * p * (1 - p))[:, None]).T @ X + ridge * torch.eye(2, dtype=torch.float64)
        step = torch.linalg.solve(hess, grad)
        theta = theta - step
        if step.abs().max() < 1e-10:
            break
    a = theta[0] / scale
    b = theta[1] - a * x.mean()
    return float(a), float(b)


def drs_acceptance(
    calibrated: torch.Tensor,
    *,
    percentile: float = DRS_PERCENTILE,
    eps: float = DRS_EPS,
    max_logit: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Azadi et al.'s acceptance probabilities for calibrated logits L(x) (N,): sigmoid(F(x) - gamma) with
    F(x) = L - L_M - log(1 - exp(L - L_M - eps)), L_M = `max_logit` (default: max of L), gamma = the `percentile`-th
    percentile of F."""
    L = calibrated.double()
    L_M = float(L.max()) if max_logit is None else float(max_logit)
    delta = (L - L_M).clamp(max=0.0)
    F_x = delta - torch.log1p(-torch.exp(delta - eps))
    gamma = float(torch.quantile(F_x, percentile / 100.0))
    return torch.sigmoid(F_x - gamma).float(), {"max_logit": L_M, "gamma": gamma, "eps": eps, "percentile": percentile}


# ---- the command ---------------------------------------------------------------------------------------------


def curate(
    run: str | os.PathLike | Any,
    *,
    num: int = 10000,
    keep: int = 1000,
    by: str | Sequence[str] = "sharpness,realism",
    min: Mapping[str, float] | Sequence[str] | None = None,  # noqa: A002 - the CLI's --min
    out: str | os.PathLike | None = None,
    seed_start: int = 0,
    batch: int = 64,
    device: str = "cpu",
    checkpoint: str | int = "latest",
    data: str | None = None,
    scorers: Mapping[str, str] | Sequence[str] | None = None,
    drs_percentile: float = DRS_PERCENTILE,
    drs_seed: int = 0,
    histograms: bool = True,
    cache: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CurateResult:
    """Generate `num` images from seeds `seed_start`.., score them with the `by` scorers (and the `min` ones), keep
    up to `keep` (see the module's docstring), and with `out`, write them with scores.csv, histograms and
    curate.json. `run`: a run folder or name, or a loaded `ganforge.load(..., nets="all")` Model. `data`: the real
    data for realism, classifier and DRS (default: the run's training data). `scorers`: extra scorers,
    {name: "module:function"} or ["module:function", ...]. `progress(done, total)` is called after each batch.
    Bad input raises a one-line ConfigError / DataError / MissingDependencyError."""
    check_counts(num, keep)
    names = parse_by(by)
    thresholds = parse_min(min)
    use_drs = DRS in names
    rank_names = [n for n in names if n != DRS]
    if use_drs and rank_names:
        raise ConfigError(
            f"--by drs samples by the discriminator alone; drop {', '.join(rank_names)} (or use --min for thresholds)"
        )
    if not names and not thresholds:
        raise ConfigError("give --by SCORERS (e.g. --by sharpness,realism or --by drs) or --min SCORER=VALUE")
    if seed_start < 0:
        raise ConfigError(f"--seed-start {seed_start}: seeds go from 0")
    if batch < 1:
        raise ConfigError("--batch must be at least 1")
    if not 0 <= drs_percentile <= 100:
        raise ConfigError(f"--drs-percentile {drs_percentile}: give a percentile from 0 to 100")
    if out is not None and histograms:
        _require_matplotlib()
    extra = scorers if isinstance(scorers, Mapping) else parse_scorer_option(list(scorers or ()))

    model = _load(run, checkpoint=checkpoint, device=device, need_d=use_drs or "realness" in rank_names)
    if model.capabilities.inputs != "noise" or model.spec.kind != "image":
        raise ConfigError(
            f"curate generates images from seeds, and model '{model.family.name}' does not; use a noise-to-image run"
        )
    ctx = ScoringContext(model=model, data=data or model.config.data, device=device, cache=cache)
    wanted = list(dict.fromkeys(rank_names + list(thresholds)))
    scorer_objs: list[Scorer] = [get_scorer(n, ctx, extra=dict(extra)) for n in wanted]
    by_name = dict(zip(wanted, scorer_objs))
    D = dev = None
    if use_drs:
        D, dev = ctx.discriminator("--by drs")

    from ..sample.latents import noise_request

    seeds = list(range(seed_start, seed_start + num))
    if seeds[-1] > 2**32 - 1:
        raise ConfigError(f"seeds {seed_start}..{seeds[-1]} go past 2**32 - 1; lower --seed-start")
    scores: dict[str, list[torch.Tensor]] = {s.name: [] for s in scorer_objs}
    logits, all_labels = [], []
    for lo in range(0, num, batch):
        part = seeds[lo : lo + batch]
        req = noise_request(part, model.latent_shape, model.spec.num_classes)
        x = model.sampler.run(req, batch=batch)  # (B, C, H, W) in [-1, 1]
        lab = req.labels
        if lab is not None:
            all_labels.append(lab.cpu())
        for k, v in score_batches(scorer_objs, (x.float() + 1) / 2, lab, batch=batch).items():
            scores[k].append(v)
        if D is not None:
            logits.append(discriminator_logits(D, x, lab, dev))
        if progress is not None:
            progress(builtins.min(lo + batch, num), num)
    score_t = {k: torch.cat(v) for k, v in scores.items()}
    # Keyed by the name the user gave (classifier:cat), in the order given.
    score_t = {n: score_t[by_name[n].name] for n in wanted}
    labels = torch.cat(all_labels) if all_labels else None

    allowed = torch.ones(num, dtype=torch.bool)
    for name, thr in thresholds.items():
        allowed &= score_t[name] >= thr
    drs_info: dict[str, Any] = {}
    accepted_fraction = None
    if use_drs:
        gen_logits = torch.cat(logits)
        real_logits = _real_logits(ctx, D, dev, batch)
        a, b = fit_logistic(real_logits, gen_logits[:DRS_CALIBRATION])
        calibrated = a * gen_logits.double() + b
        prob, info = drs_acceptance(calibrated, percentile=drs_percentile)
        u = torch.rand(num, generator=torch.Generator().manual_seed(int(drs_seed)), dtype=torch.float64)
        accepted = (u < prob.double()) & allowed
        accepted_fraction = float(accepted.double().mean())
        kept = torch.zeros(num, dtype=torch.bool)
        kept[accepted.nonzero().flatten()[:keep]] = True
        method = "drs"
        drs_info = {
            **info,
            "a": a,
            "b": b,
            "real_calibration": int(real_logits.numel()),
            "fake_calibration": int(builtins.min(num, DRS_CALIBRATION)),
            "accepted": int(accepted.sum()),
            "mean_probability": float(prob.double().mean()),
            "probability": prob,
            "logit": gen_logits,
        }
        score_t = {**score_t, "drs_probability": prob}
    else:
        rank_by = rank_names or list(thresholds)
        kept = rank_select(score_t, rank_by, keep, allowed if thresholds else None)
        method = "min" if thresholds and not rank_names else "rank"
    result = CurateResult(
        seeds=seeds,
        scores=score_t,
        kept=kept,
        method=method,
        by=names,
        labels=labels,
        accepted_fraction=accepted_fraction,
        drs=drs_info,
    )
    if out is not None:
        _write(result, model, Path(out), batch, histograms, thresholds)
    return result


def _load(run: Any, *, checkpoint: str | int, device: str, need_d: bool) -> Any:
    """A Model: as given, or loaded from a run (with every network when D is needed)."""
    if hasattr(run, "sampler") and hasattr(run, "nets"):
        return run
    from ..sample.model import Model

    return Model.load(run, checkpoint=checkpoint, device=device, nets="all" if need_d else "generator")


def _real_logits(ctx: ScoringContext, D: Any, dev: Any, batch: int) -> torch.Tensor:
    """D's logits on up to DRS_CALIBRATION real images (a fixed spread of the data), with their labels."""
    real = ctx.real()
    n = len(real)
    if n < 2:
        raise DataError("DRS's recalibration needs at least 2 real images")
    idx = torch.linspace(0, n - 1, min(n, DRS_CALIBRATION)).round().long().unique()
    out = []
    for i in range(0, idx.numel(), batch):
        j = idx[i : i + batch]
        x = real.images[j].float() / 127.5 - 1.0
        lab = None
        if ctx.model.spec.num_classes and real.labels is not None:
            lab = real.labels[j].long()
        out.append(discriminator_logits(D, x, lab, dev))
    return torch.cat(out)


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "curate's histograms need matplotlib: pip install 'ganforge[report]' (or pass --no-histograms)"
        ) from None


def _write(
    result: CurateResult, model: Any, out: Path, batch: int, histograms: bool, thresholds: dict[str, float]
) -> None:
    from ..images import to_pil
    from ..sample.grid import save_png
    from ..sample.latents import noise_request

    out.mkdir(parents=True, exist_ok=True)
    img_dir = out / "images"
    img_dir.mkdir(exist_ok=True)
    kept = result.kept_seeds
    for lo in range(0, len(kept), batch):
        part = kept[lo : lo + batch]
        x = model.sampler.run(noise_request(part, model.latent_shape, model.spec.num_classes), batch=batch)
        for s, im in zip(part, to_pil(x)):
            save_png(im, img_dir / f"seed{s:04d}.png")
    names = list(result.scores)
    with open(out / "scores.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seed"] + (["label"] if result.labels is not None else []) + names + ["kept"])
        for i, s in enumerate(result.seeds):
            row: list[Any] = [s]
            if result.labels is not None:
                row.append(int(result.labels[i]))
            row += [f"{float(result.scores[n][i]):.6g}" for n in names]
            row.append(int(bool(result.kept[i])))
            w.writerow(row)
    result.out = out
    result.files = {"images": str(img_dir), "scores": str(out / "scores.csv")}
    if histograms:
        for n in names:
            path = out / f"hist-{_slug(n)}.png"
            _histogram(result.scores[n], result.kept, n, path, thresholds.get(n))
            result.files[f"hist:{n}"] = str(path)
    (out / "curate.json").write_text(json.dumps(_finite(result.summary()), indent=1) + "\n")
    result.files["summary"] = str(out / "curate.json")


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def _finite(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def _histogram(values: torch.Tensor, kept: torch.Tensor, name: str, path: Path, threshold: float | None) -> None:
    """One PNG: the scorer's histogram over every generated image and over the kept ones (density-scaled)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    v = values.double().numpy()
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    bins = 40 if v.size > 100 else 15
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    ax.hist(v, bins=bins, range=(lo, hi), density=True, alpha=0.5, label=f"before ({v.size})")
    k = v[kept.numpy()]
    if k.size:
        ax.hist(k, bins=bins, range=(lo, hi), density=True, alpha=0.5, label=f"after ({k.size})")
    if threshold is not None:
        ax.axvline(threshold, color="k", linestyle="--", linewidth=1, label="--min")
    ax.set_xlabel(name)
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


__all__ = [
    "DRS",
    "CurateResult",
    "check_counts",
    "curate",
    "drs_acceptance",
    "fit_logistic",
    "parse_by",
    "parse_min",
    "rank_select",
]
