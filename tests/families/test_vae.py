from __future__ import annotations

import pytest
import torch
from contract import NoiseFamilyContract, check_family_contract

from ganforge.errors import ConfigError
from ganforge.families.vae import kl_to_prior
from ganforge.training.loop import train
from helpers import tiny_config

TINY = {"nz": 4, "nf": 4}


class TestVAEContract(NoiseFamilyContract):
    model = "vae"
    settings = TINY
    data = "tiny_data"


class TestConditionalVAEContract(NoiseFamilyContract):
    model = "vae"
    settings = TINY
    data = "tiny_labelled_data"
    cond = True


def test_vae_contract(tmp_path, tiny_data):
    res, model = check_family_contract(tmp_path, tiny_data, "vae", TINY, expect_shape=(3, 16, 16))
    assert {"loss", "loss_rec", "loss_kl"} <= set(res.last)
    assert res.last["loss"] == pytest.approx(res.last["loss_rec"] + res.last["loss_kl"], rel=1e-3)
    assert set(model.nets) == {"E", "G"}, "no EMA copy for the VAE"


def test_vae_encode_reconstruct(tmp_path, tiny_data):
    _, model = check_family_contract(tmp_path, tiny_data, "vae", TINY)
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    mu, logvar = model.family.encode(model.nets, x)
    assert mu.shape == logvar.shape == (3, 4)
    r1 = model.family.reconstruct(model.nets, x)
    r2 = model.family.reconstruct(model.nets, x[:1])
    assert r1.shape == x.shape and r1.abs().max() <= 1
    assert torch.allclose(r1[:1], r2, atol=1e-6), "reconstructions must not depend on the batch"


def test_conditional_vae(tmp_path, tiny_labelled_data):
    _, model = check_family_contract(tmp_path, tiny_labelled_data, "vae", TINY, cond=True)
    a = model.generate([5], label=0, output="tensor")
    b = model.generate([5], label=1, output="tensor")
    assert not torch.allclose(a, b)


def test_beta_and_gaussian_likelihood(tmp_path, tiny_data):
    res = train(
        tiny_config(tmp_path, tiny_data, model="vae", family={**TINY, "beta": 4.0, "recon": "gaussian"}, steps=2),
        progress=False,
    )
    last = res.last
    assert last["loss"] == pytest.approx(last["loss_rec"] + 4.0 * last["loss_kl"], rel=1e-3)


def test_kl_is_zero_at_the_prior():
    assert torch.allclose(kl_to_prior(torch.zeros(2, 3), torch.zeros(2, 3)), torch.zeros(2))
    assert kl_to_prior(torch.ones(1, 3), torch.zeros(1, 3)).item() == pytest.approx(1.5)


def test_vae_refuses_point_data(tmp_path):
    with pytest.raises(ConfigError, match="cannot train on points"):
        train(tiny_config(tmp_path, "ring8", model="vae", family=TINY), progress=False)
