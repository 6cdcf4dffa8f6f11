"""`ganforge import`: networks made by other tools, as ganforge runs."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("import", context_settings={"show_default": True})
@click.argument("network", type=click.Path(exists=True, dir_okay=False))
@click.option("--run", default=None, help="Run name [default: the file's name].")
@click.option("--runs-dir", default="runs", type=click.Path(file_okay=False), help="Folder that holds runs.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run of that name.")
def import_(network: str, run: str | None, runs_dir: str, overwrite: bool) -> None:
    """Import an NVlabs StyleGAN2-ADA network pickle (network-snapshot-*.pkl, ffhq.pkl, ...) as a run.

    Networks from stylegan2-ada-pytorch and the stylegan3 repository's --cfg=stylegan2 are read; StyleGAN3
    (alias-free) generators are refused. The file is read as data: its embedded Python source is never run,
    and a pickle that holds anything but network data is refused. Then generate, mix, project, eval and serve use the run like any other,
    and `train --resume-from NETWORK.pkl` fine-tunes from it."""
    from ..interop.nvlabs import import_network

    name = run or Path(network).stem
    run_dir = import_network(network, Path(runs_dir) / name, overwrite=overwrite)
    from ..sample.model import Model

    m = Model.load(run_dir)
    click.echo(
        f"imported {Path(network).name} -> {run_dir}: stylegan2 {m.spec.resolution}px, {m.spec.channels} channels, "
        f"{m.spec.num_classes or 'no'} classes, z {m.latent_shape[0]}. Try: ganforge generate {run_dir} --seeds 0-7 --trunc 0.7 --grid"
    )
