from __future__ import annotations

import pytest
from contract import NoiseFamilyContract, check_family_contract

TINY = {"ngf": 8, "ndf": 8, "nz": 8}


class TestDCGANContract(NoiseFamilyContract):
    model = "dcgan"
    settings = TINY
    data = "tiny_data"


class TestConditionalDCGANContract(NoiseFamilyContract):
    model = "dcgan"
    settings = TINY
    data = "tiny_labelled_data"
    cond = True


@pytest.mark.parametrize("loss", ["nonsaturating", "hinge", "lsgan", "wgan-gp"])
def test_dcgan_contract(tmp_path, tiny_data, loss):
    check_family_contract(tmp_path, tiny_data, "dcgan", {**TINY, "loss": loss})


def test_dcgan_conditional(tmp_path, tiny_labelled_data):
    res, model = check_family_contract(tmp_path, tiny_labelled_data, "dcgan", TINY, cond=True)
    assert model.spec.num_classes == 3
    a = model.generate([7, 7], label=0, output="tensor")
    b = model.generate([7], label="c2", output="tensor")
    assert not (a[0] - b[0]).abs().max() < 1e-6, "the class must change the image"


@pytest.mark.parametrize("res", [8, 32])
def test_dcgan_resolutions(tmp_path, tiny_data, res):
    check_family_contract(tmp_path, tiny_data, "dcgan", TINY, resolution=res, expect_shape=(3, res, res))


def test_projection_term_starts_on_the_scale_of_the_logit():
    # Regression: with nn.Embedding's N(0, 1) init the projection term was ~50x the logit, D only
    # judged label agreement and conditional G drew one prototype per class.
    import torch

    from ganforge.nn.dcgan import Discriminator
    from ganforge.nn.dcgan import init_weights as _init_weights

    torch.manual_seed(0)
    D = Discriminator(16, 1, 32, 8, "batch", num_classes=10)
    D.apply(_init_weights)
    x, y = torch.randn(64, 1, 32, 32), torch.randint(10, (64,))
    with torch.no_grad():
        h = D.features(x)
        logit = D.out(h).flatten()
        proj = (D.embed(y) * h.sum(dim=(2, 3))).sum(1)
    assert proj.abs().mean() < 5 * logit.abs().mean()
