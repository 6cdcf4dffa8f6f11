"""`ganforge train` and `ganforge info`.

The options of `train` that are loop settings are generated from TrainConfig's fields (their help, default,
type, range and --help section live with the field, in ganforge.config); the others are written here."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from .. import vocab
from ..config import TrainConfig, apply_overrides, family_config_from_dict
from ..errors import ConfigError
from ..registry import family_names, get_family
from .options import GroupedOption, SectionedCommand, config_options, option_fields

# The TrainConfig fields that are options of `train` (the others are set with --set).
_LOOP_OPTIONS = [f.name for f in option_fields(TrainConfig)]


class _ModelChoice(click.Choice):
    """The registered families, read when the command runs (so families registered later are choices)."""

    def __init__(self) -> None:
        super().__init__(family_names())

    @property  # type: ignore[override]
    def choices(self) -> list[str]:
        return family_names()

    @choices.setter
    def choices(self, value) -> None:  # noqa: ANN001 (click.Choice.__init__ assigns it)
        pass


def _families_epilog() -> str:
    from ..registry import DESCRIPTIONS

    lines = ["\b", "Models (--model):"] + [f"  {n:<9} {DESCRIPTIONS.get(n, '')}" for n in family_names()]
    return "\n".join(lines)


@click.command(cls=SectionedCommand, context_settings={"show_default": True}, epilog=_families_epilog())
@config_options(TrainConfig, kinds={"family": _ModelChoice})
@click.option(
    "--loss",
    cls=GroupedOption,
    group="optimisation",
    type=click.Choice(vocab.LOSSES),
    default=None,
    help="Adversarial loss (families that offer a choice).",
)
@click.option(
    "--resume", cls=GroupedOption, group="runtime", is_flag=True, help="Continue the run from its latest checkpoint."
)
@click.option("--quiet", cls=GroupedOption, group="runtime", is_flag=True, help="No progress bar.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override any setting, e.g. --set ngf=32 --set lr=1e-4.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check the settings as the run does before it reads the data (ranges, the model's resolution, ...), "
    "print the resolved configuration and exit.",
)
@click.pass_context
def train(
    ctx: click.Context, loss: str | None, resume: bool, overrides: tuple[str, ...], dry_run: bool, quiet: bool, **opts
) -> None:
    """Train a model. With no options: DCGAN on the built-in emoji set (a few minutes on a laptop CPU)."""
    from ..training.loop import check_before_data
    from ..training.loop import train as run_training

    explicit = {k for k in _LOOP_OPTIONS if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE}
    cfg = TrainConfig(**{k: opts[k] for k in _LOOP_OPTIONS})
    family = get_family(cfg.model)
    for key, val in family.loop_defaults.items():  # a family's own defaults (e.g. batch for point data)
        if key not in explicit:
            setattr(cfg, key, val)
    fam_cfg = family.default_config()
    if loss is not None:
        if "loss" not in {f.name for f in dataclasses.fields(fam_cfg)}:  # the family's declared settings
            raise ConfigError(f"model '{cfg.model}' has a fixed loss; drop --loss")
        fam_cfg.loss = loss
    apply_overrides(cfg, fam_cfg, list(overrides))
    fam_explicit = {o.split("=", 1)[0].strip().replace("-", "_") for o in overrides} | ({"loss"} if loss else set())
    explicit |= {o.split("=", 1)[0].strip().replace("-", "_") for o in overrides} & set(_LOOP_OPTIONS)
    cfg.family = dataclasses.asdict(fam_cfg)
    if resume:
        # Only settings given on this command line are compared with the saved run.
        cfg.family = {k: v for k, v in cfg.family.items() if k in fam_explicit}
        if fam_explicit:
            explicit.add("family")
    cfg.validate()  # ranges, finite numbers, non-negative learning rates: before printing or training anything
    family_config_from_dict(family, cfg.family)  # validates family keys early
    if not resume:  # what the run checks before it reads the data (a resume checks the run's merged config)
        check_before_data(cfg, int(os.environ.get("WORLD_SIZE", "1") or 1))
    if dry_run:
        click.echo(json.dumps(cfg.to_dict(), indent=2))
        return
    result = run_training(cfg, resume=resume, explicit=explicit, progress=not quiet, echo=click.echo)
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun, rank 0 reports
    if result.interrupted:
        click.echo(
            f"stopped at step {result.step}; checkpoint saved. Continue with: "
            f"ganforge train --run {result.run_dir.name} --runs-dir {result.run_dir.parent} --resume"
        )
        if result.signal:  # Ctrl-C (130) or SIGTERM (143): a script tells an interrupted run from a finished one
            ctx.exit(128 + int(result.signal))
    else:
        click.echo(f"done: {result.step} steps; samples in {result.run_dir / 'samples'}")
        click.echo(_next_command(result.config or cfg, result.run_dir))


def _next_command(cfg: TrainConfig, run_dir: Path) -> str:
    """What to do with a trained run: the command for its kind of model."""
    family = get_family(cfg.model)
    if family.capabilities.inputs != "image":
        return f"generate with: ganforge generate {run_dir} --seeds 0-63 --grid"
    if "superres" in family.data_kinds:
        return f"enhance with: ganforge enhance {run_dir} IMAGE_OR_FOLDER... --out DIR"
    if cfg.family.get("preset") == "colorize":
        return f"colorize with: ganforge colorize {run_dir} IMAGE_OR_FOLDER... --out DIR"
    return f"translate with: ganforge translate {run_dir} IMAGE_OR_FOLDER... --out DIR"


@click.command()
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(run: str, as_json: bool) -> None:
    """Describe a trained RUN: family, data, steps, last losses and checkpoints."""
    from .. import checkpoint as ckpt
    from ..sample.model import find_run

    run_dir = find_run(run)
    cfg = TrainConfig.load(run_dir / "config.json")
    ckpt_dir = run_dir / "checkpoints"
    steps = ckpt.list_checkpoints(ckpt_dir)
    last = _last_losses(run_dir / "metrics.jsonl")
    best = None
    if (ckpt_dir / "best.json").exists():
        best = _read_json_object(
            ckpt_dir / "best.json",
            "delete it: it only points at the best checkpoint, and the next evaluation during training writes it again",
        )
    spec: dict = {}
    if steps:
        meta_path = ckpt_dir / f"{ckpt.ckpt_name(steps[-1])}.json"
        fix = (
            f"generate/eval can use an earlier checkpoint with --checkpoint {steps[-2]}"
            if len(steps) > 1
            else "it is the run's only checkpoint, so the run must be trained again"
        )
        meta = _read_json_object(meta_path, fix)
        spec = meta.get("spec") if isinstance(meta.get("spec"), dict) else {}
    summary = {
        "run": str(run_dir),
        "model": cfg.model,
        "data": cfg.data,
        "resolution": spec.get("resolution"),
        "channels": spec.get("channels"),
        "classes": spec.get("num_classes", 0),
        "steps_trained": steps[-1] if steps else 0,
        "steps_planned": cfg.steps if cfg.kimg is None else f"{cfg.kimg} kimg",
        "batch": cfg.batch,
        "checkpoints": steps,
        "best": best,
        "last": last,
        "family": _resolved_family(cfg, spec) if spec else cfg.family,
    }
    if as_json:
        click.echo(json.dumps(_finite(summary), indent=2))
        return
    for k, v in summary.items():
        if k == "last" and v:
            v = "  ".join(f"{a}={b}" for a, b in v.items())
        elif k == "family":
            v = " ".join(f"{a}={b}" for a, b in v.items())
        click.echo(f"{k:>14}: {v}")


def _resolved_family(cfg: TrainConfig, spec: dict) -> dict:
    """The family settings the model was built with: the saved config keeps placeholders ("0: 64 from 64 px,
    32 below", "-1: 1.0 with --cond") that the family resolves when it builds, so they are resolved here the
    way `families.build.build_model` does (the family's `resolve_config`, then its build on the meta device,
    whose networks carry the config they were built with), and what is left by the rules the families'
    settings document. A setting that cannot be resolved is shown as saved."""
    import torch

    from ..spec import DataSpec

    family = get_family(cfg.model)
    try:
        data = DataSpec.from_dict(spec)
        fam = family.resolve_config(family_config_from_dict(family, cfg.family), data, cfg.batch)
    except Exception:  # noqa: BLE001 (a run from another version: show what was saved)
        return cfg.family
    try:
        with torch.device("meta"):  # shapes only: no memory, no initialisation cost
            built = family.build(dataclasses.replace(fam), data).cfg
        if dataclasses.is_dataclass(built) and type(built) is type(fam):
            fam = built
    except Exception:  # noqa: BLE001, S110 (a family that cannot build on the meta device: resolve_config's values)
        pass
    out = {**cfg.family, **dataclasses.asdict(fam)}
    defaults = {f.name: f.default for f in dataclasses.fields(fam)}

    def unset(key: str) -> bool:
        return key in out and key in defaults and out[key] == defaults[key]

    if defaults.get("ngf") == 0 and defaults.get("ndf") == 0 and data.kind != "points":  # dcgan, sngan, wgan-gp:
        auto, raw = 64 if data.resolution >= 64 else 32, out["ngf"]  # "0: 64 from 64 px, 32 below"; ndf "0: as ngf"
        out["ngf"], out["ndf"] = raw or auto, out["ndf"] or raw or auto
    for key in ("lr_g", "lr_d"):  # "0: use lr"
        if unset(key) and out[key] == 0 and out.get("lr"):
            out[key] = out["lr"]
    if unset("embed_dim") and out["embed_dim"] == 0 and isinstance(out.get("nz"), int) and out["nz"] > 0:
        out["embed_dim"] = max(out["nz"] // 2, 1) if data.num_classes else 0  # "0: nz // 2" (conditional only)
    if "mode_seeking" in out and isinstance(out["mode_seeking"], (int, float)) and out["mode_seeking"] < 0:
        out["mode_seeking"] = 1.0 if data.num_classes else 0.0  # "-1: 1.0 with --cond, else 0"
    if unset("depth") and out["depth"] == 0 and data.resolution > 1:  # pix2pix: "0: log2(resolution)"
        out["depth"] = int(math.log2(data.resolution))
    if unset("dropout_layers") and out["dropout_layers"] < 0 and isinstance(out.get("depth"), int):
        out["dropout_layers"] = max(out["depth"] - 5, 0)  # "-1: depth - 5"
    if unset("schedule_steps") and out["schedule_steps"] == 0:  # "0: the run's"
        out["schedule_steps"] = cfg.steps if cfg.kimg is None else max(1, math.ceil(cfg.kimg * 1000 / cfg.batch))
    return out


def _last_losses(path: Path) -> dict:
    """The last line of metrics.jsonl with losses. Damaged lines (a crash mid-write, a disk error, binary
    garbage) are skipped: the log is a record, and one bad line must not hide the others."""
    from .. import checkpoint as ckpt

    try:
        recs = ckpt.read_log(path)
    except OSError as exc:
        raise ConfigError(f"cannot read {path} ({exc.strerror or exc})") from None
    return next((r for r in reversed(recs) if "loss_D" in r or "loss_G" in r or "loss" in r), {})


def _read_json_object(path: Path, fix: str) -> dict:
    """A small JSON file of the run folder, or a ConfigError naming it and the fix."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path} ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is damaged (not a JSON object); {fix}")
    return data


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: such numbers (a diverged loss) are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
