"""The engine: fp16 loss scaling updated per optimizer step, unscaled gradient norms, single-device hooks."""

from __future__ import annotations

import math

import pytest
import torch

from ganforge.training.engine import Engine
from ganforge.training.loop import train
from helpers import tiny_config


@pytest.mark.parametrize(
    "model,family",
    [
        ("dcgan", {"ngf": 8, "ndf": 8, "nz": 8}),
        ("wgan-gp", {"ngf": 8, "ndf": 8, "nz": 8}),  # 5 critic steps per train_step: 6 optimizer steps
        ("vae", {"nz": 4, "nf": 4}),
    ],
)
def test_fp16_with_grad_scaler_trains(tmp_path, tiny_data, model, family):
    # Regression: with a GradScaler, n_critic > 1 raised "step() has already been called since the last
    # update()", and gradient norms were taken on scaled gradients (NaN at scale 65536), which the loop
    # then reported as divergence.
    # 16 steps: the VAE's summed pixel loss overflows fp16 at the initial scale (65536), and the scaler
    # halves it on each skipped step until gradients fit; those steps are reported, not treated as NaN.
    cfg = tiny_config(tmp_path, tiny_data, model=model, family=family, steps=16, precision="fp16")
    res = train(cfg, progress=False)
    assert res.step == 16
    losses = {k: v for k, v in res.last.items() if k.startswith("loss")}
    assert losses and all(math.isfinite(v) for v in losses.values()), res.last
    grads = {k: v for k, v in res.last.items() if k.startswith("grad")}
    assert grads and all(math.isfinite(v) and v < 1e4 for v in grads.values()), f"norms must be unscaled: {grads}"


def test_grad_norm_is_unscaled_and_step_updates_the_scale():
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    eng = Engine(torch.device("cpu"), torch.float16)
    assert eng.scaler is not None
    x = torch.randn(8, 4)
    loss = net(x).square().mean()
    eng.backward(loss)
    scaled = torch.cat([p.grad.flatten() for p in net.parameters()]).norm().item()
    norm = eng.grad_norm(net, opt)
    ref_net = torch.nn.Linear(4, 1)
    ref_net.load_state_dict(net.state_dict())
    ref_net(x).square().mean().backward()
    ref = torch.cat([p.grad.flatten() for p in ref_net.parameters()]).norm().item()
    assert norm == pytest.approx(ref, rel=1e-4) and scaled == pytest.approx(ref * 65536.0, rel=1e-3)
    for _ in range(3):  # several optimizer steps in one train_step are fine: the scale updates per step
        eng.step(opt)
        opt.zero_grad()
        eng.backward(net(x).square().mean())


def test_overflow_skips_the_step_and_reports_nan_norm():
    net = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    eng = Engine(torch.device("cpu"), torch.float16)
    before = [p.detach().clone() for p in net.parameters()]
    eng.backward(net(torch.full((1, 2), 1e36)).sum())  # scaled gradients overflow to inf
    assert math.isnan(eng.grad_norm(net, opt))
    eng.step(opt)
    assert eng.skipped_steps == 1
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters())), "an overflowing step is skipped"


def test_single_device_hooks_are_identities():
    eng = Engine(torch.device("cpu"))
    t = torch.tensor([1.0, 2.0])
    assert eng.is_main and eng.world_size == 1
    assert torch.equal(eng.reduce(t), t)
    nets = torch.nn.ModuleDict({"G": torch.nn.Linear(1, 1)})
    with eng.no_sync(nets["G"]):
        pass
    torch.manual_seed(3)
    a = eng.randn(4, 2)
    torch.manual_seed(3)
    assert torch.equal(a, torch.randn(4, 2))  # one process: the global batch is its own
    assert eng.reduce_logs({"x": 1.5}) == {"x": 1.5} and eng.any_process(True) and not eng.any_process(False)
