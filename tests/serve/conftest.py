"""Tiny trained runs for the studio's tests, made once per session in a temporary RUNS_DIR: an
unconditional and a class-conditional DCGAN, a StyleGAN2, a pix2pix, plus damaged and half-made
folders that the studio must show without failing."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

pytest.importorskip("fastapi", reason="the studio needs the serve extra: pip install 'ganforge[serve]'")

from helpers import CHROMIUM, CHROMIUM_ARGS, make_archive, make_paired_folder, tiny_config  # noqa: E402

SG_TINY = {"cfg": "small", "z_dim": 16, "channel_base": 64, "channel_max": 16, "map_layers": 1}


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory):
    from ganforge.training.loop import train

    tmp = tmp_path_factory.mktemp("studio")
    plain = str(make_archive(tmp / "blobs.zip"))
    labelled = str(make_archive(tmp / "blobs3.zip", classes=3))
    paired = str(make_paired_folder(tmp / "edges2blobs"))

    def tiny(run, data, model="dcgan", **kw):
        cfg = tiny_config(tmp, data, model=model, run=run, **kw)
        return train(cfg, progress=False).run_dir

    tiny("dc", plain, steps=4, sample_every=2, ckpt_every=2)
    tiny("dccond", labelled, cond=True, steps=2)
    tiny("sg", plain, model="stylegan2", family=SG_TINY, steps=2)
    tiny("p2p", paired, model="pix2pix", family={"ngf": 4, "ndf": 4}, steps=2)
    runs = tmp / "runs"
    # A run still "training" whose process is gone, with a torn and a garbage line in its log.
    dead = runs / "crashed"
    dead.mkdir()
    (dead / "config.json").write_text(json.dumps({"model": "dcgan", "data": "/data/faces.zip", "steps": 100}))
    (dead / "metrics.jsonl").write_bytes(
        b'{"step": 1, "loss_D": 1.5, "loss_G": 0.7}\n\x00\xffgarbage\n[1, 2]\n{"step": 2, "loss_D": NaN, "fid": 80.5}\n{"step": 3, "loss_'
    )
    (dead / "status.json").write_text(
        json.dumps({"state": "training", "pid": _dead_pid(), "step": 2, "updated": time.time()})
    )
    # Not runs: a hidden folder, a plain folder, a file.
    (runs / ".hidden").mkdir()
    (runs / ".hidden" / "config.json").write_text("{}")
    (runs / "notarun").mkdir()
    (runs / "README.txt").write_text("hello")
    return runs


def _dead_pid() -> int:
    """A process id that is not running: a child that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture(scope="session")
def app(runs_dir):
    from ganforge.serve import create_app

    return create_app(runs_dir)


@pytest.fixture(scope="session")
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def browser():
    """Headless Debian chromium through Playwright, one per test module; skips where either is missing."""
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install playwright)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()
