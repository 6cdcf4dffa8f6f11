"""`ganforge train`, `ganforge generate` and `ganforge info`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click
from click.core import ParameterSource

from .cli import main, parse_seeds
from .config import TrainConfig, apply_overrides, family_config_from_dict
from .errors import ConfigError
from .registry import family_names, get_family

_D = TrainConfig()

# CLI option name -> TrainConfig field, for options that map one to one.
_LOOP_OPTIONS = [
    "data", "model", "resolution", "channels", "steps", "kimg", "batch", "cond", "xflip", "seed", "run", "runs_dir",
    "device", "precision", "ema_kimg", "log_every", "sample_every", "ckpt_every", "eval_every", "eval_metrics",
    "eval_num", "eval_extractor", "threads",
]


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
    from .registry import DESCRIPTIONS

    lines = ["\b", "Models (--model):"] + [f"  {n:<9} {DESCRIPTIONS.get(n, '')}" for n in family_names()]
    return "\n".join(lines)


@main.command(context_settings={"show_default": True}, epilog=_families_epilog())
@click.option("--data", default=_D.data, help="Built-in dataset name, prepared archive, or folder/zip of images.")
@click.option("--model", default=_D.model, type=_ModelChoice(), help="Model family.")
@click.option("--resolution", type=click.IntRange(4, 4096), default=None, help="Training resolution [default: the data's].")
@click.option("--channels", type=click.Choice(["1", "3"]), default=None, help="1 = grayscale, 3 = RGB [default: the data's].")
@click.option("--steps", type=click.IntRange(1), default=_D.steps, help="Training steps.")
@click.option("--kimg", type=click.FloatRange(0.001), default=None, help="Train for this many thousand real images instead of --steps.")
@click.option("--batch", type=click.IntRange(1), default=_D.batch, help="Batch size.")
@click.option("--loss", type=click.Choice(["nonsaturating", "hinge", "lsgan", "wgan-gp"]), default=None, help="Adversarial loss (families that offer a choice).")
@click.option("--cond/--no-cond", default=_D.cond, help="Class-conditional training on the dataset's labels.")
@click.option("--xflip/--no-xflip", default=_D.xflip, help="Mirror real images at random.")
@click.option("--seed", type=int, default=_D.seed, help="Random seed.")
@click.option("--run", default=None, help="Run name [default: MODEL-DATA].")
@click.option("--runs-dir", default=_D.runs_dir, type=click.Path(file_okay=False), help="Folder that holds runs.")
@click.option("--resume", is_flag=True, help="Continue the run from its latest checkpoint.")
@click.option("--device", default=_D.device, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default=_D.precision, help="Mixed precision.")
@click.option("--ema-kimg", type=click.FloatRange(0), default=_D.ema_kimg, help="EMA half-life of G in kimg (0: no EMA).")
@click.option("--log-every", type=click.IntRange(1), default=_D.log_every, help="Steps between metrics.jsonl lines.")
@click.option("--sample-every", type=click.IntRange(1), default=_D.sample_every, help="Steps between sample grids.")
@click.option("--ckpt-every", type=click.IntRange(1), default=_D.ckpt_every, help="Steps between checkpoints.")
@click.option("--eval-every", type=click.IntRange(0), default=_D.eval_every, help="Steps between evaluations (0: none).")
@click.option("--eval-metrics", default=_D.eval_metrics, help="Metrics for periodic evaluation; the first picks the best checkpoint.")
@click.option("--eval-num", type=click.IntRange(1), default=_D.eval_num, help="Generated images per evaluation.")
@click.option("--eval-extractor", type=click.Choice(["inception", "classifier", "dinov2"]), default=_D.eval_extractor, help="Features for periodic evaluation.")
@click.option("--threads", type=click.IntRange(0), default=_D.threads, help="CPU threads (0: torch's default).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override any setting, e.g. --set ngf=32 --set lr=1e-4.")
@click.option("--dry-run", is_flag=True, help="Print the resolved configuration and exit.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def train(ctx: click.Context, loss: str | None, resume: bool, overrides: tuple[str, ...], dry_run: bool, quiet: bool, **opts) -> None:
    """Train a model. With no options: DCGAN on the built-in emoji set (a few minutes on a laptop CPU)."""
    from .training.loop import train as run_training

    explicit = {k for k in _LOOP_OPTIONS if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE}
    values = {k: opts[k] for k in _LOOP_OPTIONS}
    if values["channels"] is not None:
        values["channels"] = int(values["channels"])
    cfg = TrainConfig(**values)
    family = get_family(cfg.model)
    for key, val in family.loop_defaults.items():  # a family's own defaults (e.g. batch for point data)
        if key not in explicit:
            setattr(cfg, key, val)
    fam_cfg = family.default_config()
    if loss is not None:
        if not hasattr(fam_cfg, "loss"):
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
    if dry_run:
        click.echo(json.dumps(cfg.to_dict(), indent=2))
        return
    family_config_from_dict(family, cfg.family)  # validates family keys early
    result = run_training(cfg, resume=resume, explicit=explicit, progress=not quiet, echo=click.echo)
    if result.interrupted:
        click.echo(
            f"stopped at step {result.step}; checkpoint saved. Continue with: "
            f"ganforge train --run {result.run_dir.name} --runs-dir {result.run_dir.parent} --resume"
        )
    else:
        click.echo(f"done: {result.step} steps; samples in {result.run_dir / 'samples'}")
        click.echo(f"generate with: ganforge generate {result.run_dir} --seeds 0-63 --grid")


@main.command(context_settings={"show_default": True})
@click.argument("run")
@click.option("--seeds", default="0-63", help="Seeds: ranges and lists, e.g. 0-63 or 3,17,42.")
@click.option("--grid", is_flag=True, help="Write one grid image instead of a PNG per seed.")
@click.option("--out", type=click.Path(), default=None, help="Output folder (or .png file with --grid) [default: RUN/generated].")
@click.option("--checkpoint", default="latest", help="latest, best or a step number.")
@click.option("--class", "label", default=None, help="Class index or name for conditional models [default: seed % classes].")
@click.option("--trunc", type=float, default=1.0, help="Truncation psi (models with a W space): 1 = none, 0 = the average image.")
@click.option("--noise-mode", type=click.Choice(["const", "random", "none"]), default="const", help="Per-pixel noise (models that have it).")
@click.option("--no-ema", is_flag=True, help="Use the raw generator instead of its EMA copy.")
@click.option("--device", default="cpu", help="auto, cpu, cuda or mps.")
def generate(
    run: str, seeds: str, grid: bool, out: str | None, checkpoint: str, label: str | None, trunc: float, noise_mode: str,
    no_ema: bool, device: str,
) -> None:
    """Generate images from a trained RUN (a run folder, or a name under ./runs). Same seed, same image."""
    from .sample.grid import make_grid, render_points, save_png, to_pil
    from .sample.model import Model

    seed_list = parse_seeds(seeds)
    model = Model.load(run, checkpoint=checkpoint, device=device, ema=not no_ema)
    x = model.generate(seed_list, label=label, trunc=trunc, noise_mode=noise_mode, output="tensor")
    assert not isinstance(x, list)
    target = Path(out) if out else model.run_dir / "generated"
    if model.spec.kind == "points":
        path = target if target.suffix == ".png" else target / f"points-{seeds}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_png(render_points(x), path)
        click.echo(f"wrote {path}")
        return
    if grid:
        path = target if target.suffix.lower() == ".png" else target / f"grid-seeds-{seeds.replace(',', '_')}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_png(make_grid(x), path)
        click.echo(f"wrote {path} ({len(seed_list)} images, step {model.step})")
        return
    target.mkdir(parents=True, exist_ok=True)
    for s, img in zip(seed_list, to_pil(x)):
        save_png(img, target / f"seed{s:04d}.png")
    click.echo(f"wrote {len(seed_list)} images to {target} (step {model.step})")


@main.command(context_settings={"show_default": True})
@click.argument("run")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Output folder [default: RUN/translated].")
@click.option("--direction", type=click.Choice(["AtoB", "BtoA"]), default="AtoB", help="Two-way models (CycleGAN): which way.")
@click.option("--checkpoint", default="latest", help="latest, best or a step number.")
@click.option("--no-ema", is_flag=True, help="Use the raw generator instead of its EMA copy.")
@click.option("--device", default="cpu", help="auto, cpu, cuda or mps.")
def translate(run: str, inputs: tuple[str, ...], out: str | None, direction: str, checkpoint: str, no_ema: bool, device: str) -> None:
    """Translate images (files or folders) with an image-to-image RUN: one PNG per input, same name."""
    from .data.archive import IMAGE_EXTENSIONS
    from .sample.grid import save_png
    from .sample.model import Model

    model = Model.load(run, checkpoint=checkpoint, device=device, ema=not no_ema)
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))
        else:
            files.append(item)
    if not files:
        raise ConfigError(f"no images in {', '.join(inputs)}; give image files or folders of PNG/JPEG files")
    target = Path(out) if out else model.run_dir / "translated"
    target.mkdir(parents=True, exist_ok=True)
    for f in files:
        (img,) = model.translate(str(f), direction=direction, output="pil")
        save_png(img, target / f"{f.stem}.png")
    click.echo(f"wrote {len(files)} images to {target} (step {model.step})")


@main.command()
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(run: str, as_json: bool) -> None:
    """Describe a trained RUN: family, data, steps, last losses and checkpoints."""
    from . import checkpoint as ckpt
    from .sample.model import find_run

    run_dir = find_run(run)
    cfg = TrainConfig.load(run_dir / "config.json")
    steps = ckpt.list_checkpoints(run_dir / "checkpoints")
    last: dict = {}
    mfile = run_dir / "metrics.jsonl"
    if mfile.exists():
        for line in mfile.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "loss_D" in rec or "loss_G" in rec or "loss" in rec:
                last = rec
    best = None
    if (run_dir / "checkpoints" / "best.json").exists():
        best = json.loads((run_dir / "checkpoints" / "best.json").read_text())
    spec = {}
    if steps:
        spec = ckpt.read_meta(run_dir / "checkpoints" / ckpt.ckpt_name(steps[-1])).get("spec", {})
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
        "family": cfg.family,
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    for k, v in summary.items():
        if k == "last" and v:
            v = "  ".join(f"{a}={b}" for a, b in v.items())
        elif k == "family":
            v = " ".join(f"{a}={b}" for a, b in v.items())
        click.echo(f"{k:>14}: {v}")
