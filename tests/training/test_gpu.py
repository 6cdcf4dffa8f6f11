"""Training on a CUDA GPU: every family through the real loop for a few steps at 32 px with tiny widths,
in the precision the loop picks ("auto": bf16 where the GPU has it, else fp16) and in fp16 with loss
scaling; dcgan under --compile; stylegan2's fp16 blocks. Each test is marked `gpu` (deselected by
default; run with `pytest -m gpu tests/training/test_gpu.py`) and skipped where no CUDA GPU is visible."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge import checkpoint as ckpt
from ganforge.families.stylegan2 import StyleGAN2, StyleGAN2Config
from ganforge.sample.model import Model
from ganforge.spec import DataSpec
from ganforge.training.loop import train
from helpers import make_archive, make_paired_folder, tiny_config

DEVICE = "cuda"
RES = 32
STEPS = 4
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

# Tiny widths per family, and the kind of data each trains on. stylegan2: R1 and path length every 2 steps,
# so that 4 steps run both (with autocast off, through its fp16 blocks: num_fp16_res defaults to 4).
SG2 = {
    "cfg": "small",
    "z_dim": 16,
    "channel_base": 256,
    "channel_max": 32,
    "map_layers": 1,
    "r1_interval": 2,
    "pl_interval": 2,
}
FAMILIES = {
    "dcgan": ("images", {"nz": 8, "ngf": 8, "ndf": 8}),
    "wgan-gp": ("images", {"nz": 8, "ngf": 8, "ndf": 8}),
    "sngan": ("images", {"nz": 8, "ngf": 4, "ndf": 4}),
    "vae": ("images", {"nz": 4, "nf": 4}),
    "stylegan2": ("images", SG2),
    "pix2pix": ("pairs", {"ngf": 4, "ndf": 4}),
    "cyclegan": ("unpaired", {"ngf": 4, "ndf": 4, "n_blocks": 1, "pool_size": 6}),
    "srgan": (
        "images",
        {"ngf": 8, "n_blocks": 1, "ndf": 4, "d_dense": 16, "scale": 2, "crop": RES, "pretrain_steps": 1, "vgg": "off"},
    ),
}


def _unpaired_folder(root, n: int = 10) -> str:
    """Domain A: dark discs on white; domain B: light squares on dark; RES px."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:RES, 0:RES]
    for side, background in (("trainA", 255), ("trainB", 20)):
        (root / side).mkdir(parents=True)
        for i in range(n):
            cx, cy = rng.uniform(RES * 0.3, RES * 0.7, 2)
            r = rng.uniform(RES * 0.15, RES * 0.3)
            img = np.full((RES, RES, 3), background, np.uint8)
            inside = (
                (xx - cx) ** 2 + (yy - cy) ** 2 < r * r if side == "trainA" else (abs(xx - cx) < r) & (abs(yy - cy) < r)
            )
            img[inside] = rng.integers(0, 120, 3) if side == "trainA" else rng.integers(150, 256, 3)
            Image.fromarray(img).save(root / side / f"{i:03d}.png")
    return str(root)


def _data(tmp_path, kind: str) -> str:
    if kind == "pairs":
        return str(make_paired_folder(tmp_path / "edges2blobs", res=RES))
    if kind == "unpaired":
        return _unpaired_folder(tmp_path / "discs2squares")
    return str(make_archive(tmp_path / "blobs.zip", res=RES))


def _train(tmp_path, model: str, *, precision: str = "auto", steps: int = STEPS, family: dict | None = None, **kw):
    kind, settings = FAMILIES[model]
    cfg = tiny_config(
        tmp_path,
        _data(tmp_path, kind),
        model=model,
        family=dict(settings if family is None else family),
        resolution=RES,
        steps=steps,
        device=DEVICE,
        precision=precision,
        **kw,
    )
    return train(cfg, progress=False)


def _expected_precision(precision: str, model: str) -> str:
    if precision == "auto" and model == "stylegan2":
        return "fp32"  # no autocast: its own fp16 blocks (Family.cuda_autocast = False)
    if precision == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return precision


def _check_run(res, steps: int, precision: str) -> None:
    """The run reached its last step with finite losses and wrote its checkpoint there, trained on CUDA
    in the precision asked for."""
    assert res.step == steps
    losses = {k: v for k, v in res.last.items() if k.startswith("loss")}
    assert losses, "train_step must report at least one loss"
    assert all(math.isfinite(v) for v in losses.values()), losses
    assert ckpt.list_checkpoints(res.run_dir / "checkpoints") == [steps]
    meta = ckpt.read_meta(ckpt.resolve_checkpoint(res.run_dir))
    assert meta["config"]["device"] == DEVICE
    assert meta["loop"]["precision"] == _expected_precision(precision, meta["config"]["model"])


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("precision", ["auto", "fp16"])
@pytest.mark.parametrize("model", list(FAMILIES))
def test_family_trains_on_cuda(tmp_path, model, precision):
    res = _train(tmp_path, model, precision=precision)
    _check_run(res, STEPS, precision)
    m = Model.load(res.run_dir, device=DEVICE)
    if m.capabilities.inputs == "noise":
        out = m.generate([0, 1, 2], output="tensor")
    else:
        spec = m.spec
        x = torch.rand(2, spec.source_channels, spec.source_resolution, spec.source_resolution) * 2 - 1
        out = m.translate(x, output="tensor")
    assert torch.isfinite(out).all() and out.abs().max() <= 1


@pytest.mark.gpu
@needs_cuda
def test_dcgan_trains_compiled_on_cuda(tmp_path):
    res = _train(tmp_path, "dcgan", steps=6, compile=True)
    _check_run(res, 6, "auto")
    assert res.img_s > 0


@pytest.mark.gpu
@needs_cuda
def test_stylegan2_fp16_blocks_compute_in_half_and_stay_finite():
    torch.manual_seed(0)
    fam, spec = StyleGAN2(), DataSpec(resolution=RES, channels=3)
    cfg = fam.resolve_config(StyleGAN2Config(**{**SG2, "num_fp16_res": 2}), spec, 8)
    G = fam.build(cfg, spec)["G"].to(DEVICE).train()
    dtypes = {}
    for res in (8, 16, 32):  # fp16 from 2 ** (log2(32) + 1 - 2) = 16 px on
        block = getattr(G.synthesis, f"b{res}")
        block.register_forward_hook(lambda mod, args, out, res=res: dtypes.__setitem__(res, out[0].dtype))
    img = G(torch.randn(8, cfg.z_dim, device=DEVICE), None, noise_mode="random")
    assert dtypes == {8: torch.float32, 16: torch.float16, 32: torch.float16}
    assert img.dtype == torch.float32 and torch.isfinite(img).all() and img.std() > 0
    img.square().mean().backward()  # the fp16 blocks' backward stays finite too
    assert all(torch.isfinite(p.grad).all() for p in G.parameters() if p.grad is not None)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("precision", ["auto", "fp32"])
def test_stylegan2_with_fp16_blocks_trains_and_generates_finite_images(tmp_path, precision):
    res = _train(tmp_path, "stylegan2", precision=precision, family={**SG2, "num_fp16_res": 2})
    _check_run(res, STEPS, precision)
    m = Model.load(res.run_dir, device=DEVICE)
    images = m.generate(list(range(8)), output="tensor", noise_mode="random")
    assert images.shape == (8, 3, RES, RES)
    assert torch.isfinite(images).all() and images.std() > 0
