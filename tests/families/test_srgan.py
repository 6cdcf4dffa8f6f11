"""SRGAN: the image-input contract (one PSNR step, then GAN steps, so that resuming crosses the phase
boundary), output size = scale x input, the PSNR phase leaving D untouched, and the VGG loss used only
when its weights are on the machine (never downloaded), the fallback reported."""

from __future__ import annotations

import json

import pytest
import torch
from contract import ImageFamilyContract
from torch import nn

from ganforge import checkpoint as ckpt
from ganforge.errors import ConfigError
from ganforge.families import srgan
from ganforge.families.base import StepContext
from ganforge.families.srgan import SRGAN, SRDiscriminator, SRGANConfig, SRResNet
from ganforge.sample.model import Model
from ganforge.spec import DataSpec
from ganforge.training.loop import train
from helpers import tiny_config

TINY = {"ngf": 8, "n_blocks": 1, "ndf": 4, "d_dense": 16, "scale": 2, "crop": 16, "pretrain_steps": 1}


@pytest.fixture(autouse=True)
def _no_vgg_weights(tmp_path, monkeypatch):
    """An empty torch hub cache: no test sees (or fetches) real VGG weights."""
    hub = tmp_path / "hub"
    hub.mkdir()
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))


class TestSRGANContract(ImageFamilyContract):
    model = "srgan"
    settings = TINY
    data = "tiny_data"


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_output_is_scale_times_input(scale):
    G = SRResNet(3, 3, scale, ngf=4, n_blocks=2).eval()
    with torch.no_grad():
        y = G(torch.rand(2, 3, 5, 7) * 2 - 1)
    assert y.shape == (2, 3, 5 * scale, 7 * scale) and y.abs().max() <= 1
    assert sum(isinstance(m, nn.PixelShuffle) for m in G.modules()) == {2: 1, 4: 2, 8: 3}[scale]


def test_generator_and_discriminator_layouts():
    G = SRResNet(3, 3, 4)  # the paper's: 16 blocks of 64 channels
    assert len([m for m in G.body if isinstance(m, srgan.ResidualBlock)]) == 16
    D = SRDiscriminator(3, 96)
    convs = [m for m in D.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [c.stride[0] for c in convs] == [1, 2] * 4
    assert D.head[1].in_features == 512 * 6 * 6 and D.head[1].out_features == 1024  # 96 px -> 6x6
    assert D(torch.zeros(2, 3, 96, 96)).shape == (2,)


def test_model_translate_scales_any_size(tmp_path, tiny_data):
    res = train(tiny_config(tmp_path, tiny_data, model="srgan", family=TINY, steps=2), progress=False)
    model = Model.load(res.run_dir)
    assert model.spec.resolution == 2 * model.spec.source_resolution == 16
    out = model.translate(torch.rand(1, 3, 9, 13) * 2 - 1, output="tensor")
    assert out.shape == (1, 3, 18, 26)


def _tiny(pretrain: int, **kw):
    fam = SRGAN()
    cfg = SRGANConfig(ngf=4, n_blocks=1, ndf=2, d_dense=8, scale=2, crop=16, pretrain_steps=pretrain, **kw)
    spec = DataSpec(kind="superres", resolution=16, channels=3, in_resolution=8, in_channels=3)
    nets = fam.build(cfg, spec)
    fam.setup_training(nets, torch.device("cpu"))
    hr = torch.rand(4, 3, 16, 16) * 2 - 1
    batch = {"source": torch.nn.functional.avg_pool2d(hr, 2), "target": hr}
    return fam, nets, fam.optimizers(nets, cfg), batch


def test_psnr_phase_leaves_d_untouched():
    fam, nets, opts, batch = _tiny(pretrain=2)
    d_before = {k: v.clone() for k, v in nets["D"].state_dict().items()}
    g_before = {k: v.clone() for k, v in nets["G"].state_dict().items()}
    for step in range(2):
        logs = fam.train_step(nets, opts, batch, step, StepContext())
        assert logs["gan_phase"] == 0.0 and "loss_D" not in logs
    assert all(torch.equal(v, nets["D"].state_dict()[k]) for k, v in d_before.items()), (
        "D (and its BN statistics) untouched"
    )
    assert not opts["D"].state, "D's optimizer never stepped"
    assert any(not torch.equal(v, nets["G"].state_dict()[k]) for k, v in g_before.items())
    logs = fam.train_step(nets, opts, batch, 2, StepContext())  # the GAN phase
    assert logs["gan_phase"] == 1.0 and "loss_D" in logs and "loss_adv" in logs
    assert any(not torch.equal(v, nets["D"].state_dict()[k]) for k, v in d_before.items())


def test_pretrain_steps_default_is_half_of_training():
    fam, nets, *_ = _tiny(pretrain=-1)
    ctx = StepContext()
    assert fam.pretrain_steps(nets.cfg, ctx) == srgan.PRETRAIN_FALLBACK  # the loop did not say how long the run is
    ctx.total_steps = 300
    assert fam.pretrain_steps(nets.cfg, ctx) == 150
    nets.cfg.schedule_steps = 40
    assert fam.pretrain_steps(nets.cfg, ctx) == 20


def test_without_vgg_weights_the_pixel_loss_is_used_and_reported(tmp_path, tiny_data):
    assert srgan.vgg_weights_path() is None
    fam, nets, opts, batch = _tiny(pretrain=0)
    assert "vgg" not in nets.frozen and "not found" in fam.state_dict(nets)["content_loss"]
    logs = fam.train_step(nets, opts, batch, 0, StepContext())
    assert logs["content_vgg"] == 0.0 and "loss_vgg" not in logs
    assert logs["loss_content"] == pytest.approx(logs["loss_pixel"], rel=1e-5)
    # Through the loop: the metrics and the checkpoint say so.
    res = train(tiny_config(tmp_path, tiny_data, model="srgan", family=TINY, steps=2), progress=False)
    lines = [json.loads(x) for x in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["content_vgg"] for x in lines if "content_vgg" in x] == [0.0, 0.0]
    meta = json.loads(ckpt.resolve_checkpoint(res.run_dir).with_suffix(".json").read_text())
    assert "pixel loss (l1)" in meta["family_state"]["content_loss"]
    # vgg=on without the weights is a clear error, not a download.
    with pytest.raises(ConfigError, match="VGG19"):
        _tiny(pretrain=0, vgg="on")


def test_vgg_feature_loss_when_weights_are_local(monkeypatch, tmp_path):
    """With weights in the cache (a stand-in feature net here), the GAN phase's content loss is the VGG loss."""
    monkeypatch.setattr(srgan, "vgg_weights_path", lambda: tmp_path / srgan.VGG19_FILE)
    monkeypatch.setattr(
        srgan, "load_vgg_features", lambda path, device: nn.Sequential(nn.Conv2d(3, 4, 3, 1, 1), nn.ReLU())
    )
    fam, nets, opts, batch = _tiny(pretrain=0)
    assert "vgg" in nets.frozen and "VGG19" in fam.state_dict(nets)["content_loss"]
    logs = fam.train_step(nets, opts, batch, 0, StepContext())
    assert logs["content_vgg"] == 1.0 and logs["loss_vgg"] > 0
    assert logs["loss_content"] == pytest.approx(logs["loss_vgg"], rel=1e-5)  # SRGAN-VGG54: no pixel term
    fam2, nets2, *_ = _tiny(pretrain=0, vgg="off")
    assert "vgg" not in nets2.frozen and "vgg=off" in fam2.state_dict(nets2)["content_loss"]


def test_a_frozen_network_takes_no_step_and_is_not_checkpointed(monkeypatch, tmp_path, tiny_data):
    """`nets.frozen` (here SRGAN's content-loss VGG, a stand-in) is trained by no optimizer, absent from the
    checkpoint's tensors, and recorded there by checksum."""
    monkeypatch.setattr(srgan, "vgg_weights_path", lambda: tmp_path / srgan.VGG19_FILE)
    monkeypatch.setattr(
        srgan, "load_vgg_features", lambda path, device: nn.Sequential(nn.Conv2d(3, 4, 3, 1, 1), nn.ReLU())
    )
    fam, nets, opts, batch = _tiny(pretrain=0)
    vgg = nets.frozen["vgg"]
    before = {k: v.clone() for k, v in vgg.state_dict().items()}
    in_opts = {id(p) for o in opts.values() for g in o.param_groups for p in g["params"]}
    assert not any(id(p) in in_opts for p in vgg.parameters())
    fam.train_step(nets, opts, batch, 0, StepContext())
    assert all(torch.equal(v, vgg.state_dict()[k]) for k, v in before.items())
    assert "vgg" not in dict(nets.named_children())  # not a sub-module: never in state_dict()
    res = train(tiny_config(tmp_path, tiny_data, model="srgan", family={**TINY, "pretrain_steps": 0}, steps=2), progress=False)
    base = ckpt.resolve_checkpoint(res.run_dir)
    meta = json.loads(base.with_suffix(".json").read_text())
    assert set(meta["frozen_networks"]) == {"vgg"} and len(meta["frozen_networks"]["vgg"]) == 64
    assert not any("vgg" in k for k in ckpt.load_tensors(base))
