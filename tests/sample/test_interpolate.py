"""Latent walks: the path maths, determinism, the three output formats and the CLI verb."""

from __future__ import annotations

import math
import os

import imageio.v3 as iio
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ganforge.cli import main
from ganforge.errors import ConfigError, MissingDependencyError
from ganforge.sample.grid import save_png, to_pil
from ganforge.sample.interpolate import latent_walk, lerp, save_walk, slerp, walk
from ganforge.sample.latents import latents_for_seeds
from ganforge.sample.model import Model
from ganforge.training.loop import train
from helpers import make_archive, tiny_config


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny trained runs, shared by the tests of this module: an unconditional dcgan, a conditional VAE
    and a point-data gan."""
    root = tmp_path_factory.mktemp("walks")
    data = str(make_archive(root / "blobs.zip", n=24, classes=2))
    out = {}
    out["dcgan"] = train(tiny_config(root, data, run="dcgan", steps=2), progress=False).run_dir
    out["vae"] = train(tiny_config(root, data, model="vae", run="vae", steps=2, cond=True, family={"nz": 4, "nf": 4}), progress=False).run_dir
    out["points"] = train(tiny_config(root, "ring8", model="gan", run="pts", steps=1, family={"g_width": 8, "d_width": 8}), progress=False).run_dir
    return out


def test_walk_shapes_and_ends():
    keys = torch.randn(3, 4)
    closed = walk(keys, 5, closed=True)
    assert closed.shape == (3, 5, 4)
    assert torch.equal(closed[0, 0], keys[0]) and torch.equal(closed[2, 0], keys[2])
    rows = walk(keys, 5, endpoints=True)
    assert rows.shape == (2, 6, 4)
    assert torch.allclose(rows[0, -1], keys[1]) and torch.allclose(rows[1, -1], keys[2])
    with pytest.raises(ConfigError, match="two keys"):
        walk(keys[:1], 5)


def test_lerp_and_slerp():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    t = torch.tensor([0.0, 0.5, 1.0])
    assert torch.allclose(lerp(a, b, t)[1], torch.tensor([0.5, 0.5]))
    s = slerp(a, b, t)
    assert torch.allclose(s[0], a, atol=1e-6) and torch.allclose(s[2], b, atol=1e-6)
    assert torch.allclose(s[1], torch.tensor([math.sqrt(0.5)] * 2), atol=1e-6), "great circle, unit norm"
    assert torch.allclose(slerp(a, 2 * a, t), lerp(a, 2 * a, t)), "parallel keys: a straight line"


def test_same_seeds_same_frames(runs):
    model = Model.load(runs["dcgan"])
    a = latent_walk(model, [3, 17, 42], 4, closed=True)
    b = latent_walk(Model.load(runs["dcgan"]), [3, 17, 42], 4, closed=True)
    assert a.shape == (3, 4, 3, 16, 16) and torch.equal(a, b)
    # The key frames are the seeds' own images.
    keys = model.generate([3, 17, 42], output="tensor")
    assert torch.allclose(a[:, 0], keys, atol=1e-5)
    spherical = latent_walk(model, [3, 17, 42], 4, closed=True, spherical=True)
    assert torch.allclose(spherical[:, 0], keys, atol=1e-5) and not torch.allclose(spherical, a)


def test_cli_gif_png_deterministic(runs, tmp_path):
    run = str(runs["dcgan"])
    args = ["interpolate", run, "--seeds", "3,17,42", "--frames", "4"]
    r1 = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "a.gif")])
    r2 = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "b.gif")])
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    assert (tmp_path / "a.gif").read_bytes() == (tmp_path / "b.gif").read_bytes()
    frames = iio.imread(tmp_path / "a.gif", index=None)
    assert frames.shape[0] == 12, "3 segments x 4 frames, looping back to the first seed"
    meta = iio.immeta(tmp_path / "a.gif", index=0)
    assert meta.get("loop") == 0, "loops forever"

    r = CliRunner().invoke(main, [*args, "--slerp", "--out", str(tmp_path / "grid.png"), "--scale", "2"])
    assert r.exit_code == 0, r.output
    # Two rows (3 -> 17, 17 -> 42) of 5 images (both ends) of 16 px, 1 px gutters, enlarged twice.
    assert Image.open(tmp_path / "grid.png").size == (2 * (5 * 17 + 1), 2 * (2 * 17 + 1))


def test_mp4_needs_the_video_extra(runs, tmp_path):
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        x = latent_walk(Model.load(runs["dcgan"]), [0, 1], 2)
        with pytest.raises(MissingDependencyError, match=r"ganforge\[video\]"):
            save_walk(x, tmp_path / "walk.mp4")
        r = CliRunner().invoke(main, ["interpolate", str(runs["dcgan"]), "--seeds", "0,1", "--out", str(tmp_path / "w.mp4")])
        assert r.exit_code == 2 and "video" in r.output
    else:
        x = latent_walk(Model.load(runs["dcgan"]), [0, 1], 2, closed=True)
        assert save_walk(x, tmp_path / "walk.mp4").stat().st_size > 0


def test_vae_walk_between_real_images(runs, tmp_path):
    model = Model.load(runs["vae"])
    imgs = to_pil(torch.rand(2, 3, 20, 20) * 2 - 1)  # another size: resized to the model's
    for i, im in enumerate(imgs):
        save_png(im, tmp_path / f"{i}.png")
    args = ["interpolate", str(runs["vae"]), "--images", str(tmp_path / "0.png"), str(tmp_path / "1.png"), "--frames", "3"]
    r = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "w.png")])
    assert r.exit_code == 2 and "--class" in r.output, "a conditional VAE needs the images' class"
    r = CliRunner().invoke(main, [*args, "--class", "c1", "--out", str(tmp_path / "w.png")])
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "w.png").size == (4 * 17 + 1, 17 + 1)
    # Seeds work for the VAE too (decoded prior samples), with a class for conditional models.
    r = CliRunner().invoke(main, ["interpolate", str(runs["vae"]), "--seeds", "1-3", "--class", "0", "--out", str(tmp_path / "s.gif")])
    assert r.exit_code == 0, r.output
    assert model.spec.num_classes == 2


def test_models_that_cannot_walk(runs, tmp_path):
    png = tmp_path / "x.png"
    save_png(Image.new("RGB", (16, 16)), png)
    r = CliRunner().invoke(main, ["interpolate", str(runs["dcgan"]), "--images", str(png), str(png)])
    assert r.exit_code == 2 and "cannot encode" in r.output
    r = CliRunner().invoke(main, ["interpolate", str(runs["points"]), "--seeds", "0,1"])
    assert r.exit_code == 2 and "points" in r.output
    r = CliRunner().invoke(main, ["interpolate", str(runs["dcgan"]), "--seeds", "0", "--out", str(tmp_path / "w.gif")])
    assert r.exit_code == 2 and "two" in r.output
    r = CliRunner().invoke(main, ["interpolate", str(runs["dcgan"]), "--seeds", "0,1", "--out", str(tmp_path / "w.webm")])
    assert r.exit_code == 2 and ".gif, .mp4 or .png" in r.output


def test_latents_match_generate(runs):
    model = Model.load(runs["dcgan"])
    z = latents_for_seeds([5], model.latent_shape)
    assert torch.allclose(model.sample_latents(z), model.generate([5], output="tensor"))


def test_walks_and_project_decode_images_as_prepare_does(runs, tmp_path):
    """A pixel bomb's header and a FIFO are refused with one line (no decode, no blocking read), as `prepare`
    refuses them: the VAE image walk and `ganforge project` go through prepare's guarded decoder."""
    from hostile import png_claiming

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming(100_000, 100_000))
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    ok = tmp_path / "ok.png"
    save_png(to_pil(torch.zeros(1, 3, 8, 8))[0], ok)
    for bad, why in ((bomb, "pixel"), (fifo, "not a regular file")):
        r = CliRunner().invoke(main, ["interpolate", str(runs["vae"]), "--images", str(ok), str(bad), "--class", "c1", "--out", str(tmp_path / "w.png")])
        assert r.exit_code == 2 and why in r.output and "Traceback" not in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1
        r = CliRunner().invoke(main, ["project", str(runs["dcgan"]), str(bad), "--steps", "1"])
        assert r.exit_code == 2 and why in r.output and "Traceback" not in r.output, r.output
