"""generate --scale (nearest enlargement) and --grid --annotate (seed/class under each cell)."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner
from PIL import Image

from ganforge.cli import main
from ganforge.sample.annotate import LabelledGridCanvas, labelled_grid_size


def run(args):
    return CliRunner().invoke(main, args)


def test_scale_is_exact_nearest_enlargement(runs, tmp_path):
    assert run(["generate", str(runs["dcgan"]), "--seeds", "5", "--out", str(tmp_path / "a")]).exit_code == 0
    r = run(["generate", str(runs["dcgan"]), "--seeds", "5", "--scale", "3", "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    small = np.asarray(Image.open(tmp_path / "a" / "seed0005.png"))
    big = np.asarray(Image.open(tmp_path / "b" / "seed0005.png"))
    assert big.shape == (48, 48, 3)
    assert np.array_equal(big, small.repeat(3, axis=0).repeat(3, axis=1))


def test_scaled_grid(runs, tmp_path):
    r = run(
        ["generate", str(runs["dcgan"]), "--seeds", "0-3", "--grid", "--scale", "2", "--out", str(tmp_path / "g.png")]
    )
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "g.png").size == (2 * (2 * 17 + 1), 2 * (2 * 17 + 1))


def test_annotated_grid_has_captions(runs, tmp_path):
    path = tmp_path / "ann.png"
    r = run(
        [
            "generate",
            str(runs["dcgan-cond"]),
            "--seeds",
            "0-5",
            "--grid",
            "--annotate",
            "--scale",
            "4",
            "--out",
            str(path),
        ]
    )
    assert r.exit_code == 0, r.output
    img = np.asarray(Image.open(path).convert("L"))
    assert img.shape[::-1] == labelled_grid_size(6, 16, 16, scale=4)
    strip = img[1 + 64 : 1 + 64 + 15, 1 : 1 + 64]  # the caption strip under the first cell
    assert (strip < 128).sum() > 10  # dark text pixels on white
    r = run(["generate", str(runs["dcgan"]), "--seeds", "0-3", "--annotate"])
    assert r.exit_code == 2 and "add --grid" in r.output


def test_captions_are_cut_to_the_cell():
    import torch

    canvas = LabelledGridCanvas(2, 8, 8, 3)
    canvas.add(torch.zeros(2, 3, 8, 8), ["12345678901234567890", "7"])
    assert canvas.image().size == labelled_grid_size(2, 8, 8)
    assert canvas._fit("12345678901234567890").endswith("…")
