"""StyleGAN2-ADA family: the contract, its configurations, regularisers, augmentation and generation
features (truncation, noise modes, W latents) on tiny networks."""

from __future__ import annotations

import json
import math

import pytest
import torch
from contract import NoiseFamilyContract

from ganforge.errors import ConfigError
from ganforge.families.stylegan2 import StyleGAN2, StyleGAN2Config
from ganforge.sample.model import Model
from ganforge.spec import DataSpec
from ganforge.training.loop import train
from helpers import tiny_config

# Tiny widths; regularisers every 2 steps so that a few steps exercise R1 and path length.
TINY = {"cfg": "small", "z_dim": 16, "channel_base": 64, "channel_max": 16, "map_layers": 1, "r1_interval": 2, "pl_interval": 2}


class TestStyleGAN2Contract(NoiseFamilyContract):
    model = "stylegan2"
    settings = TINY


class TestConditionalStyleGAN2Contract(NoiseFamilyContract):
    model = "stylegan2"
    settings = TINY
    data = "tiny_labelled_data"
    cond = True


class TestStyleGAN2WithADAContract(NoiseFamilyContract):
    """ADA's p and the augmentation's random draws are part of the resumed state."""

    model = "stylegan2"
    settings = TINY
    loop = {"aug": "ada", "aug_p": 0.3, "aug_kimg": 0.1}


@pytest.mark.parametrize("res", [8, 32, 64, 128, 256])
def test_shapes_at_every_resolution(res):
    fam = StyleGAN2()
    cfg = StyleGAN2Config(**{**TINY, "channel_base": 32 * res if res > 64 else 64})
    spec = DataSpec(resolution=res, channels=3)
    fam.resolve_config(cfg, spec, 4)
    nets = fam.build(cfg, spec)
    z = torch.randn(2, cfg.z_dim)
    with torch.no_grad():
        x = nets["G"](z, None)
        assert x.shape == (2, 3, res, res)
        assert nets["D"](x.repeat(2, 1, 1, 1), None).shape == (4, 1)


def test_auto_config_is_the_published_formula():
    fam = StyleGAN2()
    cfg = fam.resolve_config(StyleGAN2Config(), DataSpec(resolution=256), 16)
    # 256 px on one GPU: batch 16, gamma = 0.0002 * 256^2 / 16 = 0.8192, channel base 16384, lr 0.0025, map 2.
    assert cfg.gamma == pytest.approx(0.8192) and cfg.channel_base == 16384 and cfg.lr == 0.0025 and cfg.map_layers == 2
    assert cfg.mbstd_group == 4 and cfg.pl_weight == 2 and cfg.style_mixing == 0.9 and cfg.conv_clamp == 256
    big = fam.resolve_config(StyleGAN2Config(), DataSpec(resolution=1024), 4)
    assert big.channel_base == 32768 and big.lr == 0.002
    cifar = fam.resolve_config(StyleGAN2Config(cfg="cifar"), DataSpec(resolution=32), 64)
    assert cifar.gamma == 0.01 and cifar.pl_weight == 0 and cifar.style_mixing == 0 and cifar.d_architecture == "orig"
    explicit = fam.resolve_config(StyleGAN2Config(gamma=3.0), DataSpec(resolution=32), 32)
    assert explicit.gamma == 3.0, "explicit settings win over the configuration"
    off = fam.resolve_config(StyleGAN2Config(pl_weight=0.0, style_mixing=0.0, gamma=0.0), DataSpec(resolution=32), 32)
    assert (off.pl_weight, off.style_mixing, off.gamma) == (0.0, 0.0, 0.0), "an explicit 0 turns a regulariser off"


def test_lazy_regularisation_scales_adam():
    fam = StyleGAN2()
    cfg = fam.resolve_config(StyleGAN2Config(**TINY), DataSpec(resolution=16), 8)
    opts = fam.optimizers(fam.build(cfg, DataSpec(resolution=16)), cfg)
    g = opts["G"].param_groups[0]
    assert g["lr"] == pytest.approx(cfg.lr * 2 / 3) and g["betas"][1] == pytest.approx(0.99 ** (2 / 3)) and g["betas"][0] == 0


def test_training_logs_regularisers_and_saves_resolved_config(tmp_path, tiny_data):
    res = train(tiny_config(tmp_path, tiny_data, model="stylegan2", family=TINY, steps=4), progress=False)
    lines = [json.loads(x) for x in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    keys = set().union(*lines)
    assert {"loss_G", "loss_D", "r1", "pl_penalty", "D_real", "D_fake", "grad_G", "grad_D"} <= keys
    saved = json.loads((res.run_dir / "config.json").read_text())["family"]
    assert saved["gamma"] == pytest.approx(0.0002 * 16**2 / 8) and saved["w_dim"] == 16 and saved["mbstd_group"] == 4
    assert all(math.isfinite(v) for rec in lines for v in rec.values() if isinstance(v, float))


def test_truncation_psi_zero_gives_the_mean_image(tmp_path, tiny_data):
    res = train(tiny_config(tmp_path, tiny_data, model="stylegan2", family=TINY, steps=2), progress=False)
    model = Model.load(res.run_dir)
    x = model.generate([0, 1, 2, 3], trunc=0.0, output="tensor")
    assert torch.allclose(x, x[:1].expand_as(x), atol=1e-6), "psi = 0: every seed gives the average image"
    y = model.generate([0, 1], trunc=0.7, output="tensor")
    assert not torch.allclose(y[0], y[1])
    a = model.generate([5], noise_mode="const", output="tensor")
    assert torch.equal(a, model.generate([5], noise_mode="const", output="tensor"))
    torch.manual_seed(0)
    r1 = model.generate([5], noise_mode="random", output="tensor")
    r2 = model.generate([5], noise_mode="random", output="tensor")
    assert not torch.equal(r1, r2), "random noise differs between calls"
    assert not torch.equal(a, model.generate([5], noise_mode="none", output="tensor"))
    with pytest.raises(ConfigError, match="finite"):
        model.generate([0], trunc=float("nan"))


def test_w_latents_and_style_mixing(tmp_path, tiny_data):
    from ganforge.spec import NoiseRequest

    res = train(tiny_config(tmp_path, tiny_data, model="stylegan2", family=TINY, steps=2), progress=False)
    model = Model.load(res.run_dir)
    fam, nets = model.family, model.nets
    z = torch.randn(2, 16)
    ws = fam.mapping(nets, z)
    assert ws.shape == (2, fam.num_ws(nets), 16)
    via_w = model.sampler.run(NoiseRequest(z, w=ws))
    assert torch.allclose(via_w, model.sample_latents(z), atol=1e-6)
    mixed = torch.cat([ws[:1, :2], ws[1:, 2:]], dim=1)  # coarse styles of 0, fine styles of 1
    out = fam.synthesize(nets, mixed)
    assert out.shape == (1, 3, 16, 16) and not torch.allclose(out, via_w[:1]) and not torch.allclose(out, via_w[1:])


def test_aug_is_refused_for_models_without_a_discriminator(tmp_path, tiny_data):
    with pytest.raises(ConfigError, match="discriminator"):
        train(tiny_config(tmp_path, tiny_data, model="vae", family={"nz": 4, "nf": 4}, aug="ada"), progress=False)


def test_ada_p_moves_and_is_logged(tmp_path, tiny_data):
    # aug_kimg tiny: p moves by batch * 4 / (aug_kimg * 1000) = 0.32 per adjustment (every 4 steps).
    cfg = tiny_config(tmp_path, tiny_data, model="stylegan2", family=TINY, steps=8, aug="ada", aug_p=0.5, aug_kimg=0.1)
    res = train(cfg, progress=False)
    recs = [json.loads(x) for x in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    ps = [r["aug_p"] for r in recs if "aug_p" in r]
    assert len(ps) == 8 and ps[:3] == [0.5] * 3, ps
    assert ps[3] == pytest.approx(0.5 + 0.32 * (1 if recs[3]["aug_rt"] > 0.6 else -1)), "p moves by one step at step 4"
    meta = json.loads((res.run_dir / "checkpoints" / "step-000008.json").read_text())
    assert meta["loop"]["engine"]["ada"]["p"] == ps[-1], "p is checkpointed"


@pytest.mark.parametrize("aug", ["diffaugment", "fixed"])
def test_other_augmentations_train_every_adversarial_family(tmp_path, tiny_data, aug):
    for model, fam in (("stylegan2", TINY), ("dcgan", {"ngf": 8, "ndf": 8, "nz": 8})):
        cfg = tiny_config(tmp_path, tiny_data, model=model, family=fam, steps=2, aug=aug, aug_p=0.5, run=f"{model}-{aug}")
        res = train(cfg, progress=False)
        assert all(math.isfinite(v) for k, v in res.last.items() if k.startswith("loss"))


def test_nvlabs_format_archive_trains(tmp_path):
    """A dataset written the way stylegan2-ada-pytorch's dataset_tool writes it (zip of 00000/img*.png and
    a dataset.json of [name, label] pairs) trains a conditional model."""
    import io
    import zipfile

    import numpy as np
    from PIL import Image

    path = tmp_path / "nvlabs.zip"
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as zf:
        labels = []
        for i in range(12):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(buf, format="PNG")
            name = f"00000/img{i:08d}.png"
            zf.writestr(name, buf.getvalue())
            labels.append([name, i % 2])
        zf.writestr("dataset.json", json.dumps({"labels": labels}))
    res = train(tiny_config(tmp_path, str(path), model="stylegan2", family=TINY, steps=2, cond=True), progress=False)
    assert Model.load(res.run_dir).spec.num_classes == 2


def test_precision_auto_is_fp32_on_a_cpu_for_stylegan2(tmp_path, tiny_data):
    # Measured: bf16 autocast is slower than fp32 for stylegan2 on a CPU (benchmarks/stylegan_speed.py).
    res = train(tiny_config(tmp_path, tiny_data, model="stylegan2", family=TINY, steps=1, precision="auto"), progress=False)
    meta = json.loads((res.run_dir / "checkpoints" / "step-000001.json").read_text())
    assert meta["loop"]["precision"] == "fp32"
