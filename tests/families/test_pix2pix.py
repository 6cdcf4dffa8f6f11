"""pix2pix: the image-input contract on tiny paired data and on plain images (colorize preset), the
U-Net's layouts, the PatchGAN's 70x70 receptive field, and the CLI defaults."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from contract import ImageFamilyContract

from ganforge.errors import ConfigError
from ganforge.families.pix2pix import Pix2Pix, Pix2PixConfig, UNet
from ganforge.nn.image2image import PatchDiscriminator, luminance, patch_layers
from ganforge.sample.model import Model
from ganforge.spec import DataSpec
from ganforge.training.loop import train
from helpers import make_paired_folder, tiny_config

TINY = {"ngf": 4, "ndf": 4}


@pytest.fixture
def paired_blobs(tmp_path):
    return str(make_paired_folder(tmp_path / "edges2blobs"))


class TestPix2PixContract(ImageFamilyContract):
    model = "pix2pix"
    settings = TINY
    data = "paired_blobs"


class TestPix2PixColorizeContract(ImageFamilyContract):
    model = "pix2pix"
    settings = {**TINY, "preset": "colorize"}
    data = "tiny_data"  # plain RGB images

    def test_pairs_stay_aligned_through_augmentation(self, tmp_path, request):
        """The pairs are made from each batch: the source is exactly the target's luminance."""
        from ganforge.data.dataset import load_dataset

        fam = Pix2Pix()
        ds = load_dataset(self._data(request), kinds=fam.data_kinds)
        source, target = fam.pair(Pix2PixConfig(preset="colorize"), ds.stream(8, 0, xflip=True).next())
        assert source.shape == (8, 1, 16, 16) and target.shape == (8, 3, 16, 16)
        w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        assert torch.allclose(source, (target * w).sum(1, keepdim=True), atol=1e-6)


@pytest.mark.parametrize("res,depth,dropouts", [(32, 5, 0), (64, 6, 1), (128, 7, 2), (256, 8, 3)])
def test_unet_layouts(res, depth, dropouts):
    """depth = log2(resolution): a 1x1 bottleneck; unet_128 / unet_256 have 2 / 3 dropout layers."""
    fam = Pix2Pix()
    nets = fam.build(Pix2PixConfig(ngf=2, ndf=2), DataSpec(kind="paired", resolution=res, channels=3, in_channels=1))
    G = nets["G"]
    assert G.depth == depth and fam.capabilities_for(nets).size_multiple == 2**depth and G.num_dropout == dropouts
    widths = [
        down[-1].out_channels if isinstance(down[-1], torch.nn.Conv2d) else down[-2].out_channels for down in G.downs
    ]
    assert widths == [2 * min(2**i, 8) for i in range(depth)]  # C64-C128-C256-C512-C512... at ngf=64
    x = torch.rand(2, 1, res, res) * 2 - 1
    with torch.no_grad():
        G.eval()
        bottleneck = x
        for down in G.downs:
            bottleneck = down(bottleneck)
        y = G(x)
    assert bottleneck.shape[-2:] == (1, 1)
    assert y.shape == (2, 3, res, res) and y.abs().max() <= 1
    # Fully convolutional: a larger multiple of 2**depth works too.
    with torch.no_grad():
        assert G(torch.zeros(1, 1, 2 * res, res)).shape == (1, 3, 2 * res, res)


def test_skip_connections_carry_detail():
    """Every decoder layer but the innermost sees its mirrored encoder layer: the output depends on
    the input's finest pixels even when the bottleneck is cut."""
    G = UNet(1, 1, 4, ngf=4, dropout=0.0).eval()
    x = (torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1).requires_grad_(True)
    G(x)[0, 0, 3, 3].backward()
    assert x.grad is not None and x.grad[0, 0, 3, 3] != 0


def test_patchgan_sees_70x70_patches():
    D = PatchDiscriminator(6, ndf=2, n_layers=3).eval()
    x = torch.zeros(1, 6, 256, 256, requires_grad=True)
    out = D(x)
    assert out.shape == (1, 1, 30, 30)  # the 30x30 patch map of a 256 px input
    out[0, 0, 15, 15].backward()
    rows = torch.nonzero(x.grad.abs().sum((0, 1, 3))).flatten()
    assert int(rows.max() - rows.min() + 1) == 70
    assert patch_layers(256, 3) == 3 and patch_layers(32, 3) == 3 and patch_layers(16, 3) == 2


def test_translate_keeps_any_size_and_colorize_takes_gray_or_rgb(tmp_path, tiny_data):
    res = train(
        tiny_config(tmp_path, tiny_data, model="pix2pix", family={**TINY, "preset": "colorize"}, steps=2),
        progress=False,
    )
    model = Model.load(res.run_dir)
    rgb = torch.rand(2, 3, 20, 12) * 2 - 1
    out = model.translate(rgb, output="tensor")
    assert out.shape == (2, 3, 20, 12)  # reflect-padded to a multiple of 16 and cropped back
    gray3 = luminance(rgb).expand(-1, 3, -1, -1)
    assert torch.allclose(model.translate(gray3, output="tensor"), out, atol=1e-5)


@pytest.mark.parametrize("loss", ["vanilla", "lsgan"])
def test_losses_train_and_log_l1(tmp_path, paired_blobs, loss):
    res = train(
        tiny_config(tmp_path, paired_blobs, model="pix2pix", family={**TINY, "loss": loss}, steps=2), progress=False
    )
    last = res.last
    assert all(np.isfinite(last[k]) for k in ("loss_D", "loss_G", "loss_L1", "loss_G_gan"))
    assert last["loss_G"] == pytest.approx(last["loss_G_gan"] + 100 * last["loss_L1"], rel=1e-4)


def test_plain_images_need_the_colorize_preset(tmp_path, tiny_data):
    with pytest.raises(ConfigError, match="preset=colorize"):
        train(tiny_config(tmp_path, tiny_data, model="pix2pix", family=TINY, steps=1), progress=False)
    with pytest.raises(ConfigError, match="unknown preset"):
        train(
            tiny_config(tmp_path, tiny_data, model="pix2pix", family={**TINY, "preset": "sketch"}, steps=1),
            progress=False,
        )


def test_cli_defaults_to_edges2shapes():
    from ganforge.cli import main

    r = CliRunner().invoke(main, ["train", "--model", "pix2pix", "--dry-run"])
    assert r.exit_code == 0, r.output
    cfg = json.loads(r.output)
    assert cfg["data"] == "edges2shapes" and cfg["batch"] == 16
    assert cfg["family"]["l1_weight"] == 100.0 and cfg["family"]["lr"] == 2e-4 and cfg["family"]["beta1"] == 0.5
    r = CliRunner().invoke(
        main, ["train", "--model", "pix2pix", "--data", "emoji", "--set", "preset=colorize", "--dry-run"]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["data"] == "emoji" and json.loads(r.output)["family"]["preset"] == "colorize"
