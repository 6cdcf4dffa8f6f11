"""Built-in 2-D mixtures and the VEEGAN / PacGAN mode counting, on hand-made point sets."""

from __future__ import annotations

import math

import pytest
import torch

from ganforge.data import builtin
from ganforge.data.dataset import PointDataset, load_dataset
from ganforge.data.points import GRID_STD, RING_STD, grid_centers, mode_stats, ring_centers
from ganforge.errors import DataError


def test_ring_has_eight_distinct_modes_on_the_unit_circle():
    c = ring_centers()
    assert c.shape == (8, 2)
    assert torch.allclose(c.norm(dim=1), torch.ones(8), atol=1e-6)
    assert torch.cdist(c, c).add(torch.eye(8) * 10).min() == pytest.approx(2 * math.sin(math.pi / 8), abs=1e-5)
    assert torch.allclose(c[2], torch.tensor([0.0, 1.0]), atol=1e-6)  # angle 2*pi*2/8


def test_grid_means():
    c = grid_centers()
    assert c.shape == (25, 2)
    assert sorted(set(c[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    assert len({tuple(p) for p in c.tolist()}) == 25


@pytest.mark.parametrize(("name", "std", "n_modes"), [("ring8", RING_STD, 8), ("grid25", GRID_STD, 25)])
def test_builtin_point_sets(name, std, n_modes):
    assert name in builtin.names() and name in builtin.describe()
    ds = load_dataset(name)
    assert isinstance(ds, PointDataset) and ds.points.shape == (100_000, 2) and ds.std == std
    assert torch.equal(ds.points, load_dataset(name).points), "the sample is fixed"
    spec = ds.spec()
    assert spec.kind == "points" and spec.dim == 2
    # The data itself passes the benchmark: all modes, ~98.9 % within 3 std (chi-square, 2 dof: 1 - e^-4.5).
    st = mode_stats(ds.points[:2500], ds.centers, ds.std)
    assert st.modes == n_modes and st.hq_fraction == pytest.approx(1 - math.exp(-4.5), abs=0.01)
    assert st.kl < 0.02


def test_points_refuse_image_options():
    with pytest.raises(DataError, match="point data"):
        load_dataset("ring8", resolution=32)


def test_all_modes():
    c = grid_centers()
    st = mode_stats(c.repeat(4, 1) + 0.01, c, GRID_STD)
    assert (st.modes, st.num_modes, st.hq_fraction) == (25, 25, 1.0)
    assert st.counts == [4] * 25 and st.kl == pytest.approx(0.0, abs=1e-9)


def test_one_mode():
    c = ring_centers()
    st = mode_stats(c[3].repeat(2500, 1), c, RING_STD)
    assert (st.modes, st.hq_fraction) == (1, 1.0)
    assert st.kl == pytest.approx(math.log(8))


def test_off_mode_noise_is_neither_quality_nor_coverage():
    c = grid_centers()
    between = (c[:-1] + c[1:]) / 2  # midpoints between neighbouring modes: 1.0 away, far beyond 3 std
    st = mode_stats(between, c, GRID_STD)
    assert (st.modes, st.hq_fraction) == (0, 0.0)


def test_quality_threshold_is_three_std():
    c = ring_centers()
    inside = c[0] + torch.tensor([2.9 * RING_STD, 0.0])
    outside = c[1] * (1 + 3.1 * RING_STD)  # radially outwards, 3.1 std from mode 1
    st = mode_stats(torch.stack([inside, outside]), c, RING_STD)
    assert st.hq_fraction == 0.5 and st.modes == 1 and st.counts[0] == 1


def test_min_count_rule():
    c = ring_centers()
    pts = torch.cat([c[0].repeat(10, 1), c[1:2]])  # mode 1 has a single sample
    assert mode_stats(pts, c, RING_STD).modes == 2
    assert mode_stats(pts, c, RING_STD, min_count=2).modes == 1


def test_training_diagnostics_flag_collapse_on_points():
    from ganforge.families.base import DataSpec
    from ganforge.training.diagnostics import Diagnostics

    ds = load_dataset("grid25")
    diag = Diagnostics(spec=DataSpec(kind="points", dim=2))
    real = ds.points[:2500]
    collapsed = ds.centers[:3].repeat(800, 1)  # 3 of 25 modes
    assert diag.observe_points(5000, real, real, ds.centers, ds.std) == []
    (msg,) = diag.observe_points(5000, collapsed, real, ds.centers, ds.std)
    assert "mode collapse" in msg and "3 of the data's 25 modes" in msg
    assert diag.observe_points(10, collapsed, real, ds.centers, ds.std) == [], "no warning during warm-up"
