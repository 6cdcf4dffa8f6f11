"""Tiny trained runs shared by the sharing tests (trained once per session: a few CPU-seconds)."""

from __future__ import annotations

import pytest

from helpers import make_archive, make_paired_folder, tiny_config

SG2 = {
    "cfg": "small",
    "z_dim": 16,
    "channel_base": 64,
    "channel_max": 16,
    "map_layers": 1,
    "r1_interval": 2,
    "pl_interval": 2,
}
P2P = {"ngf": 4, "ndf": 4}


def _train(root, name: str, **kw):
    from ganforge.training.loop import train

    cfg = tiny_config(root, run=name, steps=4, sample_every=2, ckpt_every=2, **kw)
    return train(cfg, progress=False).run_dir


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """name -> run folder: dcgan, dcgan-cond (3 classes), stylegan2-cond, pix2pix."""
    root = tmp_path_factory.mktemp("share-runs")
    data = str(make_archive(root / "tiny.zip"))
    labelled = str(make_archive(root / "tiny-labelled.zip", classes=3))
    pairs = str(make_paired_folder(root / "pairs"))
    return {
        "dcgan": _train(root, "dcgan", data=data),
        "dcgan-cond": _train(root, "dcgan-cond", data=labelled, cond=True),
        "stylegan2-cond": _train(root, "stylegan2-cond", data=labelled, cond=True, model="stylegan2", family=SG2),
        "pix2pix": _train(root, "pix2pix", data=pairs, model="pix2pix", family=P2P),
    }
