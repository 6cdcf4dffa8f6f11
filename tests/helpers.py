"""Helpers shared by tests: tiny datasets and configurations (import as `from helpers import ...`)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import numpy as np

from ganforge.config import TrainConfig
from ganforge.data.archive import ArchiveData, write_archive


def make_archive(path, n: int = 40, res: int = 16, classes: int = 0, channels: int = 3, seed: int = 0):
    """A small prepared dataset of coloured blobs, written in the StyleGAN2-ADA archive format."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:res, 0:res]
    imgs = np.zeros((n, res, res, channels), np.uint8)
    labels = rng.integers(0, max(classes, 1), n) if classes else None
    for i in range(n):
        cx, cy, r = rng.uniform(res * 0.3, res * 0.7, 2).tolist() + [rng.uniform(res * 0.15, res * 0.35)]
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
        color = rng.integers(0, 256, channels)
        imgs[i] = 255
        imgs[i][mask] = color
    names = [f"c{k}" for k in range(classes)] if classes else []
    write_archive(ArchiveData(imgs, labels, names), path)
    return path


def tiny_config(tmp_path, data: str, model: str = "dcgan", **kw) -> TrainConfig:
    fam = kw.pop("family", {"ngf": 8, "ndf": 8, "nz": 8} if model == "dcgan" else {})
    base = dict(
        data=data, model=model, steps=4, batch=8, runs_dir=str(tmp_path / "runs"), run="t",
        sample_every=1000, ckpt_every=1000, log_every=1, grid_size=4, precision="fp32", family=fam,
        threads=2,  # fixed: --threads 0 follows other processes' load, and thread counts change float sums
    )
    base.update(kw)
    return TrainConfig(**base)


def blob_pair(rng, res: int):
    """A filled disc (target) and its outline (source): pix2pix's 'edges -> photo' setting in small."""
    yy, xx = np.mgrid[0:res, 0:res]
    cx, cy, r = rng.uniform(res * 0.3, res * 0.7), rng.uniform(res * 0.3, res * 0.7), rng.uniform(res * 0.15, res * 0.3)
    d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
    fill = np.full((res, res, 3), 255, np.uint8)
    fill[d < r] = rng.integers(0, 200, 3)
    edge = np.full((res, res, 3), 255, np.uint8)
    edge[np.abs(d - r) < 1.0] = 0
    return edge, fill


def make_paired_folder(root, n: int = 12, res: int = 16, seed: int = 0):
    """A paired folder: A/ (outlines) and B/ (filled discs), matched by file name."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "A").mkdir(parents=True)
    (root / "B").mkdir()
    for i in range(n):
        edge, fill = blob_pair(rng, res)
        Image.fromarray(edge).save(root / "A" / f"{i:03d}.png")
        Image.fromarray(fill).save(root / "B" / f"{i:03d}.png")
    return root


# Captions of `make_captioned_archive`'s images: a colour word and a shape word, so that text decides the image.
CAPTION_COLOURS = {"red": (220, 30, 30), "green": (30, 170, 60), "blue": (40, 60, 220)}
CAPTION_SHAPES = ("disc", "square")


def make_captioned_archive(path, n: int = 24, res: int = 16, seed: int = 0):
    """A small captioned dataset: coloured discs and squares on white, captioned "red disc", "blue square", ...
    (dataset.json's "captions", as `ganforge prepare --captions` writes it)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:res, 0:res]
    imgs = np.full((n, res, res, 3), 255, np.uint8)
    captions = []
    for i in range(n):
        colour = list(CAPTION_COLOURS)[i % len(CAPTION_COLOURS)]
        shape = CAPTION_SHAPES[(i // len(CAPTION_COLOURS)) % len(CAPTION_SHAPES)]
        cx, cy, r = rng.uniform(res * 0.35, res * 0.65, 2).tolist() + [rng.uniform(res * 0.2, res * 0.3)]
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r if shape == "disc" else (abs(xx - cx) < r) & (abs(yy - cy) < r)
        imgs[i][mask] = CAPTION_COLOURS[colour]
        captions.append(f"{colour} {shape}")
    write_archive(ArchiveData(imgs, None, [], captions=captions), path)
    return path


# ---- the studio in a real browser (tests/serve) -----------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")  # Debian's chromium; Playwright drives it, no browser download
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class Server:
    """uvicorn serving an app on a free loopback port in a thread, started and stopped by the test:
    `with Server(app) as url: ...`."""

    def __init__(self, app):
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
