"""Training-time constraints: `--constraint NAME:WEIGHT` and `--topk`, turned into the `GeneratorTerms` that
`families.adversarial.adversarial_step` adds to G's update (the loop hands them to the step via its engine).

A constraint is any differentiable scorer (`ganforge.curate.scorers`) that needs nothing but the images
(`sharpness`, or a plug-in that declares `differentiable = True`): G's loss gains weight x (-mean score), so a
higher score lowers the loss. The scorer sees G's output mapped to [0, 1], before D's augmentation.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..config import TrainConfig, parse_constraints
from ..errors import ConfigError
from ..families.adversarial import GeneratorTerms
from ..registry import family_names, get_family
from .scorers import ScoringContext, get_scorer


def term_families() -> list[str]:
    """The families that declare `capabilities.generator_terms`: their G update takes the terms."""
    return [name for name in family_names() if get_family(name).capabilities.generator_terms]


def wanted(cfg: TrainConfig) -> bool:
    """Whether the run asks for constraints or top-k training."""
    return bool(cfg.constraint.strip()) or cfg.topk > 0


def check(cfg: TrainConfig) -> list[tuple[str, float, Any]]:
    """The run's constraints as (log key, weight, differentiable score function); a ConfigError when the model
    cannot take them, or a scorer is unknown or not differentiable. Needs no data (`check_before_data` calls it)."""
    if not get_family(cfg.model).capabilities.generator_terms:
        raise ConfigError(
            f"--constraint and --topk apply to {', '.join(term_families())}, not '{cfg.model}'; drop them or use "
            "--model dcgan"
        )
    constraints: list[tuple[str, float, Any]] = []
    for name, weight in parse_constraints(cfg.constraint):
        scorer = get_scorer(name, ScoringContext())
        if not scorer.differentiable:
            raise ConfigError(
                f"--constraint {name}: the {scorer.name} scorer is not differentiable, so it cannot train G; use it with "
                "`ganforge curate --by` instead, or a differentiable scorer such as sharpness"
            )
        key = re.sub(r"[^A-Za-z0-9_]+", "_", scorer.name).strip("_") or "constraint"
        constraints.append((key, weight, scorer.fn))
    return constraints


def generator_terms(cfg: TrainConfig, num_images: int, data_kind: str, step: Callable[[], int]) -> GeneratorTerms:
    """The terms of G's loss a run's settings ask for (see `check`). `num_images`: the training set's size (an
    epoch is num_images / batch steps, for top-k's schedule); `step`: the loop's current step."""
    constraints = check(cfg)
    if constraints and data_kind != "image":
        raise ConfigError(f"--constraint scores images, and this run trains on {data_kind} data; drop --constraint")
    epoch_steps = max(num_images / max(cfg.batch, 1), 1.0)
    return GeneratorTerms(
        constraints=constraints, topk_floor=cfg.topk, topk_gamma=cfg.topk_gamma, epoch_steps=epoch_steps, step=step
    )


def topk_schedule(batch: int, floor: float, gamma: float, epoch_steps: float, steps: int) -> list[int]:
    """k at each of `steps` steps (for plots and tests): as `GeneratorTerms.k`."""
    pos = [0]
    terms = GeneratorTerms(topk_floor=floor, topk_gamma=gamma, epoch_steps=epoch_steps, step=lambda: pos[0])
    out = []
    for s in range(steps):
        pos[0] = s
        out.append(terms.k(batch))
    return out


__all__ = ["check", "generator_terms", "term_families", "topk_schedule", "wanted"]
