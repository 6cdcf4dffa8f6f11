"""The shared alternating D/G update: how many updates each network gets, and what it logs."""

from __future__ import annotations

import torch
from torch import nn

from ganforge.families.adversarial import Objective, adversarial_step, gradient_penalty, standard
from ganforge.families.base import StepContext


class Toy(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.lin = nn.Linear(cin, cout)
        self.calls = 0

    def forward(self, x, labels=None):
        self.calls += 1
        return self.lin(x).squeeze(-1)


class CountingSGD(torch.optim.SGD):
    def __init__(self, params):
        super().__init__(params, lr=0.1)
        self.steps = 0

    def step(self, closure=None):
        self.steps += 1
        return super().step(closure)


def setup():
    torch.manual_seed(0)
    G, D = Toy(3, 2), Toy(2, 1)
    opts = {"G": CountingSGD(G.parameters()), "D": CountingSGD(D.parameters())}
    return G, D, opts, StepContext(device=torch.device("cpu"))


def test_one_d_update_reuses_the_fakes():
    G, D, opts, ctx = setup()
    real = torch.randn(8, 2)
    g_before = [p.clone() for p in G.parameters()]
    logs = adversarial_step(G, D, opts, ctx, [(real, None)], 3, standard("nonsaturating"))
    assert (opts["D"].steps, opts["G"].steps) == (1, 1)
    assert G.calls == 1, "with one D update, its fakes serve the G update too"
    assert all(not torch.equal(a, b) for a, b in zip(g_before, G.parameters())), "G was updated"
    assert all(p.requires_grad for p in D.parameters()), "D is trainable again afterwards"
    assert {"loss_D", "loss_G", "grad_D", "grad_G", "D_real", "D_fake"} <= logs.keys()
    assert 0 < logs["D_real"] < 1


def test_several_d_updates_and_a_penalty():
    G, D, opts, ctx = setup()
    batches = [(torch.randn(4, 2), None) for _ in range(3)]
    objective = standard("wgan-gp")
    objective.penalty = gradient_penalty(D, 10.0)
    logs = adversarial_step(G, D, opts, ctx, batches, 3, objective)
    assert (opts["D"].steps, opts["G"].steps) == (3, 1)
    assert G.calls == 4, "one G forward per D update, plus a fresh one for the G update"
    assert logs["gp"] >= 0 and {"score_real", "score_fake"} <= logs.keys() and "D_real" not in logs


def test_real_grad_penalty_sees_a_differentiable_input():
    G, D, opts, ctx = setup()
    seen = {}

    def penalty(real, d_real, fake, labels):
        (g,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)
        seen["norm"] = g.square().sum().item()
        return g.square().sum(1).mean(), {"r1": seen["norm"]}

    objective = Objective(
        d_loss=standard("hinge").d_loss,
        g_loss=standard("hinge").g_loss,
        penalty=penalty,
        real_grad=True,
        report="score",
    )
    logs = adversarial_step(G, D, opts, ctx, [(torch.randn(8, 2), None)], 3, objective)
    assert logs["r1"] == seen["norm"] > 0


def test_mode_seeking_pairs_labels_and_logs_the_ratio():
    from ganforge.families.adversarial import _paired, mode_seeking_weight
    from ganforge.families.base import DataSpec

    assert _paired(torch.tensor([3, 1, 4, 1, 5])).tolist() == [3, 1, 3, 1, 5]
    assert _paired(None) is None
    assert mode_seeking_weight(-1, DataSpec(num_classes=10)) == 1.0
    assert mode_seeking_weight(-1, DataSpec(num_classes=0)) == 0.0
    assert mode_seeking_weight(0.5, DataSpec(num_classes=0)) == 0.5

    seen = []

    class LabelledToy(Toy):
        def forward(self, x, labels=None):
            seen.append(labels)
            return super().forward(x)

    G, D, opts, ctx = setup()
    G = LabelledToy(3, 2)
    opts["G"] = CountingSGD(G.parameters())
    objective = standard("nonsaturating")
    objective.mode_seeking = 1.0
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    logs = adversarial_step(G, D, opts, ctx, [(torch.randn(6, 2), labels)], 3, objective)
    assert seen[0].tolist() == [0, 1, 2, 0, 1, 2], "fakes come in same-label pairs"
    assert logs["ms_ratio"] > 0
    # With the term on, G's loss includes 1 / (ratio + eps) on top of the adversarial loss.
    assert logs["loss_G"] > 1.0 / (logs["ms_ratio"] + 1e-5) - 1e-3
