"""Issue 24 (a hostile-input pass) on the sampling side: translate/enhance/colorize never write over their
inputs or over each other, colorize and enhance refuse runs of the wrong kind naming the right command,
seeds given to the Python API are checked as the CLI checks them, `ganforge.load(nets="all")` works, and a
tiled enhance says how big its output is and how far it has got."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import ganforge
from ganforge.cli import main, parse_seeds
from ganforge.errors import ConfigError, GanforgeError
from ganforge.sample import progress as progress_mod
from ganforge.sample.seeds import MAX_SEED, check_seeds
from ganforge.sample.tiling import tile_count, translate_tiled
from helpers import make_archive, make_paired_folder, tiny_config

SR = {"ngf": 4, "n_blocks": 1, "ndf": 4, "d_dense": 8, "scale": 2, "crop": 16, "pretrain_steps": 1}
P2P = {"ngf": 4, "ndf": 4}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny runs, two steps each: paired pix2pix, colorize pix2pix, 2x SRGAN and DCGAN."""
    from ganforge.training.loop import train

    tmp = tmp_path_factory.mktemp("defects24")
    plain = str(make_archive(tmp / "blobs.zip"))
    paired = str(make_paired_folder(tmp / "pairs"))
    out = {}
    for name, data, model, fam in (
        ("p2p", paired, "pix2pix", P2P),
        ("color", plain, "pix2pix", {**P2P, "preset": "colorize"}),
        ("sr", plain, "srgan", SR),
        ("dc", plain, "dcgan", {"ngf": 8, "ndf": 8, "nz": 8}),
    ):
        out[name] = train(tiny_config(tmp, data, model=model, run=name, steps=2, family=fam), progress=False).run_dir
    return out


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_line_error(r, *needles):
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def _digest(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def photos(tmp_path):
    """src/x.png, src/sub/x.png (same name, other folder), src/y.jpg, a hidden file and a hidden folder."""
    root = tmp_path / "src"
    (root / "sub").mkdir(parents=True)
    (root / ".hidden").mkdir()
    rng = np.random.default_rng(0)
    for rel in ("x.png", "sub/x.png", "y.jpg", ".z.png", ".hidden/w.png"):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(root / rel)
    return root


# ---- 1. outputs never land on an input, nor on each other --------------------------------------------


@pytest.mark.parametrize("out", ["{src}", "{src}/", "{src}/out", "{src}/sub"])
def test_translate_refuses_an_output_folder_inside_an_input(runs, photos, out):
    before = _digest(photos)
    r = cli("translate", runs["p2p"], photos, "--out", out.format(src=photos))
    one_line_error(r, "input folder", "choose an --out outside")
    assert _digest(photos) == before  # nothing written, nothing replaced


def test_translate_refuses_an_output_that_is_an_input_file(runs, photos):
    before = _digest(photos)
    r = cli("translate", runs["p2p"], photos / "x.png", "--out", photos)
    one_line_error(r, f"would be {photos / 'x.png'}", "never replaces its inputs")
    # A hard link to an input is the input too.
    (photos.parent / "links").mkdir()
    (photos.parent / "links" / "x.png").hardlink_to(photos / "sub" / "x.png")
    r = cli("translate", runs["p2p"], photos / "sub" / "x.png", "--out", photos.parent / "links")
    one_line_error(r, "never replaces its inputs")
    assert _digest(photos) == before


def test_translate_keeps_the_sub_folder_layout(runs, photos, tmp_path):
    """src/x.png and src/sub/x.png used to both become out/x.png; hidden files stay out."""
    r = cli("translate", runs["p2p"], photos, "--out", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert sorted(_digest(tmp_path / "out")) == ["sub/x.png", "x.png", "y.png"]
    assert "wrote 3 images" in r.stdout


def test_translate_refuses_two_inputs_with_one_output(runs, photos, tmp_path):
    r = cli("translate", runs["p2p"], photos / "x.png", photos / "sub" / "x.png", "--out", tmp_path / "out")
    one_line_error(r, f"{photos / 'x.png'} and {photos / 'sub' / 'x.png'} would both be written to")
    assert not (tmp_path / "out").exists()
    Image.new("RGB", (8, 8)).save(photos / "y.png")  # y.jpg and y.png: one folder, one output name
    r = cli("translate", runs["p2p"], photos, "--out", tmp_path / "out")
    one_line_error(r, "y.jpg", "y.png", "would both be written to")
    # The same file named twice is translated once.
    r = cli("translate", runs["p2p"], photos / "x.png", photos / "x.png", "--out", tmp_path / "out")
    assert r.exit_code == 0 and "wrote 1 images" in r.stdout


def test_default_output_inside_the_input_run_folder_is_refused(runs, photos):
    r = cli("translate", runs["p2p"], runs["p2p"])
    one_line_error(r, "is inside the input folder")


# ---- 2. colorize and enhance name the right command ------------------------------------------------


def test_colorize_refuses_a_run_without_the_colorize_preset(runs, photos, tmp_path):
    r = cli("colorize", runs["p2p"], photos / "x.png", "--out", tmp_path / "c")
    one_line_error(r, "trained without a preset", "`ganforge colorize`", "--set preset=colorize", "`ganforge translate")
    assert not (tmp_path / "c").exists()
    r = cli("colorize", runs["color"], photos / "x.png", "--out", tmp_path / "c")
    assert r.exit_code == 0, r.output
    with Image.open(tmp_path / "c" / "x.png") as im:
        assert im.size == (24, 20)


def test_enhance_of_a_non_superres_run_names_enhance(runs, photos):
    r = cli("enhance", runs["p2p"], photos / "x.png")
    one_line_error(r, "`ganforge enhance`", "super-resolution")
    assert "enhanced`" not in r.stderr


# ---- 3. seeds in the Python API, ganforge.load(nets="all") -----------------------------------------


@pytest.mark.parametrize(
    "seeds,needle",
    [
        ([-1], "out of range"),
        ([1.5], "not a whole number"),
        ([2**40], "out of range"),
        ([MAX_SEED + 1], "out of range"),
        ([], "no seeds given"),
        ("", "no seeds given"),
        ("3-1", "runs backwards"),
        ("-1", "cannot be negative"),
        ([True], "not a whole number"),
        (np.array([0.5]), "not a whole number"),
        (None, "not NoneType"),
        (range(2_000_000), "more than 1,000,000"),
        (range(-1, 2), "outside"),
    ],
)
def test_generate_refuses_bad_seeds_as_the_cli_does(runs, seeds, needle):
    model = ganforge.load(runs["dc"])
    with pytest.raises(ConfigError, match=needle) as info:
        model.generate(seeds=seeds)
    assert "\n" not in str(info.value)


def test_generate_takes_the_cli_seed_syntax_and_integer_arrays(runs):
    model = ganforge.load(runs["dc"])
    ref = model.generate(seeds=[0, 1, 2, 3, 7], output="tensor")
    for seeds in ("0-3,7", np.array([0, 1, 2, 3, 7]), torch.tensor([0, 1, 2, 3, 7]), [np.int64(0), 1, 2, 3, 7]):
        assert torch.equal(model.generate(seeds=seeds, output="tensor"), ref)
    assert torch.equal(model.generate(seeds=7, output="tensor"), ref[4:])
    assert torch.equal(model.generate(seeds=[MAX_SEED], output="tensor"), model.generate(seeds=str(MAX_SEED), output="tensor"))


def test_cli_and_api_share_one_seed_parser():
    assert parse_seeds("0-3,7") == check_seeds("0-3,7") == [0, 1, 2, 3, 7]
    for bad in ("-1", "4294967296", "1.5", "a"):
        with pytest.raises(GanforgeError):
            parse_seeds(bad)
        with pytest.raises(GanforgeError):
            check_seeds(bad)


def test_load_with_all_nets(runs):
    full = ganforge.load(runs["dc"], nets="all")
    assert "D" in full.nets and "G" in full.nets
    assert "D" not in ganforge.load(runs["dc"]).nets
    with pytest.raises(ConfigError, match="nets must be"):
        ganforge.load(runs["dc"], nets="discriminator")
    assert ganforge.load(runs["dc"].name, runs_dir=runs["dc"].parent).step == 2


# ---- 5. a tiled enhance says what it is doing -------------------------------------------------------


def test_tile_count_matches_the_tiles_run():
    calls = []
    img = np.zeros((70, 100, 3), np.uint8)
    translate_tiled(lambda x: x, img, scale=1, tile=32, overlap=8, progress=lambda d, t: calls.append((d, t)))
    n = tile_count(70, 100, tile=32, overlap=8)
    assert calls == [(i + 1, n) for i in range(n)] and n > 1


def test_enhance_prints_the_output_size_and_progress_off_a_terminal(runs, tmp_path, monkeypatch):
    monkeypatch.setattr(progress_mod, "EVERY", 0.0)  # a plain line at every tile (every 30 s in real use)
    src = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (300, 520, 3), dtype=np.uint8)).save(src)
    model = ganforge.load(runs["sr"])
    w, h, tiles = model.output_plan(520, 300)
    assert (w, h) == (1040, 600) and tiles > 1
    r = cli("enhance", runs["sr"], src, "--out", tmp_path / "out")
    assert r.exit_code == 0, r.output
    err = r.stderr.splitlines()
    assert err[0] == f"{src}: 520x300 -> 1040x600 px (2 MB uncompressed), in {tiles} tiles"
    lines = [x for x in err if " tiles (" in x]
    assert lines and lines[0].startswith(f"big.png: 1/{tiles} tiles (") and "left" in lines[0]
    with Image.open(tmp_path / "out" / "big.png") as im:
        assert im.size == (1040, 600)


def test_progress_lines_and_durations(monkeypatch):
    import io

    buf = io.StringIO()
    p = progress_mod.Progress(10, "tiles", "x.png", file=buf, every=0.0)
    for _ in range(10):
        p.update()
    out = buf.getvalue().splitlines()
    assert len(out) == 9 and out[0].startswith("x.png: 1/10 tiles (10%)")  # none at the end: the caller says "wrote"
    assert progress_mod.duration(3725) == "1h02m" and progress_mod.duration(95) == "1m35s"
    quiet = io.StringIO()
    with progress_mod.Progress(10, "tiles", enabled=False, file=quiet, every=0.0) as p:
        p.update(5)
    assert quiet.getvalue() == ""
