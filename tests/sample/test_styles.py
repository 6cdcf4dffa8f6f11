"""Style mixing and projection into W (stylegan2), on a tiny model, from Python and the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ganforge.cli import main
from ganforge.errors import ConfigError
from ganforge.sample.model import Model
from ganforge.sample.styles import project, style_mix
from ganforge.training.loop import train
from helpers import tiny_config

TINY = {"cfg": "small", "z_dim": 16, "channel_base": 64, "channel_max": 16, "map_layers": 1}


@pytest.fixture
def sg_run(tmp_path, tiny_data):
    return train(tiny_config(tmp_path, tiny_data, model="stylegan2", family=TINY, steps=2), progress=False).run_dir


def test_style_mix_grid(sg_run):
    model = Model.load(sg_run)
    grid = style_mix(model, [1, 2], [3, 4, 5], [0, 1])
    assert grid.shape == (3, 4, 3, 16, 16)
    assert torch.equal(grid[0, 0], torch.ones(3, 16, 16)), "the top-left cell is blank"
    one = model.generate([3], output="tensor")[0]
    assert torch.allclose(grid[0, 1], one, atol=1e-5), "the first row shows the column seeds"
    # Taking no styles from the column gives the row image; taking all gives the column image.
    n = model.family.num_ws(model.nets)
    assert torch.allclose(style_mix(model, [1], [3], [])[1, 1], grid[1, 0], atol=1e-5)
    assert torch.allclose(style_mix(model, [1], [3], list(range(n)))[1, 1], grid[0, 1], atol=1e-5)
    with pytest.raises(ConfigError, match="out of range"):
        style_mix(model, [1], [3], [n])


def test_projection_reduces_the_distance(sg_run):
    model = Model.load(sg_run)
    target = model.generate([7], output="tensor")
    res = project(model, target, steps=40, loss="pixel", every=10)
    assert res.loss.startswith("pixel") and res.w.shape == (model.family.num_ws(model.nets), 16)
    start = model.generate([0], trunc=0.0, output="tensor")  # the mean image, where projection starts
    d0 = (start - target).square().mean().item()
    d1 = (res.image[None] - target).square().mean().item()
    assert d1 < d0, (d0, d1)
    assert len(res.frames) == 5


def test_mix_and_project_cli(sg_run, tmp_path):
    r = CliRunner().invoke(main, ["mix", str(sg_run), "--rows", "0-1", "--cols", "2-3", "--styles", "0-1", "--out", str(tmp_path / "m.png")])
    assert r.exit_code == 0, r.output
    with Image.open(tmp_path / "m.png") as im:
        assert im.size == (3 * 17 + 1, 3 * 17 + 1)
    Image.fromarray(np.full((20, 20, 3), 200, np.uint8)).save(tmp_path / "t.png")
    r = CliRunner().invoke(main, ["project", str(sg_run), str(tmp_path / "t.png"), "--steps", "10", "--loss", "pixel", "--video", "--out", str(tmp_path / "p")])
    assert r.exit_code == 0, r.output
    assert "loss: pixel" in r.output
    assert {p.name for p in (tmp_path / "p").iterdir()} == {"projected_w.npz", "proj.png", "proj.gif"}
    w = np.load(tmp_path / "p" / "projected_w.npz", allow_pickle=False)["w"]
    assert w.shape[1] == 16


def test_mix_needs_a_w_space(tmp_path, tiny_data):
    run = train(tiny_config(tmp_path, tiny_data, steps=1), progress=False).run_dir
    r = CliRunner().invoke(main, ["mix", str(run)])
    assert r.exit_code == 2 and "no W space" in r.output
