"""`ganforge export`, `push` and `report`: sharing a trained model and showing how it trained."""

from __future__ import annotations

from pathlib import Path

import click

from .. import vocab


@click.command(context_settings={"show_default": True})
@click.argument("run")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["onnx", "safetensors"]),
    required=True,
    help="onnx: one ONNX file of the generator; safetensors: a self-contained folder (weights, config, model card).",
)
@click.option(
    "--out",
    type=click.Path(),
    default=None,
    help="onnx: the .onnx file; safetensors: the folder [default: RUN/exported/NAME-stepN(.onnx)].",
)
@click.option("--opset", type=click.IntRange(18, 23), default=18, help="ONNX opset (onnx only).")
@click.option(
    "--direction",
    type=click.Choice(vocab.DIRECTIONS),
    default=None,
    help="Two-way models (CycleGAN), onnx: which direction [default: AtoB].",
)
@click.option(
    "--tolerance",
    type=click.FloatRange(0, 1),
    default=1e-3,
    help="onnx: max |ONNX - PyTorch| accepted on the check seeds.",
)
@click.option("--checkpoint", default="latest", help="latest, best or a step number.")
@click.option(
    "--license",
    "license_",
    default=None,
    help="safetensors: license id for the model card (e.g. cc-by-4.0, mit) [default: from the data].",
)
@click.option("--overwrite", is_flag=True, help="safetensors: replace a folder written by an earlier export.")
def export(
    run: str,
    fmt: str,
    out: str | None,
    opset: int,
    direction: str | None,
    tolerance: float,
    checkpoint: str,
    license_: str | None,
    overwrite: bool,
) -> None:
    """Export the generator of a trained RUN (its EMA weights, as `generate` uses) to share it.

    --format onnx writes one ONNX file with a dynamic batch axis and checks it against PyTorch with
    onnxruntime on random seeds (pip install 'ganforge[onnx]'). --format safetensors writes a folder that
    `ganforge.load`, `generate` and the runs directory of `serve` accept, with a README model card."""
    from ..sample.model import Model

    if fmt == "onnx":
        from ..share.onnx_export import export_onnx

        model = Model.load(run, checkpoint=checkpoint, device="cpu")
        path = Path(out) if out else model.run_dir / "exported" / f"{model.run_dir.name}-step{model.step}.onnx"
        if path.suffix.lower() != ".onnx":
            raise click.BadParameter("give a .onnx file", param_hint="--out")
        res = export_onnx(model, path, opset=opset, direction=direction, tolerance=tolerance)
        click.echo(f"wrote {res.path} ({model.family.name}, step {model.step}, opset {res.opset})")
        for name, desc in res.inputs.items():
            click.echo(f"  input  {name}: {desc}")
        for name, desc in res.outputs.items():
            click.echo(f"  output {name}: {desc} in [-1, 1]")
        for note in res.notes:
            click.echo(f"  note: {note}")
        click.echo(f"checked with onnxruntime: max abs diff {res.max_abs_diff:.3g} (tolerance {res.tolerance:g})")
        return
    from ..share.folder import export_folder
    from ..share.onnx_export import DEFAULT_OPSET

    if opset != DEFAULT_OPSET or direction is not None:
        raise click.BadParameter("--opset and --direction apply to --format onnx only")
    from ..sample.model import find_run

    run_dir = find_run(run)
    if out is None:
        from .. import checkpoint as ckpt

        step = int(ckpt.read_meta(ckpt.resolve_checkpoint(run_dir, checkpoint))["step"])
        out = str(run_dir / "exported" / f"{run_dir.name}-step{step}")
    folder = export_folder(run_dir, out, checkpoint=checkpoint, license=license_, overwrite=overwrite)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    click.echo(f"wrote {folder} ({size / 1e6:.1f} MB: generator weights, config, model card README.md)")
    click.echo(f"load it with ganforge.load({str(folder)!r}) or `ganforge generate {folder}`")


@click.command(context_settings={"show_default": True})
@click.argument("run")
@click.argument("repo_id")
@click.option("--private", is_flag=True, help="Create the repository as private (when it does not exist yet).")
@click.option("--checkpoint", default="latest", help="latest, best or a step number.")
@click.option("--license", "license_", default=None, help="License id for the model card [default: from the data].")
@click.option("--message", default=None, help="Commit message.")
def push(run: str, repo_id: str, private: bool, checkpoint: str, license_: str | None, message: str | None) -> None:
    """Upload a trained RUN to the Hugging Face Hub as REPO_ID (OWNER/NAME): the folder of
    `export --format safetensors`. Then anyone can ganforge.load("hf:OWNER/NAME"). Needs
    pip install 'ganforge[hub]' and a login (`hf auth login` or HF_TOKEN)."""
    from ..share.hub import push as push_run

    url = push_run(run, repo_id, private=private, checkpoint=checkpoint, license=license_, message=message)
    click.echo(f"pushed {run} to {url}")
    click.echo(f'load it with ganforge.load("hf:{repo_id}") or `ganforge generate hf:{repo_id}`')


@click.command(context_settings={"show_default": True})
@click.argument("run")
@click.option(
    "--out", type=click.Path(dir_okay=False), default=None, help="HTML file to write [default: RUN/report.html]."
)
@click.option(
    "--max-grids",
    type=click.IntRange(1, 100),
    default=12,
    help="Sample grids in the timeline (evenly spaced, always the last).",
)
@click.option(
    "--pairs",
    type=click.IntRange(0, 64),
    default=6,
    help="Image-to-image runs: dataset images translated for the input/output table.",
)
def report(run: str, out: str | None, max_grids: int, pairs: int) -> None:
    """Write one self-contained HTML page about a RUN: configuration, loss and metric curves, the sample-grid
    timeline, the final metrics and (image-to-image) input/output pairs. Needs pip install 'ganforge[report]'."""
    from ..report import write_report
    from ..sample.model import find_run

    run_dir = find_run(run)
    path = Path(out) if out else run_dir / "report.html"
    info = write_report(run_dir, path, max_grids=max_grids, pairs=pairs)
    click.echo(f"wrote {path} ({info['bytes'] / 1e6:.1f} MB, {info['grids']} grids, {info['plots']} plots)")
    for note in info["notes"]:
        click.echo(f"  note: {note}")
