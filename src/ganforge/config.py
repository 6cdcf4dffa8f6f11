"""Training configuration: one typed dataclass for the loop, one per family for its hyper-parameters.

The resolved configuration is saved as `config.json` in the run folder; `--set key=value` overrides
any field (loop or family) by name, and `--dry-run` prints the result without training.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError


@dataclass
class TrainConfig:
    data: str = "emoji"  # built-in name, prepared archive (zip/folder with dataset.json) or raw image folder
    model: str = "dcgan"  # model family (see `ganforge train --help`)
    resolution: int | None = None  # training resolution in pixels; None: the dataset's own
    channels: int | None = None  # 1 or 3; None: the dataset's own
    steps: int = 2500  # optimisation steps (each one D and one G update, or as the family defines)
    kimg: float | None = None  # alternative length: thousands of real images shown (overrides steps)
    batch: int = 64  # images per step
    cond: bool = False  # class-conditional training on the dataset's labels
    xflip: bool = False  # mirror real images at random (doubles the data for left-right symmetric sets)
    seed: int = 0  # seeds networks, data order and noise: same seed + config -> same run
    run: str | None = None  # run name; the folder is <runs_dir>/<run>; None: "<model>-<data>"
    runs_dir: str = "runs"  # folder holding the runs
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (auto: bf16 on CPUs with native bf16 and on CUDA)
    channels_last: bool = True  # NHWC memory layout for convolutions (faster on CPU and tensor cores)
    ema_kimg: float = 10.0  # EMA half-life of G's weights in thousands of images (0 disables the EMA)
    ema_rampup: float = 0.05  # EMA half-life is at most this fraction of images shown so far (StyleGAN2)
    log_every: int = 50  # steps between lines in metrics.jsonl
    sample_every: int = 500  # steps between sample grids (fixed seeds)
    ckpt_every: int = 1000  # steps between checkpoints (one is also written at the end and on Ctrl-C)
    keep_ckpts: int = 3  # periodic checkpoints kept (the best one is kept too); 0 keeps all
    grid_size: int = 64  # images in each sample grid (seeds 0..grid_size-1)
    eval_every: int = 0  # steps between evaluations (0: none)
    eval_metrics: str = "fid"  # comma-separated metrics for periodic evaluation; the first picks `best`
    eval_num: int = 10000  # generated images per periodic evaluation
    eval_extractor: str = "inception"  # feature extractor for periodic evaluation
    threads: int = 0  # CPU threads for torch (0: torch's default)
    family: dict[str, Any] = field(default_factory=dict)  # the family's own hyper-parameters

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown config keys {unknown}; see `ganforge train --help`")
        return cls(**d)

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from exc

    def run_name(self) -> str:
        if self.run:
            return self.run
        data = Path(self.data).stem if ("/" in self.data or "." in self.data) else self.data
        return f"{self.model}-{data}"

    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.run_name()


# Fields that may change when a run is resumed (length, logging and evaluation cadence, device).
RESUMABLE_CHANGES = {
    "steps", "kimg", "log_every", "sample_every", "ckpt_every", "keep_ckpts", "eval_every", "eval_metrics",
    "eval_num", "eval_extractor", "device", "threads", "runs_dir", "run", "grid_size",
}


def apply_overrides(cfg: TrainConfig, family_cfg: Any, overrides: list[str]) -> None:
    """Apply `key=value` overrides to the loop config or the family config (family fields win)."""
    fam_fields = {f.name for f in dataclasses.fields(family_cfg)} if dataclasses.is_dataclass(family_cfg) else set()
    loop_fields = {f.name for f in dataclasses.fields(cfg)} - {"family"}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got '{item}'")
        key, text = (s.strip() for s in item.split("=", 1))
        key = key.replace("-", "_")
        target = family_cfg if key in fam_fields else cfg if key in loop_fields else None
        if target is None:
            raise ConfigError(
                f"unknown setting '{key}'; family settings: {', '.join(sorted(fam_fields)) or 'none'}"
            )
        try:
            setattr(target, key, parse_value(text, getattr(target, key)))
        except (ValueError, ConfigError) as exc:
            raise ConfigError(f"bad value for {key}: '{text}' ({exc})") from None


def family_config_from_dict(family: Any, d: dict[str, Any]) -> Any:
    """The family's Config from saved values (unknown keys are an error: the run is from another version)."""
    cfg = family.default_config()
    names = {f.name for f in dataclasses.fields(cfg)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(f"model '{family.name}' has no settings {unknown}; was the run made by another version?")
    for k, v in d.items():
        cur = getattr(cfg, k)
        setattr(cfg, k, type(cur)(v) if isinstance(cur, tuple) else v)
    return cfg


def parse_value(text: str, current: Any) -> Any:
    """Parse a `--set` value to the type of the field's current value."""
    if isinstance(current, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"expected true/false, got '{text}'")
    if isinstance(current, int):
        return int(text)
    if isinstance(current, float):
        return float(text)
    if isinstance(current, (list, tuple)):
        parts = [p for p in text.strip("[]()").split(",") if p.strip()]
        conv: Callable[[str], Any] = type(current[0]) if current else str
        return type(current)(conv(p.strip()) for p in parts)
    if current is None:
        for conv in (int, float):
            try:
                return conv(text)
            except ValueError:
                pass
        return None if text.lower() == "none" else text
    return text
