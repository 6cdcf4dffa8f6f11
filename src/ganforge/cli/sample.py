"""The verbs that use a trained model: `generate`, `translate`, `enhance`, `colorize`, `interpolate`, `mix`
and `project`."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .. import vocab
from ..errors import ConfigError
from ..sample.seeds import parse_seeds

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
GENERATE_BATCH = 64  # images generated, and written, before the next ones are made
MAX_GRID_IMAGES = 4096  # a grid of more is not viewable: write one PNG per seed instead
MAX_GRID_PIXELS = 2 * 89_478_485  # PIL refuses to open larger images (2 x Image.MAX_IMAGE_PIXELS)


@click.command(context_settings={"show_default": True})
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
@click.option(
    "--prompt",
    default=None,
    help="What to draw, for text-conditioned models (at most 128 bytes) [default: the training data's caption seed % n].",
)
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
    prompt: str | None = None,
) -> None:
    """Generate images from a trained RUN (a run folder, or a name under ./runs). Same seed, same image.

    Images are generated and written in batches (a progress bar shows on a terminal), so any number of
    seeds fits in memory and the first files appear at once."""
    import torch

    from ..sample.annotate import LabelledGridCanvas, caption, labelled_grid_size, scaled_grid_size, upscale
    from ..sample.grid import GridCanvas, render_points, save_image, save_png, to_pil
    from ..sample.model import Model

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
    model.check_prompt(prompt)  # as a prompt for a model that reads no text, or one too long
    target = Path(out) if out else model.run_dir / "generated"
    tag = _output_tag(seeds, seed_list, label, trunc, noise_mode, no_ema) + (f"-x{scale}" if scale > 1 else "")
    if prompt is not None:
        tag += "-" + (re.sub(r"[^A-Za-z0-9._-]+", "_", prompt).strip("._")[:40] or "prompt")
    batches = _generate_batches(model, seed_list, label=label, trunc=trunc, noise_mode=noise_mode, prompt=prompt)
    if model.spec.kind == "voxels":
        _write_shapes(model, seed_list, batches, target, tag, grid=grid, scale=scale)
        return
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


def _write_shapes(
    model: Any, seeds: list[int], batches: Iterator[tuple[list[int], torch.Tensor]], target: Path, tag: str, *, grid: bool,
    scale: int,
) -> None:
    """Voxel models: a mesh per seed (seedNNNN.obj and .ply, by marching cubes) and a grid of shaded renderings
    (grid-TAG.png); with --grid, only the grid (at --out when it names an image file)."""
    from ..sample.annotate import upscale
    from ..sample.grid import GridCanvas, save_image
    from ..sample.shapes import render_size, render_volumes, write_meshes

    path = _grid_file(target, f"grid-{tag}.png")
    meshes = 0
    side = render_size(model.spec.resolution)
    canvas = GridCanvas(len(seeds), side, side, 3)
    for chunk, x in batches:  # rendered a batch at a time: only the grid's pixels are kept
        if not grid:
            _mkdir(target)
            meshes += len(write_meshes(x, [f"seed{s:04d}" for s in chunk], target)) // 2
        canvas.add(render_volumes(x, side))
    _write(_saver(save_image, path), upscale(canvas.image(), scale), path)
    made = "" if grid else f" and {meshes} meshes (.obj, .ply) to {target}"
    click.echo(f"wrote {path} ({len(seeds)} shapes){made} (step {model.step})")


def _generate_batches(
    model: Any,
    seeds: list[int],
    *,
    label: str | None,
    trunc: float,
    noise_mode: str,
    prompt: str | None = None,
    batch: int = GENERATE_BATCH,
) -> Iterator[tuple[list[int], torch.Tensor]]:
    """(seeds, images) a batch at a time, with a progress bar on stderr when it is a terminal."""
    import torch
    from tqdm import tqdm

    show = len(seeds) > batch and _is_terminal(sys.stderr)
    with tqdm(total=len(seeds), unit="img", file=sys.stderr, disable=not show, dynamic_ncols=True, leave=False) as bar:
        for i in range(0, len(seeds), batch):
            chunk = seeds[i : i + batch]
            x = model.generate(
                chunk, label=label, trunc=trunc, noise_mode=noise_mode, prompt=prompt, output="tensor", batch=batch
            )
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


@click.command(context_settings={"show_default": True})
@click.argument("run")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Output folder [default: RUN/translated].")
@click.option(
    "--direction", type=click.Choice(vocab.DIRECTIONS), default="AtoB", help="Two-way models (CycleGAN): which way."
)
@click.option("--checkpoint", default="latest", help="latest, best or a step number.")
@click.option("--no-ema", is_flag=True, help="Use the raw generator instead of its EMA copy.")
@click.option("--device", default="cpu", help="auto, cpu, cuda or mps.")
def translate(
    run: str, inputs: tuple[str, ...], out: str | None, direction: str, checkpoint: str, no_ema: bool, device: str
) -> None:
    """Translate images (files or folders) with an image-to-image RUN: one PNG per input, same name."""
    translate_files(run, inputs, out, direction=direction, checkpoint=checkpoint, no_ema=no_ema, device=device)


@click.command(context_settings={"show_default": True})
@click.argument("run")
@click.option("--seeds", default="0-3", help="Seeds of the key latents, in order, e.g. 3,17,42 (at least two).")
@click.option("--images", nargs=2, type=click.Path(exists=True, dir_okay=False), default=None, help="Walk between two real images instead (models that encode: vae).")
@click.option("--frames", type=click.IntRange(1, 10000), default=24, help="Frames from one key to the next.")
@click.option("--slerp", is_flag=True, help="Spherical interpolation (keeps Gaussian latents at a typical norm).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="walk.gif, walk.mp4 (needs the video extra) or grid.png (one row per segment) [default: RUN/walk-SEEDS.gif].")
@click.option("--class", "label", default=None, help="Class index or name for conditional models [default: the first seed's].")
@click.option("--fps", type=click.IntRange(1, 120), default=24, help="Frames per second (.gif, .mp4).")
@click.option("--scale", type=click.IntRange(1, 32), default=1, help="Enlarge frames by this factor (nearest neighbour).")
@click.option("--checkpoint", default="latest", help="latest, best or a step number.")
@click.option("--device", default="cpu", help="auto, cpu, cuda or mps.")
def interpolate(
    run: str, seeds: str, images: tuple[str, str] | None, frames: int, slerp: bool, out: str | None, label: str | None,
    fps: int, scale: int, checkpoint: str, device: str,
) -> None:
    """Latent walk of a trained RUN through the latents of --seeds (or two real --images), as a looping
    GIF or MP4 or a PNG grid. Same seeds, same frames."""
    from ..sample.interpolate import image_walk, latent_walk, save_walk
    from ..sample.model import Model

    model = Model.load(run, checkpoint=checkpoint, device=device)
    target = Path(out) if out else model.run_dir / f"walk-{'images' if images else seeds.replace(',', '_')}.gif"
    grid = target.suffix.lower() == ".png"
    # Videos loop back to the first key; a grid shows each segment as a row with both ends.
    kw = dict(spherical=slerp, closed=not grid, endpoints=grid, label=label)
    if images:
        x = image_walk(model, list(images), frames, **kw)
    elif model.spec.kind == "voxels":  # shapes: the walk's frames are their renderings
        from ..sample.interpolate import walk
        from ..sample.latents import latents_for_seeds
        from ..sample.shapes import render_walk

        keys = parse_seeds(seeds)
        z = walk(latents_for_seeds(keys, model.latent_shape), frames, spherical=slerp, closed=not grid, endpoints=grid)
        x = render_walk(model, z, label, keys[0])
    else:
        x = latent_walk(model, parse_seeds(seeds), frames, **kw)
    path = save_walk(x, target, fps=fps, scale=scale)
    click.echo(f"wrote {path} ({x.shape[0]} segments x {x.shape[1]} frames, step {model.step})")


@click.command(context_settings={"show_default": True})
@click.argument("run")
@click.option("--rows", default="0-3", help="Seeds of the rows (their coarse styles are kept).")
@click.option("--cols", default="4-7", help="Seeds of the columns (they give the styles --styles).")
@click.option("--styles", default="0-6", help="Layers whose styles come from the column seed (0 = coarsest).")
@click.option("--trunc", type=float, default=1.0, help="Truncation psi.")
@click.option("--noise-mode", type=click.Choice(vocab.NOISE_MODES), default="const", help="Per-pixel noise.")
@click.option("--class", "label", default=None, help="Class index or name for conditional models.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="PNG to write [default: RUN/mix-ROWS-COLS.png].")
@click.option("--scale", type=click.IntRange(1, 32), default=1, help="Enlarge by this factor (nearest neighbour).")
@click.option("--checkpoint", default="latest", help="latest, best or a step number.")
@click.option("--device", default="cpu", help="auto, cpu, cuda or mps.")
def mix(
    run: str, rows: str, cols: str, styles: str, trunc: float, noise_mode: str, label: str | None, out: str | None,
    scale: int, checkpoint: str, device: str,
) -> None:
    """Style-mixing grid of a stylegan2 RUN: row seeds with the --styles layers of the column seeds
    (Karras et al. 2019, fig. 3)."""
    from PIL import Image

    from ..sample.grid import make_grid, save_png
    from ..sample.model import Model
    from ..sample.styles import style_mix

    model = Model.load(run, checkpoint=checkpoint, device=device)
    r, c = parse_seeds(rows), parse_seeds(cols)
    grid = style_mix(model, r, c, parse_seeds(styles), trunc=trunc, noise_mode=noise_mode, label=label)
    n_rows, n_cols = grid.shape[:2]
    img = make_grid(grid.reshape(n_rows * n_cols, *grid.shape[2:]), nrow=n_cols)  # (R+1, C+1, ...) -> rows
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    path = Path(out) if out else model.run_dir / f"mix-{rows.replace(',', '_')}-{cols.replace(',', '_')}.png"
    if path.suffix.lower() != ".png":
        raise click.BadParameter("give a .png file", param_hint="--out")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(img, path)
    click.echo(f"wrote {path} ({len(r)} rows x {len(c)} columns, styles {styles}, step {model.step})")


@click.command(context_settings={"show_default": True})
@click.argument("run")
@click.argument("target", type=click.Path(exists=True, dir_okay=False))
@click.option("--steps", type=click.IntRange(1, 100000), default=500, help="Optimisation steps.")
@click.option("--loss", type=click.Choice(["auto", "lpips", "pixel"]), default="auto", help="auto: LPIPS when its weights are on disk, else a multi-scale pixel distance.")
@click.option("--seed", type=int, default=0, help="Seed of the optimisation noise.")
@click.option("--video", is_flag=True, help="Also write the optimisation as a GIF.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Output folder [default: RUN/projected/TARGET].")
@click.option("--checkpoint", default="latest", help="latest, best or a step number.")
@click.option("--device", default="cpu", help="auto, cpu, cuda or mps.")
def project(run: str, target: str, steps: int, loss: str, seed: int, video: bool, out: str | None, checkpoint: str, device: str) -> None:
    """Project a real image into the W space of a stylegan2 RUN: writes the latent (projected_w.npz),
    target | reconstruction (proj.png) and, with --video, the optimisation (proj.gif)."""
    import numpy as np
    import torch

    from ..images import open_image
    from ..sample.grid import make_grid, save_png
    from ..sample.interpolate import load_image, save_walk
    from ..sample.model import Model
    from ..sample.styles import project as run_projection

    open_image(target)  # a FIFO, a pixel bomb or a broken file is named before the model loads
    model = Model.load(run, checkpoint=checkpoint, device=device)
    x = load_image(target, model.spec.channels, model.spec.resolution)
    res = run_projection(model, x, steps=steps, loss=loss, seed=seed, every=max(steps // 60, 1) if video else 0)
    folder = Path(out) if out else model.run_dir / "projected" / Path(target).stem
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "projected_w.npz", w=res.w.numpy())  # plain arrays: np.load needs no pickle
    save_png(make_grid(torch.stack([x[0], res.image])), folder / "proj.png")
    if video and res.frames:
        frames = torch.stack([torch.cat([x[0], f], dim=2) for f in res.frames])  # target | current, side by side
        save_walk(frames[None], folder / "proj.gif", fps=15)
    click.echo(f"wrote {folder} (loss: {res.loss}, final distance {res.distance:.4f}, {steps} steps)")


# The verb each command's output folder is named after, and the command a message names.
_COMMANDS = {"translated": "translate", "enhanced": "enhance", "colorized": "colorize"}


def _input_files(inputs: tuple[str, ...]) -> list[tuple[Path, Path]]:
    """(input file, output path relative to the output folder) for files and folders of images: a folder's
    images keep their sub-folder layout (photos/a/x.jpg -> a/x.png), a file gives its stem. Hidden files and
    folders are left out; a file named twice is translated once."""
    from ..data.archive import IMAGE_EXTENSIONS

    out: list[tuple[Path, Path]] = []
    seen: set[str] = set()
    for item in map(Path, inputs):
        if item.is_dir():
            pairs = []
            for dirpath, dirnames, filenames in os.walk(item):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in filenames:
                    f = Path(dirpath, name)
                    if name.startswith(".") or f.suffix.lower() not in IMAGE_EXTENSIONS:
                        continue
                    pairs.append((f, f.relative_to(item).with_suffix(".png")))
            found = sorted(pairs)
        else:
            found = [(item, Path(f"{item.stem}.png"))]
        for f, rel in found:
            key = os.path.realpath(f)
            if key not in seen:
                seen.add(key)
                out.append((f, rel))
    return out


def _check_outputs(inputs: tuple[str, ...], files: list[tuple[Path, Path]], target: Path, command: str) -> None:
    """Refuse, before anything is written, an output folder that is or lies inside an input folder, an output
    that would replace an input file, and two inputs that would write the same output."""
    from ..data.prepare import _same_or_inside

    for item in map(Path, inputs):
        if item.is_dir() and _same_or_inside(target, item):
            relation = "is" if _same_or_inside(item, target) else "is inside"
            raise ConfigError(
                f"the output folder {target} {relation} the input folder {item}; `ganforge {command}` will not write "
                f"over or among its inputs: choose an --out outside {item}"
            )
    inputs_real = {os.path.realpath(f): f for f, _ in files}
    inodes = {}
    for f, _ in files:
        try:
            st = os.stat(f)
            inodes[(st.st_dev, st.st_ino)] = f
        except OSError:
            pass
    claimed: dict[str, Path] = {}
    for f, rel in files:
        dest = target / rel
        real = os.path.realpath(dest)
        same = inputs_real.get(real)
        if same is None and dest.exists():
            try:
                st = os.stat(dest)
                same = inodes.get((st.st_dev, st.st_ino)) if st.st_ino else None
            except OSError:
                same = None
        if same is not None:
            raise ConfigError(
                f"the output for {f} would be {dest}, which is the input {same}; `ganforge {command}` never replaces "
                "its inputs: choose another --out"
            )
        key = os.path.normcase(real)
        if key in claimed:
            raise ConfigError(
                f"{claimed[key]} and {f} would both be written to {dest}; rename one of them or translate them "
                "with separate --out folders"
            )
        claimed[key] = f


def translate_files(
    run: str, inputs: tuple[str, ...], out: str | None, *, direction: str = "AtoB", checkpoint: str = "latest",
    no_ema: bool = False, device: str = "cpu", kind: str | None = None, verb: str = "translated",
    command: str | None = None, preset: str | None = None,
) -> None:
    """What `translate`, `enhance` and `colorize` share: files or folders in, one PNG per input out (same
    stem, a folder's sub-folder layout kept), large images in tiles with a progress bar. `kind` restricts
    the run's data kind (e.g. superres for enhance), `preset` its family preset (colorize); `verb` names
    the default output folder (RUN/VERB) and `command` the verb messages name. Nothing is written if an
    output would land on an input or on another output."""
    from ..errors import DataError
    from ..images import header_size
    from ..sample.grid import save_png_array
    from ..sample.model import Model
    from ..sample.progress import Progress, duration

    command = command or _COMMANDS.get(verb, "translate")
    model = Model.load(run, checkpoint=checkpoint, device=device, ema=not no_ema)
    if kind is not None and model.spec.kind != kind:
        needs = {"superres": "a super-resolution run (srgan)"}.get(kind, f"a {kind} model")
        raise ConfigError(
            f"{run} is a {model.family.name} model ({model.spec.kind} data); `ganforge {command}` needs {needs}"
        )
    settings = dataclasses.asdict(model.fam_cfg)  # the family's declared settings
    if preset is not None and settings.get("preset") != preset:
        has = settings.get("preset") or ""
        trained = f"trained with preset={has}" if has else "trained without a preset"
        raise ConfigError(
            f"{run} is a {model.family.name} model {trained}; `ganforge {command}` needs a pix2pix run trained with "
            f"--set preset={preset}: use `ganforge translate {run} ...` for this one"
        )
    files = _input_files(inputs)
    if not files:
        raise ConfigError(f"no images in {', '.join(inputs)}; give image files or folders of PNG/JPEG files")
    target = Path(out) if out else model.run_dir / verb
    _check_outputs(inputs, files, target, command)
    target.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with Progress(len(files), "images", command, enabled=len(files) > 1) as overall:
        for f, rel in files:
            tiles = 0
            try:
                w, h = header_size(f)  # the header only; a FIFO or a pixel bomb is refused unread
                ow, oh, tiles = model.output_plan(w, h)
            except Exception:  # noqa: BLE001  (PIL raises many types; translate names the problem in one line)
                pass
            if tiles:
                if overall.bar is not None:
                    overall.bar.clear()
                click.echo(
                    f"{f}: {w}x{h} -> {ow}x{oh} px ({ow * oh * model.spec.channels / 2**20:,.0f} MB uncompressed), "
                    f"in {tiles:,} tiles",
                    err=True,
                )
            with Progress(tiles, "tiles", f.name, enabled=tiles > 1) as bar:
                try:
                    (arr,) = model.translate(str(f), direction=direction, output="array", progress=bar.callback)
                except DataError as exc:
                    if not overall.done:
                        raise
                    raise DataError(f"{exc} (stopped there: {overall.done} of {len(files)} written to {target})") from None
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            save_png_array(arr, dest)  # row by row: no second copy of a huge image
            if tiles:
                click.echo(f"wrote {dest} ({duration(time.monotonic() - t0)} so far)", err=True)
            overall.update()
    click.echo(f"wrote {len(files)} images to {target} (step {model.step})")


@click.command(context_settings={"show_default": True})
@click.argument("run")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Output folder [default: RUN/enhanced].")
@click.option("--checkpoint", default="latest", help="latest, best or a step number.")
@click.option("--device", default="cpu", help="auto, cpu, cuda or mps.")
def enhance(run: str, inputs: tuple[str, ...], out: str | None, checkpoint: str, device: str) -> None:
    """Super-resolve images (files or folders) with a super-resolution RUN (srgan): any size, in tiles,
    so memory stays bounded."""
    translate_files(
        run, inputs, out, checkpoint=checkpoint, device=device, kind="superres", verb="enhanced", command="enhance"
    )


@click.command(context_settings={"show_default": True})
@click.argument("run")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Output folder [default: RUN/colorized].")
@click.option("--checkpoint", default="latest", help="latest, best or a step number.")
@click.option("--device", default="cpu", help="auto, cpu, cuda or mps.")
def colorize(run: str, inputs: tuple[str, ...], out: str | None, checkpoint: str, device: str) -> None:
    """Colourise grayscale images with a pix2pix RUN trained with the colorize preset (an alias of translate)."""
    translate_files(
        run, inputs, out, checkpoint=checkpoint, device=device, verb="colorized", command="colorize", preset="colorize"
    )
