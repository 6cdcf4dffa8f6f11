"""gan3d (3D-GAN) through the family contract on shapes3d at 8^3, plus its D gate, losses, meshes and renderings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from contract import NoiseFamilyContract
from PIL import Image

from ganforge.cli import main
from ganforge.errors import ConfigError
from ganforge.families.base import DataSpec, StepContext
from ganforge.families.gan3d import GAN3D, GAN3DConfig
from ganforge.sample.model import Model
from ganforge.sample.shapes import marching_cubes, render_voxels, write_obj, write_ply
from ganforge.training.loop import train
from helpers import tiny_config

TINY = {"ngf": 4, "ndf": 4, "nz": 8}
LOOP = {"resolution": 8, "channels_last": False}


class TestGAN3DContract(NoiseFamilyContract):
    model = "gan3d"
    settings = TINY
    data = "shapes3d"
    loop = LOOP
    expect_shape = (1, 8, 8, 8)


class TestGAN3DConditionalContract(NoiseFamilyContract):
    model = "gan3d"
    settings = {**TINY, "loss": "hinge"}
    data = "shapes3d"
    loop = LOOP
    cond = True


@pytest.mark.parametrize("loss", ["wgan-gp", "lsgan"])
def test_other_losses(tmp_path, loss):
    cfg = tiny_config(
        tmp_path, "shapes3d", model="gan3d", family={**TINY, "loss": loss}, steps=2, resolution=16, channels_last=False
    )
    res = train(cfg, progress=False)
    assert {"loss_D", "loss_G"} <= set(res.last) and all(np.isfinite(v) for v in res.last.values())
    x = Model.load(res.run_dir).generate([0, 1], output="tensor")
    assert x.shape == (2, 1, 16, 16, 16) and not torch.equal(x[0], x[1])


def test_samples_are_occupancy_in_range_and_default_loop_settings(tmp_path):
    res = train(tiny_config(tmp_path, "shapes3d", model="gan3d", family=TINY, steps=1, **LOOP), progress=False)
    x = Model.load(res.run_dir).generate(list(range(4)), output="tensor")
    assert x.min() >= -1 and x.max() <= 1
    assert GAN3D.loop_defaults["data"] == "shapes3d" and GAN3DConfig().nz == 200  # the paper's z
    with Image.open(res.run_dir / "samples" / "grid-000001.png") as im:  # the loop's preview shows renderings
        arr = np.asarray(im.convert("RGB"))
    assert arr.shape[0] > 64, "a grid of 64 px renderings, not of 8 px slices"


def test_d_is_held_while_its_accuracy_is_above_the_gate():
    fam = GAN3D()
    cfg = GAN3DConfig(**TINY, d_gate=0.8)
    nets = fam.build(cfg, DataSpec(kind="voxels", resolution=8, channels=1))
    opts = fam.optimizers(nets, cfg)
    real = torch.from_numpy(np.random.default_rng(0).random((4, 1, 8, 8, 8)) > 0.5).float() * 2 - 1
    ctx = StepContext("cpu")
    d0 = {k: v.clone() for k, v in nets["D"].state_dict().items() if v.is_floating_point()}
    g0 = [p.clone() for p in nets["G"].parameters()]
    nets.state["d_acc"] = 0.95  # D won the last batch: no D update this step
    logs = fam.train_step(nets, opts, {"image": real}, 0, ctx)
    assert logs["d_updated"] == 0.0 and "loss_D" not in logs
    for k, v in nets["D"].state_dict().items():
        if k in d0 and "running" not in k:  # BN statistics move with every forward; weights must not
            assert torch.equal(v, d0[k]), k
    assert any(not torch.equal(p, q) for p, q in zip(nets["G"].parameters(), g0)), "G still trains"
    assert 0.0 <= nets.state["d_acc"] <= 1.0
    nets.state["d_acc"] = 0.5
    logs = fam.train_step(nets, opts, {"image": real}, 1, ctx)
    assert logs["d_updated"] == 1.0 and "loss_D" in logs
    assert fam.state_dict(nets) == {"d_acc": nets.state["d_acc"]}


def test_check_refuses_images_and_bad_settings():
    fam = GAN3D()
    with pytest.raises(ConfigError, match="cannot train on image data"):
        fam.check(GAN3DConfig(), DataSpec(kind="image", resolution=16))
    with pytest.raises(ConfigError, match="power-of-two"):
        fam.check(GAN3DConfig(), DataSpec(kind="voxels", resolution=12))
    with pytest.raises(ConfigError, match="unknown loss"):
        fam.check(GAN3DConfig(loss="minimax"), DataSpec(kind="voxels", resolution=16))


def test_generate_writes_meshes_and_renderings_and_interpolate_walks(tmp_path):
    pytest.importorskip("skimage")  # marching cubes (the `shapes` extra)
    res = train(
        tiny_config(tmp_path, "shapes3d", model="gan3d", family=TINY, steps=2, cond=True, **LOOP), progress=False
    )
    out = tmp_path / "gen"
    r = CliRunner().invoke(main, ["generate", str(res.run_dir), "--seeds", "0-3", "--out", str(out)])
    assert r.exit_code == 0, r.output
    grid = out / "grid-seeds-0-3.png"
    assert grid.exists() and "meshes" in r.output
    for f in out.glob("seed*.obj"):
        text = f.read_text().splitlines()
        assert any(t.startswith("v ") for t in text) and any(t.startswith("f ") for t in text)
        assert (out / f"{f.stem}.ply").read_text().startswith("ply\nformat ascii 1.0\n")
    r = CliRunner().invoke(
        main, ["generate", str(res.run_dir), "--seeds", "0-3", "--grid", "--out", str(tmp_path / "g.png")]
    )
    assert r.exit_code == 0 and (tmp_path / "g.png").exists()
    pil = Model.load(res.run_dir).generate([0, 1], output="pil")
    assert pil[0].size == (64, 64)
    r = CliRunner().invoke(
        main, ["interpolate", str(res.run_dir), "--seeds", "0,1", "--frames", "3", "--out", str(tmp_path / "walk.gif")]
    )
    assert r.exit_code == 0, r.output
    with Image.open(tmp_path / "walk.gif") as im:
        assert im.n_frames == 6 and im.size == (64, 64)


def _sphere(r: int, radius: float) -> np.ndarray:
    t = -1 + (np.arange(r) + 0.5) * 2 / r
    x, y, z = np.meshgrid(t, t, t, indexing="ij")
    return x**2 + y**2 + z**2 <= radius**2


def test_renderer_draws_the_shape_where_it_is():
    empty = render_voxels(np.zeros((8, 8, 8), bool), 64)
    assert empty.shape == (64, 64, 3) and (empty == 255).all()
    img = render_voxels(_sphere(16, 0.6), 64)
    shaded = (img < 250).any(-1)
    assert 0.05 < shaded.mean() < 0.5
    ys, xs = np.nonzero(shaded)
    assert abs(xs.mean() - 31.5) < 3 and abs(ys.mean() - 31.5) < 3, "a centred sphere renders centred"
    assert len(np.unique(img[shaded].reshape(-1, 3), axis=0)) >= 3, "faces are shaded by their direction"
    # Up is up: a slab at the top of the grid (y high) renders in the upper half of the picture.
    slab = np.zeros((16, 16, 16), bool)
    slab[4:12, 12:15, 4:12] = True
    ys, _ = np.nonzero((render_voxels(slab, 64) < 250).any(-1))
    assert ys.mean() < 28


def test_marching_cubes_mesh_encloses_the_voxels(tmp_path):
    pytest.importorskip("skimage")
    occ = _sphere(16, 0.6)
    verts, faces = marching_cubes(occ.astype(np.float32) * 2 - 1)
    assert len(faces) > 100 and np.abs(verts).max() < 1.0
    tri = verts[faces]  # (F, 3, 3): signed volume by the divergence theorem (outward faces: positive)
    volume = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
    voxel_volume = occ.sum() * (2 / 16) ** 3
    assert abs(volume - voxel_volume) / voxel_volume < 0.15, (volume, voxel_volume)
    write_obj(tmp_path / "s.obj", verts, faces)
    write_ply(tmp_path / "s.ply", verts, faces)
    trimesh = pytest.importorskip("trimesh")
    for name in ("s.obj", "s.ply"):
        m = trimesh.load(tmp_path / name, force="mesh", process=False)
        assert len(m.faces) == len(faces) and m.is_watertight
        assert abs(m.volume - volume) < 1e-3
