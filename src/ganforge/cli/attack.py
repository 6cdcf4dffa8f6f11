"""`ganforge attack`: adversarial examples against a classifier or a run's discriminator, and adversarial
training of a robust classifier (`--train-robust`)."""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import ConfigError, DataError
from ..vocab import ATTACK_METHODS as METHODS  # vocab imports nothing: --help stays fast
from ..vocab import ATTACK_NORMS as NORMS

if TYPE_CHECKING:
    import torch

GRID_COLUMNS = 16  # images shown in grid.png (clean | perturbation x10 | adversarial, one column each)
MAX_PIXELS = 4096 * 4096  # an image to attack larger than this is refused from its header
MODEL_HELP = (
    "What to attack: digits, emoji, digits16 (the shipped classifiers), a labelled dataset (its classifier), a "
    "classifier .safetensors (e.g. from --train-robust) or a run folder (its discriminator: fake vs real) "
    "[default: --data's classifier; with --method latent, the generator's data's]."
)


@click.command("attack", context_settings={"show_default": True})
@click.argument("images", nargs=-1)
@click.option("--model", "model_src", default=None, help=MODEL_HELP)
@click.option(
    "--method",
    type=click.Choice(METHODS),
    default="pgd",
    help="fgsm, pgd (random start), cw (Carlini-Wagner L2) or latent (search a conditional generator's latent space).",
)
@click.option(
    "--eps",
    "eps_text",
    default=None,
    help="Perturbation budget in [0, 1] pixels: a fraction (8/255) or a number (0.5) [default: 8/255 for linf, 0.5 for l2].",
)
@click.option(
    "--norm", type=click.Choice(NORMS), default=None, help="Norm of the budget [default: l2 for cw, else linf]."
)
@click.option(
    "--out",
    type=click.Path(),
    default=None,
    help="Output folder (adversarial PNGs, attack.csv, grid.png); with --train-robust, the .safetensors file to write [default: the cache].",
)
@click.option(
    "--data", default=None, help="Attack held-out images of this labelled dataset (e.g. digits) instead of IMAGES."
)
@click.option(
    "--num",
    type=click.IntRange(1, 100_000),
    default=None,
    help="Images from --data (its held-out ones first) or seeds for --method latent [default: 64 / 16].",
)
@click.option("--steps", type=click.IntRange(1, 100_000), default=None, help="Iterations: pgd 20, cw 100, latent 100.")
@click.option(
    "--step-size", "step_text", default=None, help="PGD step [default: eps/4 for linf, 2.5*eps/steps for l2]."
)
@click.option("--no-random-start", is_flag=True, help="PGD from the clean image instead of a random point of the ball.")
@click.option(
    "--cw-c",
    type=click.FloatRange(0, min_open=True),
    default=1.0,
    help="Carlini-Wagner's weight of the classification term.",
)
@click.option(
    "--seed",
    type=click.IntRange(0, 2**32 - 1),
    default=0,
    help="Seed of PGD's random start; first seed for --method latent.",
)
@click.option("--generator", "gen_run", default=None, help="--method latent: the trained class-conditional run.")
@click.option(
    "--class", "label", default=None, help="--method latent: the class to generate [default: seed % classes]."
)
@click.option(
    "--radius", type=click.FloatRange(0), default=0.1, help="--method latent: free latent distance per coordinate."
)
@click.option(
    "--train-robust",
    "robust_data",
    default=None,
    help="Train a classifier of this labelled dataset with PGD adversarial training (Madry et al. 2018) at --eps/--norm, save it and exit.",
)
@click.option("--train-steps", type=click.IntRange(1), default=1000, help="--train-robust: optimiser steps (batch 64).")
@click.option("--attack-steps", type=click.IntRange(1), default=7, help="--train-robust: PGD steps per batch.")
@click.option("--checkpoint", default="latest", help="Checkpoint of a run (discriminator or generator).")
@click.option("--device", default="cpu", help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--batch", type=click.IntRange(1), default=64, help="Images attacked at once.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Cache for classifiers [default: $GANFORGE_CACHE or ~/.cache/ganforge].",
)
def attack(
    images: tuple[str, ...],
    model_src: str | None,
    method: str,
    eps_text: str | None,
    norm: str | None,
    out: str | None,
    data: str | None,
    num: int | None,
    steps: int | None,
    step_text: str | None,
    no_random_start: bool,
    cw_c: float,
    seed: int,
    gen_run: str | None,
    label: str | None,
    radius: float,
    robust_data: str | None,
    train_steps: int,
    attack_steps: int,
    checkpoint: str,
    device: str,
    batch: int,
    cache_dir: str | None,
) -> None:
    """Make adversarial examples: `ganforge attack --model digits --method pgd --eps 8/255 IMAGES... --out DIR`.

    Pixels are in [0, 1] and ε is in that space, as in ART, foolbox and torchattacks. Writes one adversarial PNG
    per image (8-bit, still within ε), attack.csv (label, clean and adversarial prediction with confidence,
    success, L∞ and L2 norm of the perturbation) and grid.png (rows: clean | perturbation x10 around grey |
    adversarial). The table describes the 8-bit images written. `--data digits --num 64` attacks the built-in
    classifier's held-out images without files; `--train-robust digits --out robust.safetensors` trains a
    classifier that resists the attack, to attack with `--model robust.safetensors`."""
    if norm is None:
        norm = "l2" if method == "cw" else "linf"
    if method == "cw" and norm != "l2":
        raise ConfigError("Carlini-Wagner is an L2 attack: use --norm l2 (or --method pgd for L∞)")
    eps = _eps(eps_text, norm) if eps_text is not None else None
    step_size = _eps(step_text, norm, what="--step-size") if step_text is not None else None
    if robust_data is not None:
        if images or data or method == "latent" or model_src:
            raise ConfigError("--train-robust DATA works alone: drop IMAGES / --data / --model / --method latent")
        _train_robust(robust_data, eps, norm, train_steps, attack_steps, out, cache_dir, device)
        return
    if out is None:
        raise ConfigError("give --out DIR: the folder for the adversarial PNGs, attack.csv and grid.png")
    out_dir = Path(out).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file; give a folder")
    if method == "latent":
        if images or data:
            raise ConfigError("--method latent makes its own images from --generator RUN: drop IMAGES / --data")
        if eps_text is not None or step_text is not None:
            raise ConfigError(
                "--eps and --step-size do not apply to --method latent: its images stay on the generator's "
                "manifold instead of inside a pixel ball (use --radius for the latent distance)"
            )
        if gen_run is None:
            raise ConfigError("--method latent needs --generator RUN, a trained class-conditional run")
        _latent(gen_run, model_src, out_dir, num or 16, seed, label, radius, steps, checkpoint, device, cache_dir)
        return
    if gen_run is not None or label is not None:
        raise ConfigError("--generator and --class are for --method latent")
    if images and data:
        raise ConfigError("give IMAGES or --data DATASET, not both")
    if not images and not data:
        raise ConfigError("no images to attack: give image files or folders, or --data DATASET (e.g. --data digits)")
    if model_src is None and data is None:
        raise ConfigError(
            "what to attack? give --model (e.g. --model digits, a classifier .safetensors or a run folder)"
        )
    _attack(
        images,
        data,
        model_src or data,
        method,
        eps,
        norm,
        out_dir,
        num or 64,
        steps,
        step_size,
        not no_random_start,
        cw_c,
        seed,
        checkpoint,
        device,
        batch,
        cache_dir,
    )


def _eps(text: str, norm: str, what: str = "--eps") -> float:
    from ..attack import check_eps, parse_eps

    value = parse_eps(text)
    try:
        return check_eps(value, norm)
    except ConfigError as exc:
        raise ConfigError(f"{what} {text}: {exc}") from None


def _model(source: str, checkpoint: str, device: str, cache_dir: str | None) -> Any:
    from ..attack import load_model
    from ..device import select_device

    return load_model(source, device=select_device(device), cache=cache_dir, checkpoint=checkpoint)


def _attack(
    images: tuple[str, ...],
    data: str | None,
    model_src: str,
    method: str,
    eps: float | None,
    norm: str,
    out_dir: Path,
    num: int,
    steps: int | None,
    step_size: float | None,
    random_start: bool,
    cw_c: float,
    seed: int,
    checkpoint: str,
    device: str,
    batch: int,
    cache_dir: str | None,
) -> None:
    import torch

    from ..attack import attack_images

    model = _model(model_src, checkpoint, device, cache_dir)
    if data is not None:
        x, labels, names, note = _data_images(data, num, model.channels)
        groups = [list(range(len(names)))]
    else:
        x_list, label_list, names = _file_images(images, model)
        note = ""
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, t in enumerate(x_list):
            by_shape.setdefault(tuple(t.shape), []).append(i)
        groups = list(by_shape.values())
    t0 = time.perf_counter()
    clean: list[torch.Tensor] = [torch.empty(0)] * len(names)
    adv: list[torch.Tensor] = [torch.empty(0)] * len(names)
    rows: list[dict[str, Any]] = [{}] * len(names)
    for group in groups:
        if data is not None:
            xb, yb = x, labels
        else:
            xb = torch.stack([x_list[i] for i in group])
            yb = torch.tensor([label_list[i] for i in group], dtype=torch.long)
        res = attack_images(
            model,
            xb,
            yb,
            method=method,
            eps=eps,
            norm=norm,
            steps=steps,
            step_size=step_size,
            random_start=random_start,
            c=cw_c,
            seed=seed,
            batch=batch,
            quantize=True,
        )
        for j, (i, row) in enumerate(zip(group, res.rows(), strict=True)):
            clean[i], adv[i], rows[i] = res.clean[j], res.adv[j], row
        eps = res.eps
    seconds = time.perf_counter() - t0
    _write(out_dir, names, clean, adv, rows)
    n = len(rows)
    acc_c = sum(r["clean_pred"] == r["label"] for r in rows) / n
    acc_a = sum(r["adv_pred"] == r["label"] for r in rows) / n
    succ = sum(r["success"] for r in rows) / n
    budget = f"{norm} ε={_eps_label(eps, norm)}"
    known = any(r["label_source"] == "true" for r in rows)
    acc = f"accuracy {acc_c:.1%} clean -> {acc_a:.1%} adversarial; " if known else ""
    click.echo(
        f"{method} {budget} on {n} image(s) against {model.name}: {acc}success {succ:.1%}; largest perturbation "
        f"L∞ {max(r['linf'] for r in rows):.4f}, L2 {max(r['l2'] for r in rows):.4f} ({seconds:.1f} s)\n"
        f"wrote {n} PNG(s), attack.csv and grid.png to {out_dir}"
    )
    if note:
        click.echo(note, err=True)


def _eps_label(eps: float | None, norm: str) -> str:
    if eps is None:
        return "none"
    k = eps * 255
    return f"{round(k)}/255" if norm == "linf" and abs(k - round(k)) < 1e-6 else f"{eps:g}"


def _data_images(data: str, num: int, channels: int) -> tuple[Any, Any, list[str], str]:
    """Up to `num` held-out images of a labelled dataset (those its classifier never trained on: the same split
    as the classifier extractor's), as [0, 1] floats, with their labels."""
    from ..attack import heldout_split
    from ..data import load_dataset
    from ..data.kinds import ImageDataset

    ds = load_dataset(data)
    if not isinstance(ds, ImageDataset) or ds.labels is None:
        raise DataError(
            f"--data {data} has no class labels: give a labelled dataset (e.g. digits, emoji, class sub-folders)"
        )
    _, held = heldout_split(len(ds))
    note = ""
    if held.numel() >= num:
        idx = held[:num]
    else:
        import torch

        train, _ = heldout_split(len(ds))
        idx = torch.cat([held, train])[:num]
        if idx.numel() > held.numel():
            note = (
                f"note: {data} has {held.numel()} held-out images; the other {idx.numel() - held.numel()} were seen "
                "by its classifier in training"
            )
    x = ds.images[idx].float() / 255
    names = [f"{Path(data).name or data}[{int(i)}]" for i in idx]
    return x, ds.labels[idx], names, note


def _file_images(sources: tuple[str, ...], model: Any) -> tuple[list[Any], list[int], list[str]]:
    """The image files named or found (recursively) in the folders named, decoded by ganforge's guarded
    decoder in the model's channels, as [0, 1] floats; a file's label is its folder's name when that is one of
    the model's classes (class sub-folders), else -1 (the clean prediction is used)."""
    from ..data.archive import IMAGE_EXTENSIONS
    from ..images import open_image, pil_to_array

    files: list[Path] = []
    for s in sources:
        p = Path(s).expanduser()
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise DataError(f"no images in {p} ({'/'.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)} files)")
            files += found
        elif p.exists():
            files.append(p)
        else:
            raise DataError(f"no such file or folder: {p}")
    import torch

    mode = "L" if model.channels == 1 else "RGB"
    classes = {name: k for k, name in enumerate(model.class_names)}
    xs, labels = [], []
    for f in files:
        arr = pil_to_array(open_image(f, mode=mode, max_pixels=MAX_PIXELS))  # (H, W, C) uint8
        xs.append(torch.from_numpy(arr).permute(2, 0, 1).float() / 255)
        labels.append(classes.get(f.parent.name, -1))
    return xs, labels, [str(f) for f in files]


def _write(out_dir: Path, names: list[str], clean: list[Any], adv: list[Any], rows: list[dict[str, Any]]) -> None:
    """The adversarial PNGs, attack.csv and grid.png."""
    import torch
    import torch.nn.functional as F

    from ..images import save_png, tensor_to_pil
    from ..sample.grid import make_grid

    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for i, (name, a) in enumerate(zip(names, adv, strict=True)):
        stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(name).stem)[:60] or "image"
        fname = f"{i:04d}-{stem}.png"
        save_png(tensor_to_pil(a * 2 - 1), out_dir / fname)
        files.append(fname)
    with open(out_dir / "attack.csv", "w", newline="") as f:
        keys = ["file", "source", *rows[0].keys()]
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for fname, name, row in zip(files, names, rows, strict=True):
            w.writerow(
                {
                    "file": fname,
                    "source": name,
                    **{k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()},
                }
            )
    shown = list(range(min(GRID_COLUMNS, len(adv))))
    h, w_ = clean[0].shape[-2:]

    def fit(t: torch.Tensor) -> torch.Tensor:  # grid cells share the first image's size
        return (
            t if t.shape[-2:] == (h, w_) else F.interpolate(t[None], size=(h, w_), mode="bilinear", antialias=True)[0]
        )

    c = torch.stack([fit(clean[i]) for i in shown])
    a = torch.stack([fit(adv[i]) for i in shown])
    pert = (0.5 + 10 * (a - c)).clamp(0, 1)  # x10 around grey
    cells = torch.cat([c, pert, a]) * 2 - 1  # [-1, 1], the grid's convention
    scale = max(1, 64 // max(h, w_))  # small images enlarged (nearest) so the grid can be seen
    if scale > 1:
        cells = F.interpolate(cells, scale_factor=scale, mode="nearest")
    save_png(make_grid(cells, nrow=len(shown)), out_dir / "grid.png")


def _latent(
    gen_run: str,
    model_src: str | None,
    out_dir: Path,
    num: int,
    seed: int,
    label: str | None,
    radius: float,
    steps: int | None,
    checkpoint: str,
    device: str,
    cache_dir: str | None,
) -> None:
    import ganforge

    from ..attack import latent_attack
    from ..device import select_device

    gen = ganforge.load(gen_run, checkpoint=checkpoint, device=str(select_device(device)))
    if model_src is None:
        model_src = str(gen.config.data or "")
        if not model_src:
            raise ConfigError(f"{gen.run_dir} does not name its training data: give the classifier with --model")
    model = _model(model_src, checkpoint, device, cache_dir)
    seeds = list(range(seed, seed + num))
    t0 = time.perf_counter()
    res = latent_attack(gen, model, seeds=seeds, label=label, steps=steps or 100, radius=radius, quantize=True)
    names = [f"seed{s}" for s in seeds]
    rows = res.rows()
    _write(out_dir, names, list(res.clean), list(res.adv), rows)
    flipped = sum(r["success"] for r in rows)
    already = sum(r["clean_pred"] != r["label"] for r in rows)
    click.echo(
        f"latent search on {num} image(s) of {gen.run_dir} against {model.name}: {flipped} of {num} now mislabelled "
        f"({already} already were before the search), median latent distance "
        f"{float(res.extra['z_dist'].median()):.3f} ({time.perf_counter() - t0:.1f} s)\n"
        f"wrote {num} PNG(s), attack.csv and grid.png to {out_dir}"
    )


def _train_robust(
    data: str,
    eps: float | None,
    norm: str,
    steps: int,
    attack_steps: int,
    out: str | None,
    cache_dir: str | None,
    device: str,
) -> None:

    from ..attack import (
        DEFAULT_EPS,
        PixelClassifier,
        attack_images,
        heldout_split,
        robust_path,
        save_robust,
        train_robust,
    )
    from ..data import load_dataset
    from ..data.kinds import ImageDataset
    from ..device import select_device
    from ..sample.progress import Progress

    eps = DEFAULT_EPS[norm] if eps is None else eps
    if out is not None and Path(out).suffix.lower() != ".safetensors" and Path(out).suffix:
        raise ConfigError(f"--out {out}: --train-robust writes a .safetensors file (its .json beside it), or a folder")
    ds = load_dataset(data)
    if not isinstance(ds, ImageDataset) or ds.labels is None or ds.num_classes < 2:
        raise DataError(
            f"--train-robust {data}: adversarial training needs labelled images (e.g. digits, emoji, class sub-folders)"
        )
    if out is None:
        path = robust_path(ds, norm, eps, cache_dir)
    elif Path(out).suffix:
        path = Path(out)
    else:
        path = Path(out) / f"robust-{Path(data).name or 'data'}-{norm}.safetensors"
    with Progress(steps, "steps", "adversarial training") as p:
        clf = train_robust(
            ds,
            eps=eps,
            norm=norm,
            steps=steps,
            attack_steps=attack_steps,
            device=select_device(device),
            progress=p.callback,
        )
    path = save_robust(path, clf)
    model = PixelClassifier(clf.net, clf.meta, path.name).eval()
    _, held = heldout_split(len(ds))
    line = ""
    if held.numel():
        x, y = ds.images[held].float() / 255, ds.labels[held]
        res = attack_images(model, x, y, method="pgd", eps=eps, norm=norm)
        line = f", under PGD-20 at ε={_eps_label(eps, norm)} {res.adv_accuracy:.1%}"
    m = clf.meta
    acc = m["heldout_accuracy"]
    click.echo(
        f"robust classifier for {data}: held-out accuracy {acc:.1%} clean{line} ({m['heldout_images']} images), "
        f"trained in {m['train_seconds']:.0f} s\n{path}\nattack it: ganforge attack --model {path} --data {data} --out DIR"
        if not math.isnan(acc)
        else f"robust classifier for {data} (no held-out images)\n{path}"
    )
