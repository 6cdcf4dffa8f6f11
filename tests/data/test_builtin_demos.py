"""The procedural demo sets for image-to-image models: `edges2shapes` (paired) and `day2night` (unpaired)."""

from __future__ import annotations

import numpy as np
import pytest

from ganforge.data import builtin
from ganforge.data.builtin import day2night_arrays, edges2shapes_arrays, inner_boundary
from ganforge.data.dataset import PairedDataset, UnpairedDataset, load_dataset
from ganforge.errors import DataError


def _colour_changes(img: np.ndarray) -> np.ndarray:
    """Pixels of a coloured (non-white) region with an 8-neighbour of another colour. (H, W, 3) -> (H, W)."""
    h, w = img.shape[:2]
    padded = np.pad(img, ((1, 1), (1, 1), (0, 0)), mode="edge")
    change = np.zeros((h, w), dtype=bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            change |= (padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] != img).any(-1)
    return change & (img != 255).any(-1)


def test_edges2shapes_is_deterministic_and_has_the_promised_shapes():
    edges, shapes = edges2shapes_arrays()
    assert edges.shape == shapes.shape == (1000, 32, 32, 3) and edges.dtype == shapes.dtype == np.uint8
    again = edges2shapes_arrays()
    assert (again[0] == edges).all() and (again[1] == shapes).all()
    assert set(np.unique(edges)) == {0, 255}  # black outlines on white
    assert (shapes != 255).any(-1).any((1, 2)).all()  # every image holds a shape
    assert len({s.tobytes() for s in shapes}) == 1000  # all different


def test_edges2shapes_outlines_lie_on_the_shapes_boundaries():
    edges, shapes = edges2shapes_arrays(200)
    for e, s in zip(edges, shapes):
        outline = (e == 0).all(-1)
        assert (outline == _colour_changes(s)).all()  # exactly the inner boundary of each coloured region
    # Wider outlines at larger sizes are still the regions' own side of each colour change.
    edges, shapes = edges2shapes_arrays(20, resolution=128)
    for e, s in zip(edges, shapes):
        outline = (e == 0).all(-1)
        assert outline.any() and (s[outline] != 255).any(-1).all()
        assert (outline | ~_colour_changes(s)).all()


def test_inner_boundary_is_the_regions_side_of_each_change():
    regions = np.zeros((1, 7, 7), dtype=np.uint8)
    regions[0, 2:5, 2:5] = 1  # a 3x3 square: every pixel but the centre is on its boundary
    b = inner_boundary(regions, 1)[0]
    assert b.sum() == 8 and not b[3, 3] and not b[1, 1]
    regions[0, 1:6, 1:6] = 1  # 5x5: a 2-px boundary leaves only the centre
    assert inner_boundary(regions, 2)[0].sum() == 24


def test_day2night_is_deterministic_two_domains_of_different_scenes():
    day, night = day2night_arrays()
    assert day.shape == night.shape == (500, 32, 32, 3) and day.dtype == np.uint8
    again = day2night_arrays()
    assert (again[0] == day).all() and (again[1] == night).all()
    assert day.mean() > 2 * night.mean()  # bright days, dark nights
    assert (
        day[..., 2].mean() > day[..., 0].mean() and night[:, :8, :, 2].mean() > night[:, :8, :, 0].mean()
    )  # blue skies
    lit = (night[..., 0] > 200) & (night[..., 1] > 180) & (night[..., 2] < 160)  # yellow windows
    assert lit.any((1, 2)).mean() > 0.9
    assert len({d.tobytes() for d in day}) == 500


@pytest.mark.parametrize(
    "name, kind, cls, domains",
    [
        ("edges2shapes", "paired", PairedDataset, ["edges", "shapes"]),
        ("day2night", "unpaired", UnpairedDataset, ["day", "night"]),
    ],
)
def test_demo_sets_load_as_the_kind_a_family_asks_for(name, kind, cls, domains):
    assert name in builtin.names() and kind in builtin.describe()[name]
    ds = load_dataset(name, kinds=(kind,))
    assert isinstance(ds, cls) and ds.domains == domains and ds.spec().kind == kind
    assert load_dataset(f"builtin:{name}", kinds=(kind,), resolution=16, channels=1).spec().resolution == 16
    batch = ds.stream(4, 0, xflip=True).next()
    assert all(v.shape == (4, 3, 32, 32) for v in batch.values())
    model = "pix2pix" if kind == "paired" else "cyclegan"
    with pytest.raises(DataError, match=rf"{name} is an? {kind} dataset .*--model {model}"):
        load_dataset(name)  # an image family
    cropped = load_dataset(name, kinds=(kind,), options={"crop": 24})
    assert cropped.spec().resolution == 24


def test_edges2shapes_pairs_stay_aligned_through_crops_and_flips():
    ds = load_dataset("edges2shapes", kinds=("paired",), options={"crop": 24})
    batch = ds.stream(64, 1, xflip=True).next()
    src = batch["source"].permute(0, 2, 3, 1).numpy()  # (B, H, W, C) in [-1, 1]
    tgt = ((batch["target"].permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().astype(np.uint8)
    for s, t in zip(src, tgt):
        outline = (s < 0).all(-1)
        assert (t[outline] != 255).any(-1).all()  # every outline pixel of the crop is on a shape in the target


def test_the_demo_sets_are_fast_to_make():
    import time

    start = time.perf_counter()
    edges2shapes_arrays()
    day2night_arrays()
    assert time.perf_counter() - start < 10  # about a second on a laptop; generous for a busy CI machine
