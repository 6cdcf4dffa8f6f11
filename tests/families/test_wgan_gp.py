from __future__ import annotations

import pytest
import torch
from contract import NoiseFamilyContract, check_family_contract

from ganforge.errors import ConfigError
from ganforge.families.base import DataSpec, StepContext
from ganforge.families.wgan_gp import WGANGP, WGANGPConfig
from ganforge.training.loop import train
from helpers import tiny_config

TINY = {"ngf": 8, "ndf": 8, "nz": 8}


class TestWGANGPContract(NoiseFamilyContract):
    model = "wgan-gp"
    settings = TINY
    data = "tiny_data"


def test_wgan_gp_contract_images(tmp_path, tiny_data):
    res, _ = check_family_contract(tmp_path, tiny_data, "wgan-gp", TINY, expect_shape=(3, 16, 16))
    assert {"loss_D", "loss_G", "gp", "score_real", "score_fake", "grad_D", "grad_G"} <= set(res.last)


def test_wgan_gp_conditional(tmp_path, tiny_labelled_data):
    _, model = check_family_contract(tmp_path, tiny_labelled_data, "wgan-gp", TINY, cond=True)
    assert not torch.allclose(
        model.generate([3], label=0, output="tensor"), model.generate([3], label=1, output="tensor")
    )


def test_wgan_gp_points(tmp_path):
    check_family_contract(tmp_path, "ring8", "wgan-gp", {"width": 16}, expect_shape=(2,))


def test_paper_defaults():
    cfg = WGANGPConfig()
    assert (cfg.gp_weight, cfg.n_critic, cfg.lr, cfg.beta1, cfg.beta2) == (
        10.0,
        5,
        1e-4,
        0.0,
        0.9,
    )  # Gulrajani et al. 2017


def test_each_critic_iteration_gets_its_own_reals():
    """Algorithm 1 samples fresh real data for every critic update: the step's batch is split."""
    fam = WGANGP()
    nets = fam.build(WGANGPConfig(width=8, n_critic=5), DataSpec(kind="points", dim=2))
    seen: list[torch.Tensor] = []
    critic_forward = nets["D"].forward

    def spy(x, labels=None):
        seen.append(x.detach().clone())
        return critic_forward(x, labels)

    nets["D"].forward = spy
    opts = fam.optimizers(nets, nets.cfg)
    real = torch.arange(20, dtype=torch.float32).view(10, 2)
    fam.train_step(nets, opts, {"points": real}, 0, StepContext(device=torch.device("cpu")))
    reals = [x for x in seen if any(torch.equal(x, c) for c in real.chunk(5))]
    assert len(reals) == 5 and all(x.shape == (2, 2) for x in reals)


def test_batch_smaller_than_critic_iterations(tmp_path):
    with pytest.raises(ConfigError, match="smaller than n_critic"):
        train(tiny_config(tmp_path, "ring8", model="wgan-gp", family={"width": 8}, batch=3), progress=False)
