"""Voxel data: the procedural shapes3d set, the .binvox/.npy/.npz/mesh readers, the voxel archive and `prepare`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganforge.data import voxels
from ganforge.data.dataset import load_dataset
from ganforge.data.prepare import PrepareOptions, prepare_to
from ganforge.data.voxels import VoxelDataset, read_binvox, read_voxel_file, shapes3d_arrays, write_binvox
from ganforge.errors import DataError

HEADER = b"#binvox 1\ndim 2 2 2\ntranslate -0.5 -0.25 0\nscale 1.5\ndata\n"


def test_shapes3d_is_deterministic_labelled_and_resolution_free():
    a, la = shapes3d_arrays(per_class=3, resolution=16)
    b, lb = shapes3d_arrays(per_class=3, resolution=16)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert a.shape == (24, 16, 16, 16) and a.dtype == np.uint8
    assert la.tolist() == [i % 8 for i in range(24)]
    fill = a.reshape(24, -1).mean(1)
    assert (fill > 0.01).all() and (fill < 0.9).all(), "every shape is something, and not the whole cube"
    c, _ = shapes3d_arrays(per_class=3, resolution=16, seed=1)
    assert not np.array_equal(a, c), "another seed, other shapes"
    # The same shapes at another resolution: 32^3 averaged down to 16^3 is close to 16^3 made directly.
    hi, _ = shapes3d_arrays(per_class=3, resolution=32)
    down = voxels.resize_voxels(hi, 16)
    agree = (down == a).mean()
    assert agree > 0.95, agree


def test_shapes3d_builtin_loads_as_voxels():
    ds = load_dataset("shapes3d", resolution=8, kinds=("voxels",))
    assert isinstance(ds, VoxelDataset) and ds.kind == "voxels"
    assert len(ds) == 1200 and ds.num_classes == 8 and ds.class_names[6] == "chair"
    spec = ds.spec()
    assert (spec.kind, spec.resolution, spec.channels, spec.num_classes) == ("voxels", 8, 1, 8)
    assert ds.spec(conditional=False).num_classes == 0
    b = ds.stream(5, seed=0, xflip=True).next()
    assert b["image"].shape == (5, 1, 8, 8, 8) and set(b["image"].unique().tolist()) <= {-1.0, 1.0}
    assert b["label"].shape == (5,)
    ex = ds.class_examples([2, 5], per_class=3)
    assert ex["label"].tolist() == [2, 2, 2, 5, 5, 5]
    with pytest.raises(DataError, match="8, 16, 32 or 64"):
        load_dataset("shapes3d", resolution=12, kinds=("voxels",))
    with pytest.raises(DataError, match="channels"):
        load_dataset("shapes3d", resolution=8, channels=3, kinds=("voxels",))


def test_binvox_written_by_hand_from_the_format_description():
    # One voxel at x=1, y=0, z=1. Stored order: y fastest, then z, then x: index = x*W*H + z*W + y = 4 + 2 + 0 = 6.
    vox, translate, scale = read_binvox(HEADER + bytes([0, 6, 1, 1, 0, 1]))
    assert vox.shape == (2, 2, 2) and vox.sum() == 1 and vox[1, 0, 1]
    assert translate == (-0.5, -0.25, 0.0) and scale == 1.5
    # x=0, y=1, z=0: index 1 (y runs fastest): tells y and z apart.
    vox, _, _ = read_binvox(HEADER + bytes([0, 1, 1, 1, 0, 6]))
    assert vox.sum() == 1 and vox[0, 1, 0]
    # x=0, y=0, z=1: index 2.
    vox, _, _ = read_binvox(HEADER + bytes([0, 2, 1, 1, 0, 5]))
    assert vox.sum() == 1 and vox[0, 0, 1]


def test_binvox_round_trip_with_long_runs():
    rng = np.random.default_rng(0)
    v = np.zeros((20, 20, 20), bool)  # 8,000 voxels: runs longer than 255 must be split
    v[3:9, 2:15, 5:7] = True
    v[rng.random(v.shape) < 0.01] = True
    raw = write_binvox(v, (1, 2, 3), 0.5)
    assert raw.startswith(b"#binvox 1\ndim 20 20 20\n")
    back, t, s = read_binvox(raw)
    assert np.array_equal(back, v) and t == (1.0, 2.0, 3.0) and s == 0.5


@pytest.mark.parametrize(
    "raw, match",
    [
        (b"#binvox 1\ndim 2 2 2\ndata\n" + bytes([0, 6, 1, 1]), "runs hold 7 voxels"),
        (b"#binvox 1\ndim 2 2 2\ndata\n" + bytes([0, 6, 1]), "odd number"),
        (b"P6\n2 2\n255\n", "no 'data' line|does not start"),
        (b"#binvox 1\ndim 2 two 2\ndata\n", "malformed header"),
        (b"#binvox 1\ndim 9999 2 2\ndata\n", "three sides"),
    ],
)
def test_bad_binvox_is_one_line(tmp_path, raw, match):
    f = tmp_path / "bad.binvox"
    f.write_bytes(raw)
    with pytest.raises(DataError, match=match) as exc:
        read_voxel_file(f)
    assert "\n" not in str(exc.value) and "bad.binvox" in str(exc.value)


def test_npy_and_npz_grids(tmp_path):
    g = np.zeros((6, 4, 6), np.float32)  # not a cube: padded around its centre
    g[2:4, 1:3, 2:4] = 0.9
    np.save(tmp_path / "one.npy", g)
    (got,) = read_voxel_file(tmp_path / "one.npy")
    assert got.shape == (6, 6, 6) and got.sum() == 8 and got[2:4, 2:4, 2:4].all()
    stack = np.zeros((3, 4, 4, 4), bool)
    stack[1, 0, 0, 0] = True
    np.savez(tmp_path / "many.npz", voxels=stack, other=np.arange(3))
    grids = read_voxel_file(tmp_path / "many.npz")
    assert len(grids) == 3 and grids[1].sum() == 1 and grids[0].sum() == 0


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("text.npy", b"not numpy at all", "cannot read"),
        ("flat.npy", None, "not a voxel grid"),
        ("nan.npy", "nan", "NaN"),
        ("two.npz", "two", "name the grid 'voxels'"),
    ],
)
def test_bad_voxel_files_are_one_line(tmp_path, name, content, match):
    f = tmp_path / name
    if isinstance(content, bytes):
        f.write_bytes(content)
    elif content is None:
        np.save(f, np.zeros(5))
    elif content == "nan":
        np.save(f, np.full((2, 2, 2), np.nan))
    else:
        np.savez(f, a=np.zeros((2, 2, 2)), b=np.zeros((2, 2, 2)))
    with pytest.raises(DataError, match=match) as exc:
        read_voxel_file(f)
    assert "\n" not in str(exc.value)


def _shape_folder(root):
    """chairs/ and tables/: .npy, .npz and .binvox files, one broken file, one stray note."""
    vox, labels = shapes3d_arrays(per_class=2, resolution=8)
    (root / "chair").mkdir(parents=True)
    (root / "table").mkdir()
    chairs, tables = vox[labels == 6], vox[labels == 5]
    np.save(root / "chair" / "a.npy", chairs[0])
    (root / "chair" / "b.binvox").write_bytes(write_binvox(chairs[1].astype(bool)))
    np.savez(root / "table" / "c.npz", voxels=tables[0])
    (root / "table" / "d.binvox").write_bytes(write_binvox(tables[1].astype(bool)))
    (root / "table" / "broken.binvox").write_bytes(b"#binvox 1\ndim 8 8 8\ndata\n\x00")
    (root / "notes.txt").write_text("hello")
    return chairs, tables


def test_prepare_a_folder_of_voxel_files(tmp_path):
    chairs, tables = _shape_folder(tmp_path / "src")
    data = prepare_to([tmp_path / "src"], tmp_path / "shapes.zip", PrepareOptions())
    s = data.summary()
    assert s["kind"] == "voxels" and s["kept"] == 4 and s["skipped"] == 1 and s["resolution"] == 8
    assert data.class_names == ["chair", "table"]
    assert "broken.binvox" in data.skipped[0][0]
    ds = load_dataset(tmp_path / "shapes.zip", kinds=("voxels",))
    assert isinstance(ds, VoxelDataset) and len(ds) == 4 and ds.class_names == ["chair", "table"]
    assert ds.labels.tolist() == [0, 0, 1, 1]
    assert torch.equal(ds.voxels[1], torch.from_numpy(chairs[1])), "binvox read back in (x, y, z) order"
    assert torch.equal(ds.voxels[2], torch.from_numpy(tables[0]))
    # A folder destination, at another resolution; and a raw folder loads without prepare.
    prepare_to([tmp_path / "src"], tmp_path / "shapes16", PrepareOptions(resolution=16))
    assert load_dataset(tmp_path / "shapes16", kinds=("voxels",)).resolution == 16
    raw = load_dataset(tmp_path / "src", kinds=("voxels",))
    assert len(raw) == 4 and raw.left_out


def test_prepare_cli_says_shapes(tmp_path):
    from click.testing import CliRunner

    from ganforge.cli import main

    _shape_folder(tmp_path / "src")
    r = CliRunner().invoke(main, ["prepare", str(tmp_path / "src"), str(tmp_path / "out.zip"), "--quiet"])
    assert r.exit_code == 0, r.output
    assert "4 shapes, 8x8x8 voxels" in r.output and "classes 2" in r.output
    r = CliRunner().invoke(
        main,
        [
            "train",
            "--data",
            str(tmp_path / "out.zip"),
            "--model",
            "dcgan",
            "--steps",
            "1",
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
    )
    assert r.exit_code != 0 and "cannot train on voxels data" in r.output and "Traceback" not in r.output


def test_meshes_are_voxelised_with_trimesh(tmp_path):
    pytest.importorskip("trimesh")
    # A unit cube written by hand as OBJ (8 vertices, 12 triangles, outward).
    v = [(x, y, z) for x in (0, 1) for y in (0, 1) for z in (0, 1)]
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    lines = [f"v {x} {y} {z}" for x, y, z in v]
    for a, b, c, d in quads:
        lines += [f"f {a + 1} {b + 1} {c + 1}", f"f {a + 1} {c + 1} {d + 1}"]
    (tmp_path / "cube.obj").write_text("\n".join(lines) + "\n")
    (occ,) = read_voxel_file(tmp_path / "cube.obj", resolution=16)
    assert occ.shape == (16, 16, 16)
    assert occ.mean() > 0.5, "a cube fills most of the grid once filled, not only its shell"
    assert occ[8, 8, 8], "the inside is filled"
    (tmp_path / "bad.off").write_text("OFF\n3 1 0\n0 0 0\n")
    with pytest.raises(DataError, match="bad.off"):
        read_voxel_file(tmp_path / "bad.off")
