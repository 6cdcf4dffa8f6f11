"""Gradient accumulation (--batch-gpu): a batch in micro-batches applies the gradient of the whole batch."""

from __future__ import annotations

import math

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from ganforge.cli import main
from ganforge.families.adversarial import Objective, adversarial_step, standard
from ganforge.families.base import StepContext
from ganforge.registry import get_family


class TapeContext(StepContext):
    """Noise read in order from one fixed stream, so that drawing 4 x 4 values equals drawing 16 (torch's
    own generator gives different numbers for one call of 16 and four calls of 4)."""

    def __init__(self, micro_batch: int) -> None:
        super().__init__("cpu")
        self.micro_batch = micro_batch
        self.tape = torch.randn(100_000, generator=torch.Generator().manual_seed(0))
        self.pos = 0

    def randn(self, n, *shape, device=None, dtype=None):  # noqa: ANN001
        k = n * math.prod(shape)
        out = self.tape[self.pos : self.pos + k].view(n, *shape)
        self.pos += k
        return out.to(dtype=dtype or torch.float32)


class TinyG(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 6))

    def forward(self, z, labels=None):  # noqa: ANN001
        return self.net(z)


class TinyD(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))

    def forward(self, x, labels=None):  # noqa: ANN001
        return self.net(x).flatten()


def _adversarial_run(micro: int, objective: Objective) -> tuple[dict[str, float], list[torch.Tensor]]:
    torch.manual_seed(1)
    G, D = TinyG(), TinyD()
    opts = {"G": torch.optim.SGD(G.parameters(), lr=0.1), "D": torch.optim.SGD(D.parameters(), lr=0.1)}
    real = torch.randn(16, 6, generator=torch.Generator().manual_seed(2))
    ctx = TapeContext(micro)
    logs = {}
    for _ in range(2):
        logs = adversarial_step(G, D, opts, ctx, [(real, None), (real, None)], 4, objective)
    return logs, [p.detach().clone() for p in list(G.parameters()) + list(D.parameters())]


@pytest.mark.parametrize("loss", ["nonsaturating", "hinge", "lsgan"])
def test_micro_batches_apply_the_whole_batch_gradient(loss):
    whole_logs, whole = _adversarial_run(0, standard(loss))
    micro_logs, micro = _adversarial_run(4, standard(loss))
    for a, b in zip(whole, micro):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for k in ("loss_D", "loss_G", "grad_D", "grad_G"):
        assert micro_logs[k] == pytest.approx(whole_logs[k], rel=1e-5, abs=1e-6), k


def test_vae_micro_batches_apply_the_whole_batch_gradient():
    from ganforge.spec import DataSpec

    fam = get_family("vae")
    spec = DataSpec(kind="image", resolution=16, channels=1)
    cfg = fam.default_config()
    cfg.nz, cfg.nf = 4, 4
    results = []
    for micro in (0, 2):
        torch.manual_seed(3)
        nets = fam.build(cfg, spec)
        fam.setup_training(nets, torch.device("cpu"))
        opts = fam.optimizers(nets, cfg)
        x = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(4)) * 2 - 1
        logs = fam.train_step(nets, opts, {"image": x}, 0, TapeContext(micro))
        results.append((logs, [p.detach().clone() for p in nets.parameters()]))
    (l0, w0), (l1, w1) = results
    for a, b in zip(w0, w1):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert l1["loss"] == pytest.approx(l0["loss"], rel=1e-5)


def test_micro_batches_split_a_batch():
    ctx = StepContext()
    assert ctx.micro_batches(8) == [slice(0, 8)]
    ctx.micro_batch = 3
    assert ctx.micro_batches(8) == [slice(0, 3), slice(3, 6), slice(6, 8)]
    ctx.micro_batch = 8
    assert ctx.micro_batches(8) == [slice(0, 8)]


def test_batch_gpu_from_the_command_line(tmp_path):
    runner = CliRunner()
    base = ["train", "--data", "digits", "--resolution", "16", "--steps", "2", "--runs-dir", str(tmp_path), "--quiet"]
    res = runner.invoke(main, [*base, "--model", "stylegan2", "--set", "cfg=small", "--batch", "8", "--batch-gpu", "4",
                               "--set", "r1_interval=1", "--set", "pl_interval=1", "--run", "sg"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, [*base, "--model", "dcgan", "--batch", "8", "--batch-gpu", "3", "--run", "bad"])
    assert res.exit_code == 2 and "--batch-gpu 3 does not divide the 8 images" in res.output
    res = runner.invoke(main, [*base, "--model", "pix2pix", "--batch", "4", "--batch-gpu", "2", "--run", "p2p"])
    assert res.exit_code == 2 and "does not accumulate gradients" in res.output
