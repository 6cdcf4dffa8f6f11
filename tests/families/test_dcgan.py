from __future__ import annotations

import pytest
from contract import check_family_contract

TINY = {"ngf": 8, "ndf": 8, "nz": 8}


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
