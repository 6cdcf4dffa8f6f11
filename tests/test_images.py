"""ganforge.images: the one guarded decoder (regular files only, pixel-bomb limit, EXIF orientation, alpha on a
background, one-line errors) and the tensor <-> numpy <-> PIL <-> PNG conversions, and the commands that read
real images through it (`ganforge project`, the VAE image walk of `ganforge interpolate`)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ganforge import images
from ganforge.cli import main
from ganforge.errors import DataError
from ganforge.images import (
    array_to_pil,
    from_uint8,
    open_image,
    pil_to_array,
    pil_to_tensor,
    pixel_limit,
    png_bytes,
    tensor_to_pil,
    to_pil,
    to_uint8,
)
from helpers import make_archive, tiny_config
from hostile import png_claiming
from test_reliability_cli import assert_one_line_error

TIMEOUT = 20.0  # seconds: far more than any of these takes, far less than forever


def _within(fn, fifo=None, timeout: float = TIMEOUT):
    """fn() run in a thread that must finish within `timeout`: a read blocked on a FIFO fails the test instead of
    hanging it (the reader is then released by opening the FIFO for writing)."""
    out: dict = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        if fifo is not None:
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # unblocks a reader stuck in open()
            except OSError:
                pass
        pytest.fail(f"still running after {timeout:.0f} s: blocked reading {fifo or 'something'}?")
    if "error" in out:
        raise out["error"]
    return out.get("value")


def _one_line(exc: pytest.ExceptionInfo, *parts: str) -> str:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    for p in parts:
        assert p in msg, msg
    return msg


# ---- decoding --------------------------------------------------------------------------------------------


def test_alpha_is_flattened_on_the_background(tmp_path):
    arr = np.zeros((2, 3, 4), np.uint8)
    arr[0, 0] = (255, 0, 0, 0)  # fully transparent red: the background shows
    arr[0, 1] = (0, 0, 255, 255)  # opaque blue
    arr[0, 2] = (0, 0, 0, 128)  # half-transparent black: half way to the background
    path = tmp_path / "alpha.png"
    Image.fromarray(arr, "RGBA").save(path)

    rgb = open_image(path)
    assert rgb.mode == "RGB" and rgb.size == (3, 2)
    px = np.asarray(rgb)
    assert tuple(px[0, 0]) == (255, 255, 255) and tuple(px[0, 1]) == (0, 0, 255)
    assert all(abs(int(v) - 127) <= 1 for v in px[0, 2])
    assert tuple(np.asarray(open_image(path, background=(0, 0, 0)))[0, 0]) == (0, 0, 0)
    gray = open_image(path, mode="L")
    assert gray.mode == "L" and np.asarray(gray)[0, 0] == 255
    assert open_image(path, mode="RGBA").mode == "RGBA"
    assert np.array_equal(np.asarray(open_image(path, mode=None)), arr), "mode=None: the file's own pixels"
    with pytest.raises(ValueError, match="mode"):
        open_image(path, mode="CMYK")


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation 6: stored sideways, shown rotated 90 degrees clockwise
    path = tmp_path / "rotated.jpg"
    Image.new("RGB", (32, 16), (200, 30, 30)).save(path, "JPEG", exif=exif.tobytes())
    assert Image.open(path).size == (32, 16)
    assert open_image(path).size == (16, 32)
    assert open_image(path.read_bytes(), mode=None).size == (16, 32), "bytes (an upload) too"


def test_a_pixel_bomb_is_refused_from_its_header(tmp_path):
    small = tmp_path / "small.png"
    Image.new("RGB", (100, 100)).save(small)
    with pytest.raises(DataError) as e:
        open_image(small, max_pixels=5000)
    _one_line(e, str(small), "100x100 = 10,000 pixels, over the pixel limit of 5,000 (decompression-bomb protection)")
    assert open_image(small, max_pixels=10_000).size == (100, 100), "at the limit is fine"

    # Headers claiming more than the limit: between one and two times it PIL only warns, above it PIL refuses;
    # both are refused with the limit in the message, as `prepare` words it, and nothing is decoded.
    for w, h in ((10_000, 10_000), (100_000, 100_000)):
        bomb = tmp_path / f"bomb-{w}.png"
        bomb.write_bytes(png_claiming(w, h))
        for src in (bomb, bomb.read_bytes()):
            with pytest.raises(DataError) as e:
                open_image(src)
            _one_line(e, "too large: ", f"over the pixel limit of {pixel_limit():,}", "decompression-bomb protection")
        assert str(bomb) in str(e.value) or "uploaded" in str(e.value)
    # max_pixels cannot raise the limit above PIL's
    with pytest.raises(DataError, match=f"over the pixel limit of {pixel_limit():,}"):
        open_image(tmp_path / "bomb-10000.png", max_pixels=10**12)


def test_a_fifo_is_refused_at_once(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    for mode in ("RGB", None):
        with pytest.raises(DataError) as e:
            _within(lambda mode=mode: open_image(fifo, mode=mode), fifo=fifo)
        _one_line(e, f"cannot read {fifo}", "a FIFO (named pipe)", "not a regular file")
    # and `prepare`'s own entry point, the same decoder
    from ganforge.data.prepare import load_image

    with pytest.raises(DataError, match="not a regular file"):
        _within(lambda: load_image(fifo), fifo=fifo)


def test_a_directory_a_truncated_file_and_others(tmp_path):
    with pytest.raises(DataError) as e:
        open_image(tmp_path)
    _one_line(e, f"cannot read {tmp_path}", "it is a directory, not a regular file")

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    cut = tmp_path / "cut.png"
    cut.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(DataError) as e:
        open_image(cut)
    _one_line(e, f"cannot read {cut}: truncated")

    for name, data, why in (
        ("empty.png", b"", "empty file: 0 bytes"),
        ("notes.png", b"these are notes, not a picture\n" * 4, "not a readable image"),
    ):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError) as e:
            open_image(tmp_path / name)
        _one_line(e, name, why)
    with pytest.raises(DataError) as e:
        open_image(tmp_path / "missing.png")
    _one_line(e, "missing.png", "no such file")
    with pytest.raises(DataError) as e:
        open_image(b"")
    _one_line(e, "the uploaded image", "empty")


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    arr = np.array([[0, 257, 65535]], np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(arr).save(path)
    assert np.asarray(open_image(path, mode="L")).tolist() == [[0, 1, 255]]
    assert np.asarray(open_image(path)).tolist() == [[[0] * 3, [1] * 3, [255] * 3]]


# ---- conversions -----------------------------------------------------------------------------------------


def test_uint8_round_trips_are_exact_at_every_level():
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    for arr in (levels[:, :, None], np.stack([levels, levels[::-1], levels.T], axis=2)):
        t = from_uint8(arr)  # (C, H, W) in [-1, 1]
        assert t.dtype == torch.float32 and t.shape == (arr.shape[2], 16, 16)
        assert float(t.min()) == -1.0 and float(t.max()) == 1.0
        assert np.array_equal(to_uint8(t), arr)
        im = tensor_to_pil(t)
        assert im.mode == ("L" if arr.shape[2] == 1 else "RGB")
        assert torch.equal(pil_to_tensor(im), t), "tensor -> PIL -> tensor is exact at uint8 levels"
        assert np.array_equal(pil_to_array(im), arr)
        batch = t[None].repeat(2, 1, 1, 1)
        assert np.array_equal(to_uint8(batch), np.stack([arr, arr]))
        assert torch.equal(from_uint8(to_uint8(batch)), batch)
        assert [np.array_equal(pil_to_array(p), arr) for p in to_pil(batch)] == [True, True]
    assert array_to_pil(np.zeros((2, 2, 4), np.uint8)).mode == "RGBA"
    assert to_uint8(torch.tensor([-3.0, 3.0]).view(2, 1, 1)).ravel().tolist() == [0, 255], "clamped to [-1, 1]"
    with pytest.raises(ValueError):
        from_uint8(np.zeros((2, 2), np.float32))


def test_png_bytes_decode_back():
    arr = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    t = from_uint8(arr)
    for src in (arr, array_to_pil(arr), t):
        data = png_bytes(src)
        assert data.startswith(b"\x89PNG")
        assert np.array_equal(pil_to_array(open_image(data)), arr)
    from ganforge.serve.images import png_bytes as studio_png

    assert np.array_equal(pil_to_array(open_image(studio_png(array_to_pil(arr)))), arr)
    gray = arr[:, :, :1]
    assert np.array_equal(pil_to_array(open_image(png_bytes(gray), mode="L")), gray)


def test_the_metrics_quantisation():
    from ganforge.metrics.evaluate import to_uint8 as metrics_uint8

    x = torch.linspace(-1, 1, 1001).view(1, 1, 1, -1)
    q = images.quantize(x)
    assert q.dtype == torch.uint8 and q.shape == x.shape and torch.equal(metrics_uint8(x), q)
    assert torch.equal(
        images.quantize(from_uint8(np.arange(256, dtype=np.uint8).reshape(1, 256, 1))).view(-1),
        torch.arange(256).to(torch.uint8),
    )


def test_the_module_sits_below_everything():
    """ganforge.images imports numpy, PIL and ganforge.errors, and torch only when a conversion needs it."""
    code = (
        "import sys, ganforge.images; "
        "mods = sorted(m for m in sys.modules if m.startswith('ganforge')); "
        "assert mods == ['ganforge', 'ganforge.errors', 'ganforge.images'], mods; "
        "assert 'torch' not in sys.modules"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


# ---- the commands that read real images ------------------------------------------------------------------


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    """A tiny unconditional VAE (one step): it can encode, so it walks between real images."""
    from ganforge.training.loop import train

    root = tmp_path_factory.mktemp("images")
    data = str(make_archive(root / "blobs.zip", n=16))
    return train(
        tiny_config(root, data, model="vae", run="vae", steps=1, family={"nz": 4, "nf": 4}), progress=False
    ).run_dir


@pytest.fixture
def bad_inputs(tmp_path):
    """A good image and the hostile ones: a pixel bomb's header and a FIFO, with what the error says."""
    ok = tmp_path / "ok.png"
    Image.new("RGB", (8, 8), "white").save(ok)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming(100_000, 100_000))
    cases = [(bomb, "over the pixel limit")]
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "fifo.png"
        os.mkfifo(fifo)
        cases.append((fifo, "a FIFO (named pipe), not a regular file"))
    return ok, cases


def test_image_walk_refuses_a_pixel_bomb_and_a_fifo_in_one_line(vae_run, bad_inputs, tmp_path):
    ok, cases = bad_inputs
    for bad, why in cases:
        args = [
            "interpolate",
            str(vae_run),
            "--images",
            str(ok),
            str(bad),
            "--frames",
            "2",
            "--out",
            str(tmp_path / "w.png"),
        ]
        r = _within(lambda args=args: CliRunner().invoke(main, args), fifo=bad)
        line = assert_one_line_error(r, why)
        assert str(bad) in line
    assert not (tmp_path / "w.png").exists()
    r = CliRunner().invoke(
        main,
        ["interpolate", str(vae_run), "--images", str(ok), str(ok), "--frames", "2", "--out", str(tmp_path / "w.png")],
    )
    assert r.exit_code == 0, r.output


def test_project_refuses_a_pixel_bomb_and_a_fifo_in_one_line(vae_run, bad_inputs):
    _, cases = bad_inputs
    for bad, why in cases:
        args = ["project", str(vae_run), str(bad), "--steps", "1"]
        r = _within(lambda args=args: CliRunner().invoke(main, args), fifo=bad)
        line = assert_one_line_error(r, why)
        assert str(bad) in line
