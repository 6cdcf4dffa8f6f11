"""`ganforge train`, `ganforge generate` and `ganforge info`."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from . import vocab
from .cli import main, parse_seeds
from .config import TrainConfig, apply_overrides, family_config_from_dict
from .errors import ConfigError
from .registry import family_names, get_family

if TYPE_CHECKING:
    import torch

# A --grid --out ending in one of these is written as that image file, in PIL's format for it.
GRID_FORMATS = {
    ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
}
IMAGE_SUFFIXES = tuple(GRID_FORMATS)
# Other suffixes that name image files (PIL reads them, a grid is not written as them): refused as --out,
# rather than made into a folder called g.gif/.
OTHER_IMAGE_SUFFIXES = (
    ".gif", ".apng", ".ico", ".jp2", ".j2k", ".tga", ".ppm", ".pgm", ".pbm", ".pnm", ".pcx", ".avif", ".heic", ".qoi",
)
PSI_RANGE = (-2.0, 2.0)  # --trunc: as the studio's API (serve.params.PSI_RANGE); beyond +-2 images are only noise

_D = TrainConfig()

# CLI option name -> TrainConfig field, for options that map one to one.
_LOOP_OPTIONS = [
    "data",
    "model",
    "resolution",
    "channels",
    "steps",
    "kimg",
    "batch",
    "batch_gpu",
    "cond",
    "class_balance",
    "xflip",
    "aug",
    "aug_p",
    "aug_target",
    "seed",
    "run",
    "runs_dir",
    "device",
    "precision",
    "compile",
    "ema_kimg",
    "log_every",
    "sample_every",
    "ckpt_every",
    "eval_every",
    "eval_metrics",
    "eval_num",
    "eval_extractor",
    "max_minutes",
    "on_nan",
    "resume_from",
    "threads",
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
@click.option(
    "--resolution", type=click.IntRange(4, 4096), default=None, help="Training resolution [default: the data's]."
)
@click.option(
    "--channels", type=click.Choice(["1", "3"]), default=None, help="1 = grayscale, 3 = RGB [default: the data's]."
)
@click.option("--steps", type=click.IntRange(1), default=_D.steps, help="Training steps.")
@click.option(
    "--kimg",
    type=click.FloatRange(0.001),
    default=None,
    help="Train for this many thousand real images instead of --steps.",
)
@click.option("--batch", type=click.IntRange(1), default=_D.batch, help="Batch size (global: under torchrun, split over the processes).")
@click.option(
    "--batch-gpu",
    type=click.IntRange(0),
    default=_D.batch_gpu,
    help="Images per forward/backward pass on each process; smaller than the batch accumulates gradients (0: the whole batch).",
)
@click.option(
    "--loss",
    type=click.Choice(vocab.LOSSES),
    default=None,
    help="Adversarial loss (families that offer a choice).",
)
@click.option("--cond/--no-cond", default=_D.cond, help="Class-conditional training on the dataset's labels.")
@click.option(
    "--class-balance",
    type=float,
    default=_D.class_balance,
    help="Draw rare classes of a labelled set more often: class c in proportion to count^(1-this); 0 as in the data, 0.5 by the square root of its size, 1 every class equally.",
)
@click.option("--xflip/--no-xflip", default=_D.xflip, help="Mirror real images at random.")
@click.option(
    "--aug",
    type=click.Choice(vocab.AUGMENTATIONS),
    default=_D.aug,
    help="Augment every image D sees (adversarial models): ada adapts p to D's overfitting; fixed uses --aug-p.",
)
@click.option(
    "--aug-p",
    type=click.FloatRange(0, 1),
    default=_D.aug_p,
    help="Augmentation probability (ada: its start; fixed: its value).",
)
@click.option(
    "--aug-target", type=click.FloatRange(0, 1), default=_D.aug_target, help="ADA's target for r_t = E[sign(D(real))]."
)
@click.option("--seed", type=int, default=_D.seed, help="Random seed.")
@click.option("--run", "--name", "run", default=None, help="Run name, one folder name inside --runs-dir [default: MODEL-DATA]; --name is the same option (torchrun mistakes --run for its --run-path).")
@click.option("--runs-dir", default=_D.runs_dir, type=click.Path(file_okay=False), help="Folder that holds runs.")
@click.option("--resume", is_flag=True, help="Continue the run from its latest checkpoint.")
@click.option("--device", default=_D.device, help="auto, cpu, cuda, cuda:N or mps.")
@click.option(
    "--precision", type=click.Choice(vocab.PRECISIONS), default=_D.precision, help="Mixed precision."
)
@click.option(
    "--compile/--no-compile",
    default=_D.compile,
    help="torch.compile the training networks: faster steps after a slow first one (measure with benchmarks/train_speed.py).",
)
@click.option(
    "--ema-kimg", type=click.FloatRange(0), default=_D.ema_kimg, help="EMA half-life of G in kimg (0: no EMA)."
)
@click.option("--log-every", type=click.IntRange(1), default=_D.log_every, help="Steps between metrics.jsonl lines.")
@click.option("--sample-every", type=click.IntRange(1), default=_D.sample_every, help="Steps between sample grids.")
@click.option("--ckpt-every", type=click.IntRange(1), default=_D.ckpt_every, help="Steps between checkpoints.")
@click.option(
    "--eval-every", type=click.IntRange(0), default=_D.eval_every, help="Steps between evaluations (0: none)."
)
@click.option(
    "--eval-metrics",
    default=_D.eval_metrics,
    help="Metrics for periodic evaluation; the first picks the best checkpoint.",
)
@click.option("--eval-num", type=click.IntRange(1), default=_D.eval_num, help="Generated images per evaluation.")
@click.option(
    "--eval-extractor",
    type=click.Choice(vocab.EXTRACTORS),
    default=_D.eval_extractor,
    help="Features for periodic evaluation.",
)
@click.option("--threads", type=click.IntRange(0), default=_D.threads, help="CPU threads (0: torch's default).")
@click.option(
    "--resume-from",
    default=_D.resume_from,
    help="Start from pretrained weights: an NVlabs network .pkl or a ganforge run (transfer learning; a new run).",
)
@click.option(
    "--max-minutes",
    type=click.FloatRange(0),
    default=_D.max_minutes,
    help="Stop after this many minutes of training in this invocation, with a checkpoint (0: no limit); "
    "--resume continues, with the whole budget again.",
)
@click.option(
    "--on-nan",
    type=click.Choice(["stop", "rollback"]),
    default=_D.on_nan,
    help="When a loss turns NaN/Inf or explodes: stop, or reload the last checkpoint with the learning rate halved.",
)
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
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def train(
    ctx: click.Context, loss: str | None, resume: bool, overrides: tuple[str, ...], dry_run: bool, quiet: bool, **opts
) -> None:
    """Train a model. With no options: DCGAN on the built-in emoji set (a few minutes on a laptop CPU)."""
    from .training.loop import check_before_data
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


GENERATE_BATCH = 64  # images generated, and written, before the next ones are made
MAX_GRID_IMAGES = 4096  # a grid of more is not viewable: write one PNG per seed instead
MAX_GRID_PIXELS = 2 * 89_478_485  # PIL refuses to open larger images (2 x Image.MAX_IMAGE_PIXELS)


@main.command(context_settings={"show_default": True})
@click.argument("run")
@click.option("--seeds", default="0-63", help="Seeds: ranges and lists, e.g. 0-63 or 3,17,42.")
@click.option(
    "--grid", is_flag=True, help=f"Write one grid image instead of a PNG per seed (at most {MAX_GRID_IMAGES} images)."
)
@click.option(
    "--out",
    type=click.Path(),
    default=None,
    help="Output folder, or with --grid the image file (.png, .jpg, .webp, .bmp, .tif) [default: RUN/generated].",
)
@click.option("--checkpoint", default="latest", help="latest, best or a step number.")
@click.option(
    "--class", "label", default=None, help="Class index or name for conditional models [default: seed % classes]."
)
@click.option(
    "--trunc",
    type=float,
    default=1.0,
    help=f"Truncation psi (models with a W space), from {PSI_RANGE[0]:g} to {PSI_RANGE[1]:g}: 1 = none, 0 = the average image.",
)
@click.option(
    "--noise-mode",
    type=click.Choice(vocab.NOISE_MODES),
    default="const",
    help="Per-pixel noise (models that have it).",
)
@click.option("--no-ema", is_flag=True, help="Use the raw generator instead of its EMA copy.")
@click.option("--device", default="cpu", help="auto, cpu, cuda or mps.")
@click.option(
    "--scale",
    type=click.IntRange(1, 32),
    default=1,
    help="Enlarge by this factor (nearest neighbour: sprites stay sharp).",
)
@click.option("--annotate", is_flag=True, help="With --grid: write each image's seed (and class) under it.")
def generate(
    run: str,
    seeds: str,
    grid: bool,
    out: str | None,
    checkpoint: str,
    label: str | None,
    trunc: float,
    noise_mode: str,
    no_ema: bool,
    device: str,
    scale: int = 1,
    annotate: bool = False,
) -> None:
    """Generate images from a trained RUN (a run folder, or a name under ./runs). Same seed, same image.

    Images are generated and written in batches (a progress bar shows on a terminal), so any number of
    seeds fits in memory and the first files appear at once."""
    import torch

    from .sample.annotate import LabelledGridCanvas, caption, labelled_grid_size, scaled_grid_size, upscale
    from .sample.grid import GridCanvas, render_points, save_image, save_png, to_pil
    from .sample.model import Model

    seed_list = parse_seeds(seeds)
    if not (math.isfinite(trunc) and PSI_RANGE[0] <= trunc <= PSI_RANGE[1]):
        raise ConfigError(
            f"--trunc {trunc:g} is out of range: truncation psi goes from {PSI_RANGE[0]:g} to {PSI_RANGE[1]:g} "
            "(1 = none, 0 = the average image; beyond that images are only noise)"
        )
    if annotate and not grid:
        raise ConfigError("--annotate labels the cells of a grid: add --grid")
    if grid and len(seed_list) > MAX_GRID_IMAGES:
        raise ConfigError(
            f"--grid with {len(seed_list):,} seeds: a grid of more than {MAX_GRID_IMAGES} images is not viewable; "
            "use fewer seeds, or drop --grid to write one PNG per seed"
        )
    if out is not None:  # a bad --out is refused before the model loads
        if grid:
            _grid_file(Path(out), "grid.png")
        else:
            _check_folder_out(Path(out))
    model = Model.load(run, checkpoint=checkpoint, device=device, ema=not no_ema)
    model.label_index(label)  # an unknown class is an error before anything is generated
    target = Path(out) if out else model.run_dir / "generated"
    tag = _output_tag(seeds, seed_list, label, trunc, noise_mode, no_ema) + (f"-x{scale}" if scale > 1 else "")
    batches = _generate_batches(model, seed_list, label=label, trunc=trunc, noise_mode=noise_mode)
    if model.spec.kind == "points":
        path = _grid_file(target, f"points-{tag}.png")
        x = torch.cat([xb for _, xb in batches])
        _write(_saver(save_image, path), upscale(render_points(x), scale), path)
        click.echo(f"wrote {path}")
        return
    if grid:
        path = _grid_file(target, f"grid-{tag}.png")
        res, ch = model.spec.resolution, model.spec.channels
        size = labelled_grid_size if annotate else scaled_grid_size
        width, height = size(len(seed_list), res, res, scale=scale)
        if width * height > MAX_GRID_PIXELS:
            raise ConfigError(
                f"a grid of {len(seed_list)} images at {res} px would be {width}x{height} pixels, too large to view; "
                "use fewer seeds, or drop --grid to write one PNG per seed"
            )
        if annotate:
            names = model.class_names
            fixed = model.label_index(label)
            labelled = LabelledGridCanvas(len(seed_list), res, res, ch, scale=scale)
            for chunk, x in batches:
                classes = [None if not names else names[fixed if fixed is not None else s % len(names)] for s in chunk]
                labelled.add(x, [caption(s, c) for s, c in zip(chunk, classes)])
            _write(_saver(save_image, path), labelled.image(), path)
        else:
            canvas = GridCanvas(len(seed_list), res, res, ch)
            for _, x in batches:
                canvas.add(x)
            _write(_saver(save_image, path), upscale(canvas.image(), scale), path)
        click.echo(f"wrote {path} ({len(seed_list)} images, step {model.step})")
        return
    made = False
    for chunk, x in batches:
        if not made:  # after the first batch: a bad --class/--trunc leaves no empty folder behind
            _mkdir(target)
            made = True
        for s, img in zip(chunk, to_pil(x)):
            _write(save_png, upscale(img, scale), target / f"seed{s:04d}.png")
    click.echo(f"wrote {len(seed_list)} images to {target} (step {model.step})")


def _generate_batches(
    model: Any, seeds: list[int], *, label: str | None, trunc: float, noise_mode: str, batch: int = GENERATE_BATCH
) -> Iterator[tuple[list[int], torch.Tensor]]:
    """(seeds, images) a batch at a time, with a progress bar on stderr when it is a terminal."""
    import torch
    from tqdm import tqdm

    show = len(seeds) > batch and _is_terminal(sys.stderr)
    with tqdm(total=len(seeds), unit="img", file=sys.stderr, disable=not show, dynamic_ncols=True, leave=False) as bar:
        for i in range(0, len(seeds), batch):
            chunk = seeds[i : i + batch]
            x = model.generate(chunk, label=label, trunc=trunc, noise_mode=noise_mode, output="tensor", batch=batch)
            assert isinstance(x, torch.Tensor)
            yield chunk, x
            bar.update(len(chunk))


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


def _check_folder_out(target: Path) -> None:
    """--out without --grid is the folder for one PNG per seed."""
    if target.is_dir():
        return
    if target.exists():
        raise ConfigError(f"--out {target} is a file; give a folder for one PNG per seed, or add --grid")
    if target.suffix.lower() in IMAGE_SUFFIXES + OTHER_IMAGE_SUFFIXES:
        raise ConfigError(f"--out {target} names a file; give a folder, or add --grid")


_GRID_SUFFIXES = ".png, .jpg, .webp, .bmp or .tif"


def _grid_file(target: Path, default_name: str) -> Path:
    """The image file a grid goes to: --out itself when it names an image file (in that file's format), else
    a file in that folder. An image suffix a grid is not written as is refused, not made a folder."""
    if target.is_dir():
        return target / default_name
    suffix = target.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return target
    if suffix in OTHER_IMAGE_SUFFIXES:
        raise ConfigError(f"--out {target}: a grid is not written as {suffix}; give a {_GRID_SUFFIXES} file, or a folder")
    if target.exists():
        raise ConfigError(f"--out {target} is a file that is not an image; give a {_GRID_SUFFIXES} file or a folder")
    return target / default_name


def _saver(save: Callable[..., None], path: Path) -> Callable[..., None]:
    """`save` writing `path` in the format its suffix names (PNG for a file named by ganforge)."""
    fmt = GRID_FORMATS.get(path.suffix.lower(), "PNG")
    return lambda img, p: save(img, p, format=fmt)


def _output_tag(text: str, seeds: list[int], label: str | None, trunc: float, noise_mode: str, no_ema: bool) -> str:
    """What a default file name says about how it was made, so that different settings do not overwrite
    each other: seeds-0-63, then class, truncation, noise mode and raw weights when not the defaults."""
    compact = re.sub(r"\s+", "", text).replace(",", "_")
    tag = f"seeds-{compact}" if len(compact) <= 40 else f"seeds-{seeds[0]}-{seeds[-1]}-{len(seeds)}images"
    if label is not None:
        tag += "-class" + (re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("._") or "x")
    if trunc != 1:
        tag += f"-trunc{trunc:g}"
    if noise_mode != "const":
        tag += f"-noise{noise_mode}"
    if no_ema:
        tag += "-noema"
    return tag


def _mkdir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"cannot create folder {folder}: a file is in the way; choose another --out") from None
    except OSError as exc:
        raise ConfigError(f"cannot create folder {folder} ({exc.strerror or exc}); choose a writable --out") from None


def _write(save: Callable[..., None], img: Any, path: Path) -> None:
    _mkdir(path.parent)
    try:
        save(img, path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path} ({exc.strerror or exc}); choose a writable --out") from None
    except (KeyError, ValueError) as exc:  # an image format this Pillow cannot write
        raise ConfigError(f"cannot write {path} ({exc}); use a .png file") from None


@main.command(context_settings={"show_default": True})
@click.argument("run")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Output folder [default: RUN/translated].")
@click.option(
    "--direction", type=click.Choice(["AtoB", "BtoA"]), default="AtoB", help="Two-way models (CycleGAN): which way."
)
@click.option("--checkpoint", default="latest", help="latest, best or a step number.")
@click.option("--no-ema", is_flag=True, help="Use the raw generator instead of its EMA copy.")
@click.option("--device", default="cpu", help="auto, cpu, cuda or mps.")
def translate(
    run: str, inputs: tuple[str, ...], out: str | None, direction: str, checkpoint: str, no_ema: bool, device: str
) -> None:
    """Translate images (files or folders) with an image-to-image RUN: one PNG per input, same name."""
    from .cli_sample import translate_files

    translate_files(run, inputs, out, direction=direction, checkpoint=checkpoint, no_ema=no_ema, device=device)


@main.command()
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(run: str, as_json: bool) -> None:
    """Describe a trained RUN: family, data, steps, last losses and checkpoints."""
    from . import checkpoint as ckpt
    from .sample.model import find_run

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

    from .config import family_config_from_dict
    from .spec import DataSpec

    family = get_family(cfg.model)
    try:
        data = DataSpec.from_dict(spec)
        fam = family.resolve_config(family_config_from_dict(family, cfg.family), data, cfg.batch)
    except Exception:  # noqa: BLE001 (a run from another version: show what was saved)
        return cfg.family
    try:
        with torch.device("meta"):  # shapes only: no memory, no initialisation cost
            built = getattr(family.build(dataclasses.replace(fam), data), "cfg", None)
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
    if unset("n_blocks") and out["n_blocks"] == 0 and hasattr(family, "blocks"):  # cyclegan: by resolution
        out["n_blocks"] = family.blocks(fam, data)
    if unset("schedule_steps") and out["schedule_steps"] == 0:  # "0: the run's"
        out["schedule_steps"] = cfg.steps if cfg.kimg is None else max(1, math.ceil(cfg.kimg * 1000 / cfg.batch))
    return out


def _last_losses(path: Path) -> dict:
    """The last line of metrics.jsonl with losses. Damaged lines (a crash mid-write, a disk error, binary
    garbage) are skipped: the log is a record, and one bad line must not hide the others."""
    from . import checkpoint as ckpt

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
