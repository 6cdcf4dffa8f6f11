"""Tests for ganforge.augment: ADA's AugmentPipe and AdaController, and DiffAugment."""

from __future__ import annotations

import json

import pytest
import torch

from ganforge.augment import (
    BLIT,
    COLOR,
    CORRUPT,
    GEOM,
    PRESETS,
    AdaController,
    AugmentPipe,
    DiffAugment,
    diff_augment,
    make_augment,
)


def _images(n: int = 8, c: int = 3, res: int = 16, seed: int = 0) -> torch.Tensor:
    """Smooth-ish test images in [-1, 1] with some colour, so that every transform visibly changes them."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, c, res // 4, res // 4, generator=g) * 2 - 1
    x = torch.nn.functional.interpolate(coarse, size=(res, res), mode="bilinear", align_corners=False)
    return (0.7 * x + 0.3 * (torch.rand(n, c, res, res, generator=g) * 2 - 1)).clamp(-1, 1)


def _only(name: str, p: float = 1.0) -> AugmentPipe:
    return AugmentPipe("none", p=p, **{name: 1.0})


@pytest.mark.parametrize("preset", ["blit", "geom", "color", "bgc"])
def test_identity_when_p_is_zero(preset):
    x = _images()
    pipe = AugmentPipe(preset, p=0.0)
    y = pipe(x)
    assert y is x and torch.equal(y, x)


@pytest.mark.parametrize("name", BLIT + GEOM + COLOR + CORRUPT)
def test_each_transform_changes_images_and_is_differentiable(name):
    torch.manual_seed(1)
    x = _images(n=16).requires_grad_(True)
    y = _only(name)(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert not torch.allclose(y, x, atol=1e-4), f"{name} with p=1 left every image unchanged"
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_xflip_is_exact_flip_or_identity():
    torch.manual_seed(0)
    x = _images(n=32)
    y = _only("xflip")(x)
    flipped = [torch.equal(y[i], x[i].flip(-1)) for i in range(len(x))]
    same = [torch.equal(y[i], x[i]) for i in range(len(x))]
    assert all(f or s for f, s in zip(flipped, same))
    assert any(flipped) and any(same)  # applied: a fair coin chooses flip or not (appendix B)


def test_rotate90_gives_one_of_the_four_rotations():
    torch.manual_seed(0)
    x = _images(n=32)
    y = _only("rotate90")(x)
    seen = set()
    for i in range(len(x)):
        ks = [k for k in range(4) if torch.equal(y[i], torch.rot90(x[i], k, dims=(1, 2)))]
        assert len(ks) == 1
        seen.add(ks[0])
    assert seen == {0, 1, 2, 3}


def test_each_transform_has_its_own_coin_with_probability_p():
    torch.manual_seed(0)
    x = _images(n=4000, c=1, res=4)
    y = AugmentPipe("none", p=0.5, xflip=1)(x)
    flipped = (y != x).flatten(1).any(1).float().mean().item()
    assert abs(flipped - 0.25) < 0.03  # chosen with p = 0.5, then a fair coin picks flip or not


def test_integer_translation_moves_whole_pixels():
    torch.manual_seed(0)
    x = _images(n=8, res=32)
    y = _only("xint")(x)
    pool = set(x.flatten().tolist())
    assert set(y.flatten().tolist()) <= pool  # no interpolated values: an exact blit


def test_warp_and_blit_agree_on_whole_pixel_maps():
    # The bilinear warp and the exact gather must share one coordinate convention (centres, reflection),
    # so that an image whose geometric part is the identity looks the same on either path.
    from ganforge.augment import _blit, _rotate2, _scale2, _translate2, _warp

    x = _images(n=3, res=16)
    one = torch.ones(3)
    maps = [
        _translate2(torch.tensor([2.0, -3.0, 0.0]), torch.tensor([-1.0, 0.0, 2.0])),
        _scale2(-one, one),
        _rotate2(torch.zeros(3), one),
        _rotate2(torch.zeros(3), one) @ _translate2(torch.tensor([1.0, 2.0, -2.0]), torch.tensor([0.0, -2.0, 1.0])),
    ]
    for m in maps:
        assert torch.allclose(_warp(x, m), _blit(x, m), atol=1e-5)
    assert torch.allclose(_blit(x, maps[2]), torch.rot90(x, 1, dims=(2, 3))) or torch.allclose(
        _blit(x, maps[2]), torch.rot90(x, -1, dims=(2, 3))
    )


@pytest.mark.parametrize("preset", ["blit", "geom", "bg"])
def test_geometric_output_stays_in_input_range(preset):
    torch.manual_seed(0)
    x = _images(n=16)
    y = AugmentPipe(preset, p=1.0)(x)
    assert torch.isfinite(y).all() and y.abs().max() <= 1.0 + 1e-5  # bilinear + reflection: convex combinations


def test_bgc_output_is_finite_and_roughly_in_range():
    # Colour transforms follow the paper's distributions unclipped (saturation 2^N(0, 1), contrast 2^N(0, 0.5)),
    # so single pixels may leave [-1, 1]; the bulk of each image stays near it.
    torch.manual_seed(0)
    x = _images(n=64, res=16)
    for p in (0.2, 0.5, 1.0):
        y = AugmentPipe("bgc", p=p)(x)
        assert torch.isfinite(y).all()
        assert y.abs().mean() < 1.5
        assert (y.abs() > 1.5).float().mean() < 0.1


def test_deterministic_under_seed_and_generator():
    x = _images(n=16)
    pipe = AugmentPipe("bgc", p=0.7)
    torch.manual_seed(123)
    a = pipe(x)
    torch.manual_seed(123)
    b = pipe(x)
    torch.manual_seed(124)
    c = pipe(x)
    assert torch.equal(a, b) and not torch.equal(a, c)
    d = pipe(x, generator=torch.Generator().manual_seed(5))
    e = pipe(x, generator=torch.Generator().manual_seed(5))
    assert torch.equal(d, e)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("res", [16, 32, 64])
def test_shape_and_dtype_preserved(channels, res):
    torch.manual_seed(0)
    x = _images(n=4, c=channels, res=res)
    for preset in ("bgc", "bgcnc"):
        y = AugmentPipe(preset, p=0.8)(x)
        assert y.shape == x.shape and y.dtype == x.dtype and torch.isfinite(y).all()
    y = AugmentPipe("bgc", p=0.8)(x.double())
    assert y.dtype == torch.float64
    y = AugmentPipe("bgc", p=0.8)(x.bfloat16())
    assert y.dtype == torch.bfloat16


def test_grayscale_colour_keeps_one_channel_and_skips_hue_saturation():
    torch.manual_seed(0)
    x = _images(n=8, c=1)
    assert torch.equal(AugmentPipe("none", p=1.0, hue=1, saturation=1)(x), x)  # hue/saturation need RGB
    y = AugmentPipe("color", p=1.0)(x)
    assert y.shape == x.shape and not torch.allclose(y, x)


def test_channels_last_matches_contiguous():
    x = _images(n=8, res=16)
    pipe = AugmentPipe("bgc", p=0.9)
    torch.manual_seed(3)
    a = pipe(x)
    torch.manual_seed(3)
    b = pipe(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(a, b, atol=1e-6)
    assert b.is_contiguous(memory_format=torch.channels_last)


def test_r1_double_backward_through_pipe():
    # ADA augments the R1 pass too: grad of D(aug(x)) w.r.t. x must itself be differentiable.
    torch.manual_seed(0)
    d = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Softplus(), torch.nn.Flatten(), torch.nn.LazyLinear(1))
    x = _images(n=4).requires_grad_(True)
    out = d(AugmentPipe("bgc", p=1.0)(x))
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    grad.square().sum().backward()
    conv = d[0].weight.grad  # the final bias cannot influence grad_x, so only check the first layer
    assert conv is not None and torch.isfinite(conv).all() and conv.abs().sum() > 0


def test_p_is_settable_and_bad_settings_raise():
    pipe = AugmentPipe("bgc")
    pipe.p = torch.tensor(0.25)
    assert pipe.p == pytest.approx(0.25) and isinstance(pipe.p, float)
    pipe.p = 0.5
    assert pipe.p == 0.5
    with pytest.raises(ValueError, match="preset"):
        AugmentPipe("nope")
    with pytest.raises(ValueError, match="xflp"):
        AugmentPipe("bgc", xflp=1)
    assert set(PRESETS) >= {"blit", "geom", "color", "bgc"}


def test_strength_override_disables_a_transform():
    torch.manual_seed(0)
    x = _images(n=16)
    y = AugmentPipe("blit", p=1.0, rotate90=0, xint=0)(x)
    assert all(torch.equal(y[i], x[i]) or torch.equal(y[i], x[i].flip(-1)) for i in range(len(x)))


# ---------------------------------------------------------------- AdaController


def test_ada_p_increases_when_d_overfits():
    ada = AdaController(interval=4, batch=64, kimg=500)
    step = 64 * 4 / (500 * 1000)
    assert ada.step_size == pytest.approx(step)
    for i in range(1, 13):
        ada.observe(torch.full((64, 1), 3.0))  # stub D: always positive on reals, r_t = 1
        updated = ada.update(i)
        assert updated == (i % 4 == 0)
        assert ada.p == pytest.approx(step * (i // 4))
    assert ada.rt == 1.0 and ada.updates == 3


def test_ada_p_decreases_and_stays_non_negative():
    ada = AdaController(p=0.001, interval=4, batch=64, kimg=500)
    for i in range(1, 3 * 4 + 1):
        ada.observe(-torch.rand(64))  # r_t = -1: D is not overfitting
        ada.update(i)
    assert ada.rt == -1.0 and ada.p == 0.0
    ada = AdaController(p=0.5, interval=2, batch=32, kimg=1)
    for _ in range(2):
        ada.observe(-torch.ones(32))
    assert ada.update(2) and ada.p == pytest.approx(0.5 - 32 * 2 / 1000)


def test_ada_p_capped_at_one_and_no_move_at_target():
    ada = AdaController(p=0.99, interval=1, batch=1000, kimg=1)
    ada.observe(torch.ones(10))
    ada.update()
    assert ada.p == 1.0
    ada = AdaController(p=0.3, interval=1)
    ada.observe(torch.tensor([1.0, 1.0, 1.0, -1.0, 1.0, 1.0, -1.0, 1.0, -1.0, -1.0]))  # r_t = 0.2
    ada.observe(torch.tensor([1.0] * 10))  # r_t over both = 0.6 = target
    ada.update()
    assert ada.rt == pytest.approx(0.6) and ada.p == pytest.approx(0.3)


def test_ada_reduce_hook_sees_sum_and_count():
    seen = []

    def reduce(t: torch.Tensor) -> torch.Tensor:  # a fake 2-process all-reduce: the other rank saw r_t = -1
        seen.append(t.tolist())
        return t + torch.tensor([-8.0, 8.0])

    ada = AdaController(interval=2, batch=8, kimg=1)
    ada.observe(torch.ones(8))
    ada.observe(torch.ones(8))
    assert ada.update(2, reduce=reduce)
    assert seen == [[16.0, 16.0]] and ada.rt == pytest.approx(8 / 24)
    assert ada.p == 0.0


def test_ada_state_dict_round_trip_is_json():
    ada = AdaController(interval=4, batch=16)
    for i in range(1, 7):
        ada.observe(torch.ones(16))
        ada.update(i)
    state = json.loads(json.dumps(ada.state_dict()))
    restored = AdaController(interval=4, batch=16)
    restored.load_state_dict(state)
    assert restored.state_dict() == ada.state_dict()
    for i in range(7, 9):  # the pending half-interval survives the round trip
        ada.observe(torch.ones(16))
        restored.observe(torch.ones(16))
        ada.update(i)
        restored.update(i)
    assert restored.p == ada.p and restored.rt == ada.rt and ada.updates == 2


# ---------------------------------------------------------------- DiffAugment and the factory


def test_diff_augment_changes_images_and_is_differentiable():
    torch.manual_seed(0)
    x = _images(n=8, res=32).requires_grad_(True)
    y = diff_augment(x)
    assert y.shape == x.shape and not torch.allclose(y, x)
    y.square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("policy", ["color", "translation", "cutout"])
def test_diff_augment_single_policies(policy):
    torch.manual_seed(0)
    x = _images(n=8, c=3, res=32)
    y = diff_augment(x, policy)
    assert y.shape == x.shape and not torch.allclose(y, x)
    if policy == "translation":  # whole-pixel shifts with zero padding: values come from x or are 0
        assert set(y.flatten().tolist()) <= set(x.flatten().tolist()) | {0.0}
    if policy == "cutout":
        assert ((y == 0).float().flatten(1).mean(1) >= 0.0625).all()  # a 16x16 hole, at least 8x8 after clipping


def test_diff_augment_rejects_unknown_policy():
    with pytest.raises(ValueError, match="translation"):
        diff_augment(_images(), "color,rotate")


def test_make_augment():
    assert make_augment("none") is None
    ada = make_augment("ada", preset="bgc", p=0.1)
    assert isinstance(ada, AugmentPipe) and ada.p == pytest.approx(0.1)
    fixed = make_augment("fixed", p=0.3)
    assert isinstance(fixed, AugmentPipe) and fixed.p == pytest.approx(0.3)
    da = make_augment("diffaugment", policy="color,translation")
    assert isinstance(da, DiffAugment) and da(_images()).shape == _images().shape
    with pytest.raises(ValueError, match="none.*ada.*fixed.*diffaugment"):
        make_augment("strong")
    with pytest.raises(ValueError, match="p"):
        make_augment("fixed")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_shapes_and_grads():
    x = _images(n=16, res=32).cuda().requires_grad_(True)
    torch.manual_seed(0)
    y = AugmentPipe("bgcnc", p=0.7)(x.contiguous(memory_format=torch.channels_last))
    z = diff_augment(x)
    (y.sum() + z.sum()).backward()
    assert y.is_cuda and torch.isfinite(x.grad).all()
    assert torch.equal(AugmentPipe("bgc", p=0.0)(x), x)
