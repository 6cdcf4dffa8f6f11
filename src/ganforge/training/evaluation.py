"""Periodic evaluation during training (`--eval-every N`): metrics on generated images from fixed
seeds, logged with the step; the first metric picks the `best` checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import TrainConfig
from ..data.dataset import ImageDataset
from ..errors import ConfigError
from ..sample.sampler import Sampler


class PeriodicEvaluator:
    """Holds the real data's statistics across evaluations; generates `eval_num` images from seeds
    0..eval_num-1 each time, so that numbers are comparable over a run."""

    def __init__(self, cfg: TrainConfig, sampler: Sampler, data: Any, run_dir: Path, group: Any = None) -> None:
        if sampler.family.capabilities.inputs != "noise" or sampler.spec.kind != "image" or not isinstance(data, ImageDataset):
            raise ConfigError("periodic evaluation works for models that generate images from noise; drop --eval-every")
        from ..metrics import Evaluator, parse_metrics, primary_key

        self.cfg, self.sampler = cfg, sampler
        self.metrics = parse_metrics(cfg.eval_metrics)
        self.key = primary_key(self.metrics[0])
        self.evaluator = Evaluator(
            data, metrics=self.metrics, extractor=cfg.eval_extractor, device=sampler.device, progress=False, group=group
        )
        self.best: float | None = None
        best_file = run_dir / "checkpoints" / "best.json"
        if best_file.exists():  # a resumed run keeps competing with its earlier best
            try:
                self.best = json.loads(best_file.read_text()).get("value")
            except (json.JSONDecodeError, OSError):
                self.best = None

    def check(self) -> None:
        """Load what evaluation needs (feature extractor weights) now, so that a missing file is an
        error at start-up rather than at the first evaluation."""
        with torch.random.fork_rng(devices=[]):
            _ = self.evaluator.extractor

    def __call__(self, step: int) -> dict[str, Any]:
        # Conditional models: each seed's class drawn with the real data's frequencies, as in `ganforge evaluate`.
        counts = self.evaluator.label_counts(self.sampler.spec)

        def generate(start: int, count: int) -> torch.Tensor:
            return self.sampler.seeds(range(start, start + count), batch=count, out_device=None, label_counts=counts)

        # Evaluation must not touch the training run's random streams (resume equality).
        np_state = np.random.get_state()
        device = self.sampler.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            res = self.evaluator(generate, num=self.cfg.eval_num)
        np.random.set_state(np_state)
        return res

    def is_best(self, res: dict[str, Any]) -> bool:
        from ..metrics import is_better

        value = res.get(self.key)
        if value is None:
            return False
        if is_better(self.key, float(value), self.best):
            self.best = float(value)
            return True
        return False
