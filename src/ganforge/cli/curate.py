"""`ganforge curate`: generate many images from a run, score them, keep the best (ganforge.curate)."""

from __future__ import annotations

import json

import click

_BY_HELP = (
    "Comma-separated scorers that rank the images (combined by the mean of their ranks): sharpness, iqa (100 - PIQE), "
    "classifier:CLASS, realness (the run's D), realism, a --scorer name; or drs (discriminator rejection sampling, "
    "Azadi et al. 2019) alone."
)


@click.command("curate", context_settings={"show_default": True})
@click.argument("run")
@click.option("--num", type=int, default=10000, help="Images to generate (seeds --seed-start, --seed-start + 1, ...).")
@click.option("--keep", type=int, default=1000, help="Images to keep, at most.")
@click.option("--by", default="sharpness,realism", help=_BY_HELP)
@click.option(
    "--min",
    "minimum",
    multiple=True,
    metavar="SCORER=VALUE",
    help="Keep only images scoring at least VALUE (repeatable); the --by ranks choose among them.",
)
@click.option("--out", default=None, help="Folder for the kept images, scores.csv, histograms and curate.json.")
@click.option("--seed-start", type=int, default=0, help="First seed.")
@click.option("--batch", type=int, default=64, help="Images generated and scored at a time.")
@click.option("--device", default="cpu", help="cpu, cuda, cuda:N, mps or auto.")
@click.option("--checkpoint", default="latest", help="Checkpoint: latest, best or a step number.")
@click.option(
    "--data", default=None, help="Real data for realism, classifier and drs [default: the run's training data]."
)
@click.option(
    "--scorer",
    "scorer_specs",
    multiple=True,
    metavar="[NAME=]MODULE:FUNCTION",
    help="Add a scorer: a function of images in [0, 1] (N, C, H, W) returning one score per image, higher = better "
    "(repeatable); use its name in --by.",
)
@click.option(
    "--drs-percentile", type=float, default=95.0, help="DRS: gamma is this percentile of F(x) (the paper's 95)."
)
@click.option("--drs-seed", type=int, default=0, help="DRS: seed of the acceptance draws.")
@click.option(
    "--histograms/--no-histograms", default=True, help="Write a before/after histogram per scorer (needs matplotlib)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def curate(
    run: str,
    num: int,
    keep: int,
    by: str,
    minimum: tuple[str, ...],
    out: str | None,
    seed_start: int,
    batch: int,
    device: str,
    checkpoint: str,
    data: str | None,
    scorer_specs: tuple[str, ...],
    drs_percentile: float,
    drs_seed: int,
    histograms: bool,
    as_json: bool,
) -> None:
    """Generate --num images from RUN, score them and keep the best --keep; with --out, write them (named by seed,
    so `ganforge generate RUN --seeds N` gives the same image) with scores.csv and histograms."""
    from ..curate import check_counts
    from ..curate import curate as run_curate

    check_counts(num, keep)  # before loading anything
    ckpt: str | int = int(checkpoint) if checkpoint.isdigit() else checkpoint
    from ..sample.progress import Progress

    with Progress(num, "images", "scoring") as bar:
        res = run_curate(
            run,
            num=num,
            keep=keep,
            by=by,
            min=list(minimum),
            out=out,
            seed_start=seed_start,
            batch=batch,
            device=device,
            checkpoint=ckpt,
            data=data,
            scorers=list(scorer_specs),
            drs_percentile=drs_percentile,
            drs_seed=drs_seed,
            histograms=histograms and out is not None,
            progress=bar.callback,
        )
    summary = res.summary()
    if as_json:
        click.echo(json.dumps({**summary, "out": str(res.out) if res.out else None}, indent=1))
        return
    if res.accepted_fraction is not None:
        d = res.drs
        click.echo(
            f"DRS accepted {d['accepted']} of {num} ({100 * res.accepted_fraction:.1f} %; gamma {d['gamma']:.3g}, "
            f"calibration sigmoid({d['a']:.3g} * logit + {d['b']:.3g})); kept {summary['kept']}"
        )
    else:
        click.echo(f"kept {summary['kept']} of {num} ({res.method}: {', '.join(res.by) or ', '.join(res.scores)})")
    for name, s in summary["scorers"].items():
        click.echo(f"  {name:<20} mean {s['before_mean']:.4g} -> {s['after_mean']:.4g}")
    if res.out is not None:
        click.echo(f"wrote {res.out}/images, scores.csv" + (", hist-*.png" if histograms else "") + ", curate.json")
    else:
        click.echo("nothing written: give --out DIR to write the kept images and scores.csv")
