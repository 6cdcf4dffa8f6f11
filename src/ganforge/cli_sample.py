"""`ganforge interpolate` and other sampling verbs (attached to ganforge.cli.main)."""

from __future__ import annotations

from pathlib import Path

import click

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
