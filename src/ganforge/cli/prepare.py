"""`ganforge prepare`: a folder, zip or list of images -> a StyleGAN2-ADA-format dataset archive.

Thin on purpose: options -> PrepareOptions -> prepare_to -> a printed summary. The rules (labels,
automatic resolution, what counts as ignored) live in `ganforge.data.prepare`'s docstring.
"""

from __future__ import annotations

import click

from .. import vocab
from ..errors import ConfigError

_SHOW_SKIPPED = 5  # reasons printed; the report has them all


def _channel_name(c: int) -> str:
    return "grayscale" if c == 1 else "RGB"


@click.command(context_settings={"show_default": True})
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE... DEST")
@click.option(
    "--resolution",
    type=int,
    default=None,
    help="Output side in pixels (>= 4). Any size works here, but most model families need a power of two "
    "(32, 64, 128, 256, ...). [default: the most common input size]",
)
@click.option(
    "--fit",
    type=click.Choice(vocab.FITS),
    default="pad",
    help="How non-square images become square: pad with the background colour, centre-crop, or stretch.",
)
@click.option(
    "--filter",
    "filter_",
    type=click.Choice(vocab.RESAMPLE_FILTERS),
    default="lanczos",
    help="Resampling filter. nearest keeps pixel art exact when enlarging; images it would reduce are "
    "reduced with box (area averaging) instead, since nearest drops pixels (broken outlines, speckle); "
    "the summary says how many.",
)
@click.option(
    "--background",
    default="white",
    help="Colour that transparency is composited onto and padding is filled with: a name or #rrggbb.",
)
@click.option("--channels", type=click.Choice(["1", "3"]), default="3", help="3 = RGB, 1 = grayscale.")
@click.option(
    "--dedupe",
    is_flag=True,
    help="Drop images whose pixels are identical after preparation (keeps the first, by path).",
)
@click.option(
    "--labels",
    "labels",
    type=click.Path(dir_okay=False),
    default=None,
    help="CSV (file,label) or JSON ({file: label}) of class labels. [default: sub-folder names, when images are in two or more sub-folders]",
)
@click.option(
    "--label-key",
    default=None,
    help="Field or column that holds the label in a JSON/CSV labels file. [default: label, class or category]",
)
@click.option(
    "--captions",
    type=click.Path(dir_okay=False),
    default=None,
    help="CSV (file,caption) or JSON ({file: caption}) of one caption per image, for text-to-image models "
    "(images without one are skipped and reported).",
)
@click.option(
    "--folder-labels/--no-folder-labels",
    default=True,
    help="Without --labels, label images by their sub-folder's name.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace DEST if it exists and is a dataset ganforge wrote (never a source, nor anything else).",
)
@click.option(
    "--report",
    "report",
    type=click.Path(dir_okay=False),
    default=None,
    help="Where to write the per-file CSV of skipped, duplicate and ignored files. [default: DEST-report.csv]",
)
@click.option(
    "--workers", type=click.IntRange(0, 256), default=1, help="Processes that decode images (0: one per CPU core)."
)
@click.option(
    "--paired",
    is_flag=True,
    help="SOURCE is one folder of aligned pairs (pix2pix): two sub-folders (A/ and B/, trainA/ and trainB/) "
    "matched by file name, or side-by-side A|B images. Writes a paired dataset.",
)
@click.option(
    "--unpaired",
    is_flag=True,
    help="SOURCE is one folder of two domains (CycleGAN): two sub-folders (trainA/ and trainB/, or A/ and B/). "
    "Writes an unpaired dataset.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def prepare(
    sources: tuple[str, ...],
    resolution: int | None,
    fit: str,
    filter_: str,
    background: str,
    channels: str,
    dedupe: bool,
    labels: str | None,
    label_key: str | None,
    captions: str | None,
    folder_labels: bool,
    overwrite: bool,
    report: str | None,
    workers: int,
    paired: bool,
    unpaired: bool,
    quiet: bool,
) -> None:
    """Turn images into a training dataset: one size, one colour mode, labels, a report of what was left out.

    SOURCE is a folder (searched recursively), a zip or image files (PNG, JPEG, GIF, WebP, BMP, TIFF);
    DEST, the last argument, is a .zip or a folder in the StyleGAN2-ADA dataset format, outside every SOURCE.

    \b
    Examples:
      ganforge prepare photos/ faces.zip --resolution 256 --fit crop
      ganforge prepare sprites/ sprites64.zip --resolution 64 --filter nearest --dedupe
      ganforge prepare a.png b.jpg c.webp tiny/ --resolution 32
      ganforge prepare edges2photos/ pairs.zip --paired --resolution 256    (A/ + B/, or A|B images)
      ganforge prepare horse2zebra/ h2z.zip --unpaired --resolution 128     (trainA/ + trainB/)
    """
    from ..data.prepare import PrepareOptions, prepare_to

    if len(sources) < 2:
        raise ConfigError(
            f"give at least one SOURCE and a DEST, e.g. ganforge prepare {sources[0]} dataset.zip "
            "(the last argument is where the dataset is written)"
        )
    *srcs, dest = sources
    if paired and unpaired:
        raise ConfigError("give --paired or --unpaired, not both")
    kind = "paired" if paired else "unpaired" if unpaired else None
    if kind and len(srcs) != 1:
        raise ConfigError(
            f"--{kind} takes one SOURCE folder (holding two sub-folders{', or side-by-side A|B images' if paired else ''}) "
            f"and a DEST, not {len(srcs)} sources"
        )
    opts = PrepareOptions(
        resolution=resolution,
        fit=fit,
        filter=filter_,
        background=background,
        channels=int(channels),
        dedupe=dedupe,
        labels=labels,
        label_key=label_key,
        folder_labels=folder_labels,
        captions=captions,
        workers=workers,
    )
    opts.validate()
    if resolution is not None and resolution & (resolution - 1):
        click.echo(
            f"note: {resolution} is not a power of two; most model families need one (e.g. 64, 128, 256)", err=True
        )
    if kind:
        _prepare_two_sided(srcs[0], dest, kind, opts, overwrite=overwrite, report=report, quiet=quiet)
        return
    data = prepare_to(srcs, dest, opts, overwrite=overwrite, report_path=report, progress=not quiet)

    s = data.summary()
    r = s["resolution"]
    if s.get("kind") == "voxels":  # a folder of voxel grids / meshes (ganforge.data.voxels)
        click.echo(f"wrote {data.dest}: {s['kept']} shapes, {r}x{r}x{r} voxels")
    else:
        click.echo(f"wrote {data.dest}: {s['kept']} images, {r}x{r} {_channel_name(s['channels'])}")
    line = f"kept {s['kept']}, skipped {s['skipped']}, duplicates {s['duplicates']}, ignored {s['ignored']}"
    if data.labels is not None:
        shown = ", ".join(data.class_names[:8]) + (", ..." if len(data.class_names) > 8 else "")
        line += f", classes {s['classes']} ({shown})"
    else:
        line += ", classes 0 (unlabelled)"
    if data.captions is not None:
        line += ", captioned"
    click.echo(line)
    _echo_left_out(data)


def _echo_left_out(data) -> None:
    """What both summaries end with: how nearest resized (when box reduced some images), earlier datasets not
    read, the first skipped files, the report."""
    if data.filter_note:
        click.echo(data.filter_note)
    n = sum(k for _, k in data.in_datasets)
    if n:
        folders = ", ".join(folder for folder, _ in data.in_datasets[:3])
        folders += ", ..." if len(data.in_datasets) > 3 else ""
        click.echo(f"skipped {n} files in ganforge datasets inside the source ({folders}): earlier outputs")
    for file, reason in data.skipped[:_SHOW_SKIPPED]:
        click.echo(f"  skipped {file}: {reason}")
    if len(data.skipped) > _SHOW_SKIPPED:
        click.echo(f"  ... and {len(data.skipped) - _SHOW_SKIPPED} more skipped")
    if data.skipped or data.duplicates or data.ignored or data.in_datasets:
        click.echo(f"report: {data.report} (every file left out, with the reason)")


def _prepare_two_sided(
    src: str, dest: str, kind: str, opts, *, overwrite: bool, report: str | None, quiet: bool
) -> None:
    from ..data.prepare import prepare_two_sided_to

    data = prepare_two_sided_to(src, dest, kind, opts, overwrite=overwrite, report_path=report, progress=not quiet)
    s = data.summary()
    r = s["resolution"]
    a, b = data.domains
    click.echo(f"wrote {data.dest}: {kind} dataset, {r}x{r} {_channel_name(s['channels'])}")
    if kind == "paired":
        line = f"paired: {_plural(s['a'], 'pair')} ({a} -> {b})"
    else:
        line = f"unpaired: {_plural(s['a'], 'image')} in {a}, {_plural(s['b'], 'image')} in {b}"
    line += f", {s['skipped']} skipped"
    if s["duplicates"]:
        line += f", {s['duplicates']} duplicates"
    if s["ignored"]:
        line += f", {s['ignored']} ignored"
    click.echo(line)
    _echo_left_out(data)


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


@click.group("datasets")
def datasets() -> None:
    """The built-in datasets: list them, or export one to a folder of PNGs (with labels.csv)."""


@datasets.command("list")
def datasets_list() -> None:
    """Name and one line on each built-in dataset (usable as --data NAME, or exported with `export`)."""
    from ..data import builtin

    for name, text in builtin.describe().items():
        click.echo(f"{name:<14} {text}")


@datasets.command("export")
@click.argument("name")
@click.argument("dest", type=click.Path(file_okay=False))
def datasets_export(name: str, dest: str) -> None:
    """Write the built-in dataset NAME into the new folder DEST as PNG files.

    \b
    Image sets: DEST/images/*.png, and DEST/labels.csv (file,label) when labelled; emoji also gets
    ATTRIBUTION.md (Twemoji, CC-BY 4.0: keep it with the images). Paired sets: DEST/A/ and DEST/B/;
    unpaired: one folder per domain. Then, e.g.:
      ganforge datasets export emoji twemoji/
      ganforge prepare twemoji/images sprites.zip --labels twemoji/labels.csv
    """
    from ..data import builtin

    if name not in builtin.names():
        raise ConfigError(
            f"no built-in dataset '{name}'; `ganforge datasets list` shows them ({', '.join(builtin.names())})"
        )
    s = builtin.export(name, dest)
    where = s.get("folder") or ", ".join(map(str, s.get("folders", [])))  # type: ignore[arg-type]
    click.echo(f"wrote {s['images']:,} images of '{name}' to {where}")
    if "labels" in s:
        click.echo(f"labels: {s['labels']} ({s['classes']} classes)")
    if "captions" in s:
        click.echo(f"captions: {s['captions']}")
    if "attribution" in s:
        click.echo(f"license: {s['attribution']} (keep it with the images)")
