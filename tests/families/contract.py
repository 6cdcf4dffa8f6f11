"""The contract every family passes (imported by each family's test file).

Tiny config on CPU: two train steps with finite losses, right shapes, save/load gives identical
outputs, same seed gives the same samples.
"""

from __future__ import annotations

import math

import torch

from ganforge.sample.model import Model
from ganforge.training.loop import train
from helpers import tiny_config


def check_family_contract(tmp_path, data: str, model: str, family: dict, *, cond: bool = False, resolution=None, expect_shape=None):
    cfg = tiny_config(tmp_path, data, model=model, family=family, steps=2, cond=cond, resolution=resolution)
    res = train(cfg, progress=False)
    assert res.step == 2
    losses = {k: v for k, v in res.last.items() if k.startswith("loss")}
    assert losses, "train_step must report at least one loss"
    assert all(math.isfinite(v) for v in losses.values()), losses

    m1 = Model.load(res.run_dir)
    m2 = Model.load(res.run_dir)
    x1 = m1.generate([0, 1, 5], output="tensor")
    x2 = m2.generate([0, 1, 5], output="tensor")
    assert torch.equal(x1, x2), "save/load must give identical outputs"
    # Same seed, same sample, whatever the batch it is generated in.
    x3 = m1.generate([5], output="tensor")
    assert torch.allclose(x1[2:3], x3, atol=1e-5)
    assert not torch.allclose(x1[0], x1[1]), "different seeds should give different samples"
    if expect_shape is not None:
        assert tuple(x1.shape[1:]) == expect_shape
    if m1.spec.kind == "image":
        assert x1.min() >= -1 and x1.max() <= 1
        assert x1.shape[1:] == (m1.spec.channels, m1.spec.resolution, m1.spec.resolution)
    return res, m1
