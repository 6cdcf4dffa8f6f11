"""CycleGAN: the image-input contract on tiny unpaired data (with a full image pool, so that resuming
exercises the pool's state and its random draws), the pool's semantics, the learning-rate schedule,
both translation directions and the CLI defaults."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from contract import ImageFamilyContract
from PIL import Image

from ganforge.families.base import StepContext
from ganforge.families.cyclegan import CycleGAN, CycleGANConfig, ImagePool, ResnetGenerator, lr_factor
from ganforge.sample.model import Model
from ganforge.spec import DataSpec
from ganforge.training.loop import train
from helpers import tiny_config

TINY = {"ngf": 4, "ndf": 4, "n_blocks": 1, "pool_size": 6}


@pytest.fixture
def unpaired_blobs(tmp_path):
    """Domain A: dark discs on white; domain B: white squares on dark (16 px)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "discs2squares"
    for side, n in (("trainA", 10), ("trainB", 12)):
        (root / side).mkdir(parents=True)
        for i in range(n):
            yy, xx = np.mgrid[0:16, 0:16]
            cx, cy, r = rng.uniform(5, 11, 3).tolist()[:2] + [rng.uniform(2, 5)]
            if side == "trainA":
                img = np.full((16, 16, 3), 255, np.uint8)
                img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.integers(0, 120, 3)
            else:
                img = np.full((16, 16, 3), 20, np.uint8)
                img[(abs(xx - cx) < r) & (abs(yy - cy) < r)] = rng.integers(150, 256, 3)
            Image.fromarray(img).save(root / side / f"{i:03d}.png")
    return str(root)


class TestCycleGANContract(ImageFamilyContract):
    model = "cyclegan"
    settings = TINY
    data = "unpaired_blobs"


def test_pool_fills_first_then_returns_current_or_swaps():
    pool = ImagePool(3)
    first = torch.arange(3, dtype=torch.float32).view(3, 1, 1, 1).expand(3, 1, 2, 2)
    assert torch.equal(pool.query(first), first)  # filling: each image is stored and returned
    assert pool.count == 3 and torch.equal(pool.state(), first)
    torch.manual_seed(0)
    current, swapped = 0, 0
    for k in range(400):
        img = torch.full((1, 1, 2, 2), 100.0 + k)
        before = pool.state().clone()
        out = pool.query(img)
        if torch.equal(out, img):
            current += 1
            assert torch.equal(pool.state(), before), "returning the current image leaves the pool alone"
        else:
            swapped += 1
            i = [j for j in range(3) if torch.equal(before[j], out[0])]
            assert len(i) == 1, "the returned image is one that was stored"
            assert torch.equal(pool.state()[i[0]], img[0]), "and the current image takes its place"
    assert 150 < current < 250 and current + swapped == 400  # probability 1/2 each


def test_pool_state_round_trip_and_size_zero():
    torch.manual_seed(1)
    a = ImagePool(4)
    a.query(torch.randn(6, 3, 4, 4))
    b = ImagePool(4)
    b.load(a.state().clone())
    torch.manual_seed(2)
    ya = a.query(torch.ones(5, 3, 4, 4))
    torch.manual_seed(2)
    yb = b.query(torch.ones(5, 3, 4, 4))
    assert torch.equal(ya, yb) and torch.equal(a.state(), b.state())
    x = torch.randn(2, 3, 4, 4)
    assert ImagePool(0).query(x) is x


def test_lr_is_constant_then_decays_linearly_to_zero():
    assert [lr_factor(s, 100, 0.5) for s in (0, 25, 49, 50)] == [1.0, 1.0, 1.0, 1.0]
    assert lr_factor(75, 100, 0.5) == pytest.approx(0.5)
    assert lr_factor(99, 100, 0.5) == pytest.approx(0.02)
    assert lr_factor(100, 100, 0.5) == 0.0
    assert lr_factor(10, 0, 0.5) == 1.0  # unknown length: constant
    assert lr_factor(99, 100, 1.0) == 1.0


def test_train_step_sets_the_scheduled_lr():
    fam = CycleGAN()
    spec = DataSpec(kind="unpaired", resolution=16, channels=3, in_resolution=16, in_channels=3)
    cfg = CycleGANConfig(ngf=2, ndf=2, n_blocks=1)
    nets = fam.build(cfg, spec)
    opts = fam.optimizers(nets, cfg)
    ctx = StepContext()
    ctx.total_steps = 100  # what the loop tells families about the run's length
    batch = {"A": torch.rand(2, 3, 16, 16) * 2 - 1, "B": torch.rand(2, 3, 16, 16) * 2 - 1}
    logs = fam.train_step(nets, opts, batch, 75, ctx)
    assert logs["lr_scale"] == pytest.approx(0.5)
    assert all(g["lr"] == pytest.approx(1e-4) for o in opts.values() for g in o.param_groups)
    nets.cfg = CycleGANConfig(ngf=2, ndf=2, n_blocks=1, schedule_steps=80)  # an explicit length wins
    assert fam.train_step(nets, opts, batch, 75, ctx)["lr_scale"] == pytest.approx(5 / 40)


def test_schedule_survives_resume(tmp_path, unpaired_blobs):
    fam = {**TINY, "schedule_steps": 4}

    def lr_scales(run_dir):
        lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        return [x["lr_scale"] for x in lines if "lr_scale" in x]

    a = train(tiny_config(tmp_path, unpaired_blobs, model="cyclegan", family=fam, steps=4, run="a"), progress=False)
    train(
        tiny_config(tmp_path, unpaired_blobs, model="cyclegan", family=fam, steps=4, run="b"), progress=False, stop_at=3
    )
    b = train(
        tiny_config(tmp_path, unpaired_blobs, model="cyclegan", family=fam, steps=4, run="b"),
        resume=True,
        progress=False,
    )
    assert lr_scales(a.run_dir) == [1.0, 1.0, 1.0, 0.5]
    assert lr_scales(b.run_dir)[-1] == 0.5


def test_both_directions_round_trip_and_previews(tmp_path, unpaired_blobs):
    res = train(tiny_config(tmp_path, unpaired_blobs, model="cyclegan", family=TINY, steps=2), progress=False)
    model = Model.load(res.run_dir)
    assert set(model.nets) == {"G_AB", "G_BA"} and model.capabilities.directions == ("AtoB", "BtoA")
    a = torch.rand(2, 3, 20, 24) * 2 - 1  # any size: padded to a multiple of 4, cropped back
    b = model.translate(a, direction="AtoB", output="tensor")
    back = model.translate(b, direction="BtoA", output="tensor")
    assert b.shape == back.shape == (2, 3, 20, 24)
    assert not torch.allclose(model.translate(a, direction="BtoA", output="tensor"), b), "two different generators"
    with Image.open(res.run_dir / "samples" / "grid-000002.png") as im:
        assert im.size[0] == 4 * (16 + 1) + 1  # A | G_AB(A) | B | G_BA(B)
    meta = json.loads(next((res.run_dir / "checkpoints").glob("step-*.json")).read_text())
    assert meta["family"] == "cyclegan"


def test_resnet_generator_blocks_and_shapes():
    fam = CycleGAN()
    spec = lambda r: DataSpec(kind="unpaired", resolution=r, channels=3)  # noqa: E731
    assert fam.blocks(CycleGANConfig(), spec(128)) == 6 and fam.blocks(CycleGANConfig(), spec(256)) == 9
    G = ResnetGenerator(3, 3, ngf=2, n_blocks=2)
    assert G(torch.zeros(1, 3, 32, 28)).shape == (1, 3, 32, 28)


def test_cli_defaults_to_day2night_batch_4():
    from ganforge.cli import main

    r = CliRunner().invoke(main, ["train", "--model", "cyclegan", "--dry-run"])
    assert r.exit_code == 0, r.output
    cfg = json.loads(r.output)
    assert (cfg["data"], cfg["batch"]) == ("day2night", 4)
    fam = cfg["family"]
    assert (fam["cycle_weight"], fam["identity_weight"], fam["pool_size"], fam["loss"]) == (10.0, 0.5, 50, "lsgan")
    r = CliRunner().invoke(main, ["train", "--model", "cyclegan", "--batch", "1", "--dry-run"])
    assert json.loads(r.output)["batch"] == 1
