"""FastGAN family: the contract on tiny 32 px networks, plus its parts (SLE, decoders, quarter crops, shapes)."""

from __future__ import annotations

import json

import pytest
import torch
from contract import NoiseFamilyContract

from ganforge import checkpoint as ckpt
from ganforge.errors import ConfigError
from ganforge.families.fastgan import RECON_NOTE, FastGAN, FastGANConfig
from ganforge.nn.fastgan import SLE, Discriminator, Generator, quarter, recon_loss, recon_targets, sle_pairs
from ganforge.spec import DataSpec
from ganforge.training.loop import train
from helpers import tiny_config

TINY = {"ngf": 4, "ndf": 4, "nz": 8}
LOOP = {"resolution": 32}


class TestFastGANContract(NoiseFamilyContract):
    model = "fastgan"
    settings = TINY
    loop = LOOP


class TestConditionalFastGANContract(NoiseFamilyContract):
    model = "fastgan"
    settings = TINY
    data = "tiny_labelled_data"
    cond = True
    loop = LOOP


class TestFastGANWithDiffAugmentContract(NoiseFamilyContract):
    """The paper's setting: every image D sees (and the decoders rebuild) goes through DiffAugment."""

    model = "fastgan"
    settings = TINY
    loop = {**LOOP, "aug": "diffaugment"}


def test_sle_gates_channels_and_keeps_the_shape():
    torch.manual_seed(0)
    sle = SLE(6, 5)
    low, high = torch.randn(2, 6, 8, 8), torch.randn(2, 5, 32, 32)
    out = sle(low, high)
    assert out.shape == high.shape
    gate = sle.gate(low)
    assert gate.shape == (2, 5, 1, 1) and (gate > 0).all() and (gate < 1).all()
    assert torch.allclose(out, high * gate)
    # By hand: pool to 4x4, 4x4 conv, LeakyReLU(0.1), 1x1 conv, sigmoid.
    pooled = torch.nn.functional.adaptive_avg_pool2d(low, 4)
    h = torch.nn.functional.leaky_relu(sle.gate[1](pooled), 0.1)
    assert torch.allclose(gate, torch.sigmoid(sle.gate[3](h)))


def test_sle_pairs():
    assert sle_pairs(32) == [(4, 32)]
    assert sle_pairs(64) == [(4, 64)]
    assert sle_pairs(256) == [(4, 64), (8, 128), (16, 256)]
    assert sle_pairs(1024) == [(4, 64), (8, 128), (16, 256), (32, 512)]


@pytest.mark.parametrize("res", [32, 64, 128])
def test_generator_output_shape(res):
    torch.manual_seed(0)
    G = Generator(8, 4, 3, res)
    x = G(torch.randn(2, 8))
    assert x.shape == (2, 3, res, res) and x.abs().max() <= 1
    G.eval()
    z = torch.randn(3, 8)
    with torch.no_grad():
        a, b = G(z), G(z)
    assert torch.equal(a, b), "no noise is drawn in eval mode"
    # The loop's BatchNorm recalibration runs the EMA copy in train mode without gradients: no noise, and the
    # global random stream is left alone (resumed runs stay bit-identical).
    G.train()
    state = torch.get_rng_state()
    with torch.no_grad():
        G(z)
    assert torch.equal(state, torch.get_rng_state())


def test_conditional_generator_uses_labels():
    torch.manual_seed(0)
    G = Generator(8, 4, 3, 32, num_classes=3, embed_dim=4).eval()
    z = torch.randn(1, 8)
    with torch.no_grad():
        assert not torch.allclose(G(z, torch.tensor([0])), G(z, torch.tensor([2])))
    with pytest.raises(ValueError, match="labels"):
        G(z)


@pytest.mark.parametrize("res,side", [(32, 32), (64, 64), (256, 128)])
def test_decoders_rebuild_at_min_128_and_the_resolution(res, side):
    torch.manual_seed(0)
    D = Discriminator(4, 3, res)
    x = torch.randn(2, 3, res, res)
    logits, rec_all, rec_part = D(x, None, part=2)
    assert logits.shape == (2, 25)
    assert rec_all.shape == rec_part.shape == (2, 3, side, side) and D.recon_side == side
    f16, f8 = D.features(x)
    assert f16.shape[-2:] == (16, 16) and f8.shape[-2:] == (8, 8)
    assert torch.equal(D(x, None), logits), "without a part, the logits alone"
    whole, q = recon_targets(x, 2, side)
    assert whole.shape == q.shape == rec_all.shape


def test_crop_quarter_matches_the_image_quarter():
    # A 16x16 "feature map" and a 64 px image with the same four constant quarters: the same index picks the same one.
    feat = torch.zeros(1, 1, 16, 16)
    img = torch.zeros(1, 1, 64, 64)
    for part, (r, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        feat[..., r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8] = part
        img[..., r * 32 : (r + 1) * 32, c * 32 : (c + 1) * 32] = part
    for part in range(4):
        qf, qi = quarter(feat, part), quarter(img, part)
        assert qf.shape[-2:] == (8, 8) and qi.shape[-2:] == (32, 32)
        assert (qf == part).all() and (qi == part).all()
        _, target = recon_targets(img, part, 32)
        assert (target == part).all()
    # The decoder of the part sees exactly that quarter of D's 16x16 features.
    torch.manual_seed(0)
    D = Discriminator(4, 3, 64)
    x = torch.randn(1, 3, 64, 64)
    f16, _ = D.features(x)
    _, _, rec = D(x, None, part=3)
    assert torch.allclose(rec, D.decode_part(f16[..., 8:, 8:]))


def test_recon_loss_is_zero_on_the_target_and_positive_elsewhere():
    x = torch.rand(2, 3, 32, 32)
    assert recon_loss(x, x).item() == 0
    assert recon_loss(x, x + 0.1).item() == pytest.approx(0.3, rel=1e-4)  # l1 at three scales


def test_config_resolution_and_checks():
    fam = FastGAN()
    small = fam.resolve_config(FastGANConfig(), DataSpec(resolution=32), 8)
    assert (small.nz, small.ngf, small.ndf) == (128, 16, 16)
    big = fam.resolve_config(FastGANConfig(), DataSpec(resolution=256), 8)
    assert (big.nz, big.ngf, big.ndf) == (256, 64, 64)
    assert fam.resolve_config(FastGANConfig(ngf=8), DataSpec(resolution=32), 8).ndf == 8
    for res in (16, 48, 2048):
        with pytest.raises(ConfigError, match="32 to 1024"):
            fam.check(FastGANConfig(), DataSpec(resolution=res))
    opts = fam.optimizers(fam.build(FastGANConfig(**TINY), DataSpec(resolution=32)), FastGANConfig(**TINY))
    g = opts["G"].param_groups[0]
    assert g["lr"] == 2e-4 and g["betas"] == (0.5, 0.999)


def test_training_logs_and_records_the_recon_loss(tmp_path, tiny_data):
    res = train(tiny_config(tmp_path, tiny_data, model="fastgan", family=TINY, steps=2, **LOOP), progress=False)
    recs = [json.loads(x) for x in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    keys = set().union(*recs)
    assert {"loss_D", "loss_G", "D_real", "D_fake", "grad_D", "grad_G", "loss_recon"} <= keys
    meta = json.loads((res.run_dir / "checkpoints" / "step-000002.json").read_text())
    assert RECON_NOTE in json.dumps(meta), "the checkpoint says which reconstruction loss trained D"
    assert any(k.startswith("net/G_ema") for k in ckpt.load_tensors(ckpt.resolve_checkpoint(res.run_dir)))


def test_cli_dry_run_defaults_to_diffaugment():
    from click.testing import CliRunner

    from ganforge.cli import main

    out = CliRunner().invoke(main, ["train", "--model", "fastgan", "--dry-run"])
    assert out.exit_code == 0, out.output
    cfg = json.loads(out.output[out.output.index("{") :])
    assert cfg["model"] == "fastgan" and cfg["aug"] == "diffaugment"
    out = CliRunner().invoke(main, ["train", "--model", "fastgan", "--aug", "none", "--set", "ngf=8", "--dry-run"])
    assert out.exit_code == 0, out.output
    cfg = json.loads(out.output[out.output.index("{") :])
    assert cfg["aug"] == "none" and cfg["family"]["ngf"] == 8
