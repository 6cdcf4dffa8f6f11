from __future__ import annotations

import pytest
import torch
from contract import NoiseFamilyContract, check_family_contract

from ganforge.families.base import DataSpec
from ganforge.families.sngan import SNGAN, SNGANConfig

TINY = {"ngf": 4, "ndf": 4, "nz": 8}


class TestSNGANContract(NoiseFamilyContract):
    model = "sngan"
    settings = TINY
    data = "tiny_data"


class TestConditionalSNGANContract(NoiseFamilyContract):
    model = "sngan"
    settings = TINY
    data = "tiny_labelled_data"
    cond = True


@pytest.mark.parametrize("loss", ["hinge", "nonsaturating"])
def test_sngan_contract_images(tmp_path, tiny_data, loss):
    res, _ = check_family_contract(tmp_path, tiny_data, "sngan", {**TINY, "loss": loss}, expect_shape=(3, 16, 16))
    assert ("score_real" if loss == "hinge" else "D_real") in res.last


def test_sngan_resolution_8(tmp_path, tiny_data):
    check_family_contract(tmp_path, tiny_data, "sngan", TINY, resolution=8, expect_shape=(3, 8, 8))


def test_sngan_conditional(tmp_path, tiny_labelled_data):
    _, model = check_family_contract(tmp_path, tiny_labelled_data, "sngan", TINY, cond=True)
    assert not torch.allclose(
        model.generate([3], label=0, output="tensor"), model.generate([3], label=2, output="tensor")
    )


def test_sngan_points(tmp_path):
    check_family_contract(tmp_path, "grid25", "sngan", {"width": 16}, expect_shape=(2,))


@pytest.mark.parametrize("kind", ["image", "points"])
def test_every_discriminator_layer_is_spectrally_normalised(kind):
    fam = SNGAN()
    spec = DataSpec(kind=kind, resolution=16, channels=3, dim=2)
    nets = fam.build(SNGANConfig(ngf=4, ndf=4, width=8), spec)
    D = nets["D"]
    weighted = [m for m in D.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert weighted and all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in weighted)
    D.train()
    x = torch.randn(4, 3, 16, 16) if kind == "image" else torch.randn(4, 2)
    for _ in range(30):  # power iterations converge
        D(x)
    for m in weighted:
        w = m.weight.detach().flatten(1)
        assert torch.linalg.matrix_norm(w, ord=2) == pytest.approx(1.0, abs=0.05)
