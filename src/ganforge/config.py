"""Training configuration: one typed dataclass for the loop, one per family for its hyper-parameters.

The resolved configuration is saved as `config.json` in the run folder; `--set key=value` overrides
any field (loop or family) by name, and `--dry-run` prints the result without training.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .vocab import AUGMENTATIONS, ON_NAN, PRECISIONS  # the one definition of each vocabulary
from .vocab import EXTRACTORS as EVAL_EXTRACTORS


def _setting(default: Any, help: str, group: str | None = None, **cli: Any) -> Any:
    """A TrainConfig field and its documentation, from which `ganforge train` builds its option
    (`ganforge.cli.options.config_options`). Metadata: `help` (the option's help, and the setting's
    documentation); `group`, the section of `ganforge train --help` ("data", "optimisation", "augmentation",
    "evaluation" or "runtime"; None: no option, the setting is changed with --set); and for the option:
    `choices` (a vocabulary of ganforge.vocab), `range` ((min, max), None for an open end), `kind`
    ("folder": a folder path; "family": a registered model family), `flags` (the option's names, when
    not --field-name) and `multiple` (a text setting whose option may be repeated, joined with commas)."""
    return field(default=default, metadata={"help": help, "group": group, **cli})


@dataclass
class TrainConfig:
    data: str = _setting(
        "emoji",
        "Built-in dataset name, prepared archive (zip or folder with dataset.json), or folder/zip of images.",
        "data",
    )
    model: str = _setting("dcgan", "Model family.", "data", kind="family")
    resolution: int | None = _setting(
        None, "Training resolution in pixels [default: the data's].", "data", range=(4, 4096)
    )
    channels: int | None = _setting(None, "1 = grayscale, 3 = RGB [default: the data's].", "data", choices=(1, 3))
    # 4000: the no-argument DCGAN on emoji fills about 5 minutes of a 2-core CPU; classifier FD 7.3 / 7.9
    # (seeds 0 / 1) against 11.1 at 2500 (5.2 / 5.1 with dcgan's lr 3e-4 at 32 px; see README, "Benchmarks").
    steps: int = _setting(
        4000,
        "Training steps (optimisation steps: each one D and one G update, or as the family defines).",
        "optimisation",
        range=(1, None),
    )
    kimg: float | None = _setting(
        None, "Train for this many thousand real images instead of --steps.", "optimisation", range=(0.001, None)
    )
    batch: int = _setting(
        64,
        "Batch size: images per step (global: under torchrun, split over the processes).",
        "optimisation",
        range=(1, None),
    )
    batch_gpu: int = _setting(
        0,
        "Images per forward/backward pass on each process; smaller than the batch accumulates gradients "
        "(0: the whole batch).",
        "optimisation",
        range=(0, None),
    )
    cond: bool = _setting(False, "Class-conditional training on the dataset's labels.", "data")
    class_balance: float = _setting(
        0.0,
        "Draw rare classes of a labelled set more often: class c in proportion to count^(1-this); 0 as in the "
        "data, 0.5 by the square root of its size, 1 every class equally.",
        "data",
    )
    xflip: bool = _setting(
        False,
        "Mirror real images at random (doubles the data for left-right symmetric sets).",
        "augmentation",
    )
    aug: str = _setting(
        "none",
        "Augment every image D sees (adversarial models): ada adapts p to D's overfitting; fixed uses --aug-p.",
        "augmentation",
        choices=AUGMENTATIONS,
    )
    aug_p: float = _setting(
        0.0, "Augmentation probability (ada: its start; fixed: its value).", "augmentation", range=(0, 1)
    )
    aug_target: float = _setting(
        0.6,
        "ADA's target for the overfitting heuristic r_t = E[sign(D(real))] (Karras et al. 2020).",
        "augmentation",
        range=(0, 1),
    )
    aug_kimg: float = _setting(500.0, "ADA's speed: p can go from 0 to 1 in this many thousand images.")
    seed: int = _setting(
        0, "Random seed of the networks, data order and noise: same seed and settings, same run.", "optimisation"
    )
    run: str | None = _setting(
        None,
        "Run name, one folder name inside --runs-dir [default: MODEL-DATA]; --name is the same option "
        "(torchrun mistakes --run for its --run-path).",
        "runtime",
        flags=("--run", "--name"),
    )
    runs_dir: str = _setting("runs", "Folder that holds runs.", "runtime", kind="folder")
    device: str = _setting("auto", "auto, cpu, cuda, cuda:N or mps.", "runtime")
    precision: str = _setting(
        "auto",
        "Mixed precision (auto: bf16 on CPUs with native bf16 and on CUDA).",
        "runtime",
        choices=PRECISIONS,
    )
    channels_last: bool = _setting(True, "NHWC memory layout for convolutions (faster on CPU and tensor cores).")
    compile: bool = _setting(
        False,
        "torch.compile the training networks: faster steps after a slow first one "
        "(measure with benchmarks/train_speed.py).",
        "runtime",
    )
    ema_kimg: float = _setting(
        10.0, "EMA half-life of G's weights in kimg (0: no EMA).", "optimisation", range=(0, None)
    )
    ema_rampup: float = _setting(
        0.05, "The EMA half-life is at most this fraction of the images shown so far (StyleGAN2)."
    )
    log_every: int = _setting(50, "Steps between metrics.jsonl lines.", "runtime", range=(1, None))
    sample_every: int = _setting(500, "Steps between sample grids (fixed seeds).", "runtime", range=(1, None))
    ckpt_every: int = _setting(
        1000,
        "Steps between checkpoints (one is also written at the end and on Ctrl-C).",
        "runtime",
        range=(1, None),
    )
    keep_ckpts: int = _setting(3, "Periodic checkpoints kept (the best one is kept too); 0 keeps all.")
    grid_size: int = _setting(64, "Images in each sample grid (seeds 0..grid_size-1).")
    eval_every: int = _setting(0, "Steps between evaluations (0: none).", "evaluation", range=(0, None))
    eval_metrics: str = _setting(
        "fid",
        "Comma-separated metrics for periodic evaluation; the first picks the best checkpoint.",
        "evaluation",
    )
    eval_num: int = _setting(10000, "Generated images per evaluation.", "evaluation", range=(1, None))
    eval_extractor: str = _setting(
        "inception", "Feature extractor for periodic evaluation.", "evaluation", choices=EVAL_EXTRACTORS
    )
    resume_from: str = _setting(
        "",
        "Start from pretrained weights: an NVlabs network .pkl or a ganforge run (transfer learning; a new run).",
        "optimisation",
    )
    max_minutes: float = _setting(
        0.0,
        "Stop after this many minutes of training in this invocation, with a checkpoint (0: no limit); "
        "--resume continues, with the whole budget again.",
        "runtime",
        range=(0, None),
    )
    constraint: str = _setting(
        "",
        "Differentiable scorers added to G's loss as NAME:WEIGHT (weight x -mean score; e.g. sharpness:0.1); "
        "repeat the option or separate with commas. For gan, dcgan, sngan and wgan-gp.",
        "optimisation",
        multiple=True,
    )
    topk: float = _setting(
        0.0,
        "Top-k training (Sinha et al. 2020): only the k fakes D scores highest update G, k annealed from the batch "
        "down to this fraction of it (the paper's 0.5); 0: off. For gan, dcgan, sngan and wgan-gp.",
        "optimisation",
        range=(0, 1),
    )
    topk_gamma: float = _setting(0.99, "Top-k: k is multiplied by this once per epoch until it reaches --topk (Sinha et al. 2020).")
    on_nan: str = _setting(
        "stop",
        "When a loss turns NaN/Inf or explodes: stop, or reload the last checkpoint with the learning rate halved.",
        "optimisation",
        choices=ON_NAN,
    )
    threads: int = _setting(0, "CPU threads (0: torch's default).", "runtime", range=(0, None))
    family: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "The family's own hyper-parameters (--set KEY=VALUE).", "group": None}
    )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """A config from saved values. Keys and value types are checked (a ConfigError names the first
        problem); ranges are checked by `validate`, so that a run saved by an older version still loads."""
        if not isinstance(d, dict):
            raise ConfigError(f"a config must be a JSON object of settings, not {type(d).__name__}")
        d = {k: v for k, v in d.items() if k != "notes"}  # written by `save` for people, not read back
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names, key=str)
        if unknown:
            raise ConfigError(f"unknown config keys {unknown}; see `ganforge train --help`")
        hints = typing.get_type_hints(cls)
        for key, value in d.items():
            if not _has_type(value, hints[key]):
                raise ConfigError(
                    f"config key '{key}' has the value {_short(value)}; expected {_type_name(hints[key])}"
                )
        if any(not isinstance(k, str) for k in d.get("family", {})):
            raise ConfigError("config key 'family' must map setting names (text) to values")
        return cls(**d)

    def validate(self) -> TrainConfig:
        """Check every value's range; a ConfigError names the setting, the bad value and what is allowed.
        Family settings (`family`) are checked generically (see `check_setting`). Returns self."""
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not _has_type(value, hints[f.name]):
                raise ConfigError(f"{f.name} = {_short(value)} is not valid; expected {_type_name(hints[f.name])}")
            check_setting(f.name, value)
        checks: list[tuple[str, bool, str]] = [
            ("data", bool(self.data.strip()), "a dataset name or path"),
            ("model", bool(self.model.strip()), "a model family such as dcgan"),
            ("resolution", self.resolution is None or 4 <= self.resolution <= 4096, "from 4 to 4096 pixels, or none"),
            ("channels", self.channels in (None, 1, 3), "1 (grayscale) or 3 (RGB), or none"),
            ("steps", self.steps >= 1, "1 or more"),
            ("kimg", self.kimg is None or self.kimg > 0, "more than 0, or none"),
            ("batch", self.batch >= 1, "1 or more"),
            ("batch_gpu", self.batch_gpu >= 0, "0 (off) or more"),
            ("aug", self.aug in AUGMENTATIONS, " | ".join(AUGMENTATIONS)),
            ("aug_p", 0 <= self.aug_p <= 1, "from 0 to 1"),
            ("class_balance", 0 <= self.class_balance <= 1, "from 0 (the data's class frequencies) to 1 (every class equally)"),
            ("aug_target", 0 <= self.aug_target <= 1, "from 0 to 1"),
            ("aug_kimg", self.aug_kimg > 0, "more than 0"),
            ("run", self.run is None or bool(self.run.strip()), "a run name, or none"),
            ("runs_dir", bool(self.runs_dir.strip()), "a folder"),
            ("precision", self.precision in PRECISIONS, " | ".join(PRECISIONS)),
            ("ema_kimg", self.ema_kimg >= 0, "0 (no EMA) or more"),
            ("ema_rampup", self.ema_rampup >= 0, "0 (no ramp-up) or more"),
            ("log_every", self.log_every >= 1, "1 or more"),
            ("sample_every", self.sample_every >= 1, "1 or more"),
            ("ckpt_every", self.ckpt_every >= 1, "1 or more"),
            ("keep_ckpts", self.keep_ckpts >= 0, "0 (keep all) or more"),
            ("grid_size", self.grid_size >= 1, "1 or more"),
            ("eval_every", self.eval_every >= 0, "0 (no evaluation) or more"),
            ("eval_metrics", bool(self.eval_metrics.strip()), "metric names such as fid or fid,kid"),
            ("eval_num", self.eval_num >= 1, "1 or more"),
            ("eval_extractor", self.eval_extractor in EVAL_EXTRACTORS, " | ".join(EVAL_EXTRACTORS)),
            ("threads", self.threads >= 0, "0 (torch's default) or more"),
            ("max_minutes", self.max_minutes >= 0, "0 (no limit) or more"),
            ("on_nan", self.on_nan in ON_NAN, " | ".join(ON_NAN)),
            ("topk", 0 <= self.topk <= 1, "from 0 (off) to 1"),
            ("topk_gamma", 0 < self.topk_gamma <= 1, "more than 0 and at most 1"),
            ("constraint", constraint_problem(self.constraint) is None, constraint_problem(self.constraint) or ""),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ConfigError(f"{name} = {_short(getattr(self, name))} is out of range: use {allowed}")
        if self.run is not None:
            check_run_name(self.run)
        for key, value in self.family.items():
            check_setting(key, value)
        return self

    def save(self, path: Path, notes: dict[str, str] | None = None) -> None:
        """Write the settings as JSON; `notes` (what the run uses that the settings do not say, from
        `Family.notes`) go under "notes", which loading ignores."""
        d = self.to_dict()
        if notes:
            d["notes"] = dict(notes)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(d, indent=2) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        try:
            d = json.loads(Path(path).read_bytes().decode("utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise ConfigError(
                f"{path} is damaged (not valid JSON); restore it from a backup, or copy the 'config' of a "
                "checkpoint's step-NNNNNN.json in the run's checkpoints/ folder"
            ) from None
        try:
            return cls.from_dict(d)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def run_name(self) -> str:
        if self.run:
            return self.run
        data = Path(self.data).stem if ("/" in self.data or "." in self.data) else self.data
        return f"{self.model}-{data}"

    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.run_name()


def parse_constraints(text: str) -> list[tuple[str, float]]:
    """`--constraint` ("sharpness:0.1,iqa:0.05") -> [(scorer, weight)]; the weight follows the last colon, so a
    scorer's own argument may contain one. A ConfigError names a malformed item."""
    out = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        name, colon, weight = item.rpartition(":")
        try:
            value = float(weight) if colon and name.strip() else math.nan
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise ConfigError(f"--constraint {_short(item)}: give SCORER:WEIGHT with a finite weight, e.g. sharpness:0.1")
        out.append((name.strip(), value))
    return out


def constraint_problem(text: str) -> str | None:
    """What is wrong with a `--constraint` value, or None."""
    try:
        parse_constraints(text)
    except ConfigError as exc:
        return str(exc)
    return None


def run_name_problem(name: str) -> str | None:
    """What is wrong with a run name, or None. A run name is one plain folder name inside --runs-dir: no
    path separator, not '.' or '..' nor hidden (the rule of the studio's API, `serve.params.run_dir`), so a
    run never lands outside --runs-dir."""
    if not name or not name.strip():
        return "it is empty"
    if name.strip() != name:
        return "it starts or ends with a space"
    if len(name) > 255:
        return "it is longer than 255 characters"
    if any(c in name for c in "/\\\x00"):
        return "it contains a path separator"
    if name.startswith("."):
        return "it starts with '.'"
    if not name.isprintable():
        return "it contains control characters"
    return None


def check_run_name(name: str) -> None:
    """Raise a ConfigError when `name` is not a plain run name (see `run_name_problem`)."""
    problem = run_name_problem(name)
    if problem:
        raise ConfigError(
            f"--run {_short(name)}: a run name is one folder name inside --runs-dir, and {problem}; "
            "give a plain name such as --run cats-64 (and --runs-dir for another folder)"
        )


_NOT_FINITE = "not a finite number; give a number such as 0.5"


def is_lr_name(name: str) -> bool:
    """Settings that are learning rates (or their schedules): lr, lr_g, lr_d, lr_halflife, map_lr, ..."""
    return name == "lr" or name.startswith("lr_") or name.endswith("_lr")


def check_setting(name: str, value: Any) -> None:
    """Checks that hold for any setting, loop or family: numbers are finite, learning rates not negative."""
    problem = setting_problem(name, value)
    if problem:
        raise ConfigError(f"{name} = {_short(value)}: {problem}")


def setting_problem(name: str, value: Any) -> str | None:
    """What is wrong with a value of any setting (see `check_setting`), or None. Lists and objects are
    checked element by element."""
    if isinstance(value, dict):
        values: list[Any] = list(value.values())
    elif isinstance(value, (list, tuple)):
        values = list(value)
    else:
        if isinstance(value, float) and not math.isfinite(value):
            return _NOT_FINITE
        if is_lr_name(name) and isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            return "learning rates and their schedules must be 0 or more"
        return None
    for v in values:
        problem = setting_problem(name, v)
        if problem:
            return problem
    return None


def _has_type(value: Any, hint: Any) -> bool:
    """Whether a (JSON-loaded) value fits a field's type hint: int for float is fine, bool for int is not."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_has_type(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is not None:
        return isinstance(value, origin)
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in args)
    origin = typing.get_origin(hint) or hint
    return {int: "a whole number", float: "a number", str: "text", bool: "true/false", dict: "an object"}.get(
        origin, getattr(origin, "__name__", str(origin))
    )


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# Fields that may change when a run is resumed (length, logging and evaluation cadence, device).
RESUMABLE_CHANGES = {
    "compile",
    "batch_gpu",
    "steps",
    "max_minutes",
    "on_nan",
    "kimg",
    "log_every",
    "sample_every",
    "ckpt_every",
    "keep_ckpts",
    "eval_every",
    "eval_metrics",
    "eval_num",
    "eval_extractor",
    "device",
    "threads",
    "runs_dir",
    "run",
    "grid_size",
}


def apply_overrides(cfg: TrainConfig, family_cfg: Any, overrides: list[str]) -> None:
    """Apply `key=value` overrides to the loop config or the family config (family fields win).

    Values take the type of the field's current value; any number must be finite and a learning rate
    (lr, lr_*, *_lr) not negative. Ranges of loop settings are checked by `TrainConfig.validate`."""
    fam_fields = {f.name for f in dataclasses.fields(family_cfg)} if dataclasses.is_dataclass(family_cfg) else set()
    loop_fields = {f.name for f in dataclasses.fields(cfg)} - {"family"}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got '{_short(item)[1:-1]}'")
        key, text = (s.strip() for s in item.split("=", 1))
        key = key.replace("-", "_")
        target = family_cfg if key in fam_fields else cfg if key in loop_fields else None
        if target is None:
            raise ConfigError(
                f"unknown setting '{_short(key)[1:-1]}'; family settings: {', '.join(sorted(fam_fields)) or 'none'}"
            )
        try:
            value = parse_value(text, getattr(target, key))
        except (ValueError, ConfigError) as exc:
            raise ConfigError(f"bad value for {key}: {_short(text)} ({exc})") from None
        problem = setting_problem(key, value)
        if problem:
            raise ConfigError(f"bad value for {key}: {_short(text)} ({problem})")
        setattr(target, key, value)


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
    """Parse a `--set` value to the type of the field's current value; a ConfigError says what was expected.
    Floats must be finite."""
    if isinstance(current, bool):
        return _parse_bool(text)
    if isinstance(current, int):
        return _parse_int(text)
    if isinstance(current, float):
        return _parse_float(text)
    if isinstance(current, (list, tuple)):
        parts = [p for p in text.strip().strip("[]()").split(",") if p.strip()]
        kind = type(current[0]) if current else str
        conv: Callable[[str], Any] = {bool: _parse_bool, int: _parse_int, float: _parse_float}.get(kind, str)
        return type(current)(conv(p.strip()) for p in parts)
    if current is None:  # an optional setting that is unset: a number if it reads as one, else text
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return None if text.lower() in ("none", "null") else text
        if not math.isfinite(number):
            raise ConfigError(_NOT_FINITE)
        return number
    return text


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"expected true/false, got {_short(text)}")


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"expected a whole number, got {_short(text)}") from None


def _parse_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"expected a number, got {_short(text)}") from None
    if not math.isfinite(value):
        raise ConfigError(_NOT_FINITE)
    return value
