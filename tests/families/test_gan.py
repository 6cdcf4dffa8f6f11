from __future__ import annotations

import pytest
import torch
from contract import NoiseFamilyContract, check_family_contract

from ganforge.errors import ConfigError
from ganforge.families.base import DataSpec
from ganforge.families.gan import GAN, GANConfig, resolve
from ganforge.training.loop import train
from helpers import tiny_config

TINY = {"nz": 8, "g_width": 16, "g_layers": 2, "d_width": 16, "d_layers": 2, "maxout_pieces": 2}


class TestGANContract(NoiseFamilyContract):
    model = "gan"
    settings = TINY
    data = "tiny_data"


class TestGANPointsContract(NoiseFamilyContract):
    model = "gan"
    settings = {"g_width": 16, "d_width": 16}
    data = "ring8"


@pytest.mark.parametrize("loss", ["nonsaturating", "minimax", "hinge", "lsgan"])
def test_gan_contract_images(tmp_path, tiny_data, loss):
    res, _ = check_family_contract(tmp_path, tiny_data, "gan", {**TINY, "loss": loss}, expect_shape=(3, 16, 16))
    assert {"loss_D", "loss_G", "grad_D", "grad_G"} <= set(res.last)


def test_gan_conditional(tmp_path, tiny_labelled_data):
    _, model = check_family_contract(tmp_path, tiny_labelled_data, "gan", TINY, cond=True)
    a = model.generate([7], label=0, output="tensor")
    b = model.generate([7], label="c2", output="tensor")
    assert not torch.allclose(a, b), "the class must change the image"


def test_gan_conditional_projection_discriminator(tmp_path, tiny_labelled_data):
    _, model = check_family_contract(tmp_path, tiny_labelled_data, "gan", {**TINY, "d_cond": "projection"}, cond=True)
    D = model.nets["D"]
    x = torch.randn(4, 3, 16, 16)
    assert D.embed is not None and D.net[0].linear.in_features == 3 * 16 * 16, "no one-hot at the input"
    assert not torch.allclose(D(x, torch.tensor([0, 0, 0, 0])), D(x, torch.tensor([1, 1, 1, 1])))


def test_gan_points(tmp_path):
    res, model = check_family_contract(tmp_path, "ring8", "gan", {"g_width": 16, "d_width": 16}, expect_shape=(2,))
    assert model.latent_shape == (2,), "point data defaults to the PacGAN latent size"
    assert 0.0 < res.last["D_real"] < 1.0 and 0.0 < res.last["D_fake"] < 1.0


def test_gan_pack_and_r1(tmp_path):
    check_family_contract(
        tmp_path, "grid25", "gan", {"g_width": 16, "d_width": 16, "pack": 4, "r1": 1.0, "d_act": "lrelu"}
    )


def test_auto_settings_follow_the_data_kind():
    img = resolve(GANConfig(), DataSpec(kind="image", resolution=28, channels=1))
    pts = resolve(GANConfig(), DataSpec(kind="points", dim=2))
    assert (img.nz, img.g_width, img.d_width, img.g_norm) == (100, 1200, 240, "none")  # Goodfellow et al. 2014
    assert (pts.nz, pts.g_width, pts.g_layers, pts.d_width, pts.d_layers, pts.g_norm) == (
        2,
        400,
        4,
        200,
        3,
        "batch",
    )  # PacGAN
    assert resolve(GANConfig(nz=7), DataSpec(kind="points")).nz == 7


def test_packing_needs_whole_packs(tmp_path):
    with pytest.raises(ConfigError, match="smaller than pack"):
        train(
            tiny_config(tmp_path, "ring8", model="gan", family={"pack": 16, "g_width": 8, "d_width": 8}), progress=False
        )


def test_packed_discriminator_judges_groups():
    fam = GAN()
    nets = fam.build(GANConfig(pack=4, d_width=8, g_width=8), DataSpec(kind="points", dim=2))
    assert nets["D"](torch.randn(12, 2)).shape == (3,)


def test_bad_settings(tmp_path, tiny_data):
    with pytest.raises(ConfigError, match="unknown loss"):
        train(tiny_config(tmp_path, tiny_data, model="gan", family={**TINY, "loss": "wasserstein"}), progress=False)
    with pytest.raises(ConfigError, match="d_cond"):
        train(tiny_config(tmp_path, tiny_data, model="gan", family={**TINY, "d_cond": "film"}), progress=False)
    with pytest.raises(ConfigError, match="too large"):
        train(tiny_config(tmp_path, tiny_data, model="gan", family=TINY, resolution=128), progress=False)


def test_mixture_latent_picks_components_evenly_and_deterministically():
    from ganforge.nn.mlp import MixtureLatent

    mix = MixtureLatent(nz=5, components=10, std=0.01)
    z = torch.randn(20000, 5, generator=torch.Generator().manual_seed(0))
    h = mix(z)  # (N, 4): near one of the 10 means
    assert h.shape == (20000, 4)
    k = torch.cdist(h, mix.mu.detach()).argmin(1)
    share = torch.bincount(k, minlength=10).float() / len(k)
    assert share.min() > 0.08 and share.max() < 0.12  # Phi(z_0) is uniform: components equally likely
    torch.testing.assert_close(mix(z[:7]), h[:7])  # the seed's z fully decides the sample
    h.sum().backward()  # the means and stds learn
    assert mix.mu.grad is not None and mix.log_std.grad is not None


def test_gan_points_with_mixture_latent_and_lazy_r1(tmp_path):
    cfg = tiny_config(tmp_path, data="ring8", model="gan", steps=6, batch=32)
    cfg.family = {"nz": 4, "g_width": 16, "d_width": 16, "mixture": 8, "r1": 0.1, "r1_every": 2}
    res = train(cfg, progress=False)
    import ganforge

    pts = ganforge.load(res.run_dir).generate(list(range(5)), output="tensor")
    assert pts.shape == (5, 2) and torch.isfinite(pts).all()
    with pytest.raises(ConfigError, match="mixture"):
        GAN().check(GANConfig(mixture=4, nz=1), DataSpec(kind="points", dim=2))
