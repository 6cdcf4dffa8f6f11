"""`ganforge interpolate` and other sampling verbs (attached to ganforge.cli.main)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from . import vocab
from .cli import main, parse_seeds


@main.command(context_settings={"show_default": True})
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
    from .sample.interpolate import image_walk, latent_walk, save_walk
    from .sample.model import Model

    model = Model.load(run, checkpoint=checkpoint, device=device)
    target = Path(out) if out else model.run_dir / f"walk-{'images' if images else seeds.replace(',', '_')}.gif"
    grid = target.suffix.lower() == ".png"
    # Videos loop back to the first key; a grid shows each segment as a row with both ends.
    kw = dict(spherical=slerp, closed=not grid, endpoints=grid, label=label)
    if images:
        x = image_walk(model, list(images), frames, **kw)
    else:
        x = latent_walk(model, parse_seeds(seeds), frames, **kw)
    path = save_walk(x, target, fps=fps, scale=scale)
    click.echo(f"wrote {path} ({x.shape[0]} segments x {x.shape[1]} frames, step {model.step})")


@main.command(context_settings={"show_default": True})
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

    from .sample.grid import make_grid, save_png
    from .sample.model import Model
    from .sample.styles import style_mix

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


@main.command(context_settings={"show_default": True})
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

    from .sample.grid import make_grid, save_png
    from .sample.interpolate import load_image, save_walk
    from .sample.model import Model
    from .sample.styles import project as run_projection

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
    from .data.archive import IMAGE_EXTENSIONS

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
    from .data.prepare import _same_or_inside
    from .errors import ConfigError

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
    from PIL import Image

    from .errors import ConfigError, DataError
    from .sample.grid import save_png_array
    from .sample.model import Model
    from .sample.progress import Progress, duration

    command = command or _COMMANDS.get(verb, "translate")
    model = Model.load(run, checkpoint=checkpoint, device=device, ema=not no_ema)
    if kind is not None and model.spec.kind != kind:
        needs = {"superres": "a super-resolution run (srgan)"}.get(kind, f"a {kind} model")
        raise ConfigError(
            f"{run} is a {model.family.name} model ({model.spec.kind} data); `ganforge {command}` needs {needs}"
        )
    if preset is not None and getattr(model.fam_cfg, "preset", None) != preset:
        has = getattr(model.fam_cfg, "preset", "") or ""
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
                with Image.open(f) as im:
                    w, h = im.size
                ow, oh, tiles = model.output_plan(w, h)
            except (OSError, ValueError, Image.DecompressionBombError):
                pass  # translate names the problem
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


@main.command(context_settings={"show_default": True})
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


@main.command(context_settings={"show_default": True})
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
