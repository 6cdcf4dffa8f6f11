"""Tests for `ganforge.nn.stylegan2` (StyleGAN2 / StyleGAN2-ADA generator and discriminator).

How the layout was established: module names, parameter/buffer names and shapes, initialisation and the order
of operations were taken as facts from the structure of NVlabs' public stylegan2-ada-pytorch release
(training/networks.py and its torch_utils ops); the code in ganforge was written independently from the papers in
plain torch. It was then verified numerically in a scratch directory outside this repository (NVlabs' code is
under a non-commercial license and is not used here): NVlabs' networks were run on CPU with their reference ops,
and for tiny configs (z_dim = w_dim = 32, 16/32/64 px, channel_base 512, channel_max 32, 2 mapping layers,
c_dim 0 and 5, conv_clamp None and 256, G architectures skip/resnet/orig, D architectures resnet/skip/orig;
20 G and 36 D configs) their state dicts were copied key by key into these modules (keys in the same order,
every shape equal; with the same torch seed the initial weights were already bitwise equal). In fp32 on CPU the
max abs difference was 0.0 (bitwise equal) for: upfirdn2d / upsample2d / downsample2d / conv2d_resample /
bias_act over many up/down/padding/flip/groups cases; G images with noise_mode='const', psi 1 and 0.7
(cutoff None and 2, non-zero w_avg), random noise under the same seed, fused and non-fused modconv; the w_avg
update; grads w.r.t. ws with create_graph (path length) and the second-order grads w.r.t. parameters; D logits
(also for channels_last input), the R1 gradient w.r.t. images and its second-order grads w.r.t. parameters.

These tests do not need NVlabs' code: they check shapes, known properties of the ops, the key layout and that
the double backward StyleGAN training needs works, on tiny widths so the file runs in seconds on a CPU.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ganforge.nn.stylegan2 import (
    Conv2dLayer,
    Discriminator,
    FullyConnectedLayer,
    Generator,
    MappingNetwork,
    MinibatchStdLayer,
    SynthesisNetwork,
    bias_act,
    conv2d_resample,
    downsample2d,
    modulated_conv2d,
    setup_filter,
    upfirdn2d,
    upsample2d,
)

TINY = dict(channel_base=256, channel_max=16)


def tiny_g(res: int = 16, c_dim: int = 0, **synth: object) -> Generator:
    return Generator(
        z_dim=16,
        c_dim=c_dim,
        w_dim=16,
        img_resolution=res,
        img_channels=3,
        mapping_kwargs=dict(num_layers=2),
        synthesis_kwargs={**TINY, **synth},
    )


def tiny_d(res: int = 16, c_dim: int = 0, **kwargs: object) -> Discriminator:
    return Discriminator(
        c_dim=c_dim, img_resolution=res, img_channels=3, mapping_kwargs=dict(num_layers=2), **TINY, **kwargs
    )


def _randomise(net: torch.nn.Module, seed: int = 1) -> None:
    """Move zero-initialised biases / noise strengths / w_avg off zero so every path matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("w_avg"):
                t.copy_(torch.randn(t.shape, generator=g))
            elif t.is_floating_point() and not name.endswith("resample_filter"):
                t.add_(0.2 * torch.randn(t.shape, generator=g))


# ---- FIR resampling -------------------------------------------------------------------------------------------------


def test_setup_filter_is_normalised_outer_product() -> None:
    f = setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4)
    torch.testing.assert_close(f, torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64)
    assert setup_filter([1, 3, 3, 1], gain=4).sum().item() == pytest.approx(4.0)
    assert setup_filter([1, 2, 3, 4, 4, 3, 2, 1]).shape == (8,)  # long filters stay separable


def test_upfirdn2d_known_cases() -> None:
    x = torch.arange(1.0, 5.0).reshape(1, 1, 2, 2)
    # Identity filter, up=2: zeros inserted after every pixel.
    up = upfirdn2d(x, None, up=2)
    torch.testing.assert_close(up, torch.tensor([[[[1.0, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]]]]))
    # Negative padding crops; positive pads with zeros.
    assert upfirdn2d(x, None, padding=(1, -1, 0, 0)).tolist() == [[[[0.0, 1.0], [0.0, 3.0]]]]
    # A non-symmetric filter is convolved (flipped), or correlated with flip_filter=True.
    f = torch.tensor([[1.0, 2.0]])
    row = torch.tensor([[[[1.0, 0.0, 0.0]]]])
    assert upfirdn2d(row, f, padding=(1, 0, 0, 0)).tolist() == [[[[1.0, 2.0, 0.0]]]]
    assert upfirdn2d(row, f, padding=(0, 1, 0, 0), flip_filter=True).tolist() == [[[[1.0, 0.0, 0.0]]]]


@pytest.mark.parametrize("res", [8, 16])
def test_constant_image_stays_constant_away_from_borders(res: int) -> None:
    f = setup_filter([1, 3, 3, 1])
    x = torch.full((2, 3, res, res), 0.7)
    up = upsample2d(x, f)
    down = downsample2d(x, f)
    assert up.shape == (2, 3, 2 * res, 2 * res) and down.shape == (2, 3, res // 2, res // 2)
    torch.testing.assert_close(up[:, :, 2:-2, 2:-2], torch.full_like(up[:, :, 2:-2, 2:-2], 0.7))
    torch.testing.assert_close(down[:, :, 1:-1, 1:-1], torch.full_like(down[:, :, 1:-1, 1:-1], 0.7))


def test_upsample_then_downsample_is_near_identity_on_smooth_images() -> None:
    f = setup_filter([1, 3, 3, 1])
    t = torch.linspace(0, math.pi, 32)
    x = (torch.sin(t)[:, None] * torch.cos(0.5 * t)[None, :]).expand(1, 2, 32, 32)
    y = downsample2d(upsample2d(x, f), f)
    assert y.shape == x.shape
    assert (y - x)[:, :, 3:-3, 3:-3].abs().max() < 0.01


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize(("up", "down"), [(2, 1), (1, 2), (1, 1)])
@pytest.mark.parametrize("groups", [1, 2])
def test_conv2d_resample_fast_paths_match_the_definition(k: int, up: int, down: int, groups: int) -> None:
    # Definition (padding applied once, on the upsampled image): zero-insert + pad + FIR (gain up^2) -> valid conv
    # -> FIR + subsample. The fast paths (transposed conv for up, filter then strided conv for down) must agree.
    torch.manual_seed(0)
    f = setup_filter([1, 3, 3, 1])
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    w = torch.randn(6, 4 // groups, k, k, dtype=torch.float64)
    p = k // 2
    fast = conv2d_resample(x, w, f=f, up=up, down=down, padding=p, groups=groups)
    if up > 1:
        p0, p1 = p + (4 + up - 1) // 2, p + (4 - up) // 2
        ref = upfirdn2d(x, f, up=up, padding=(p0, p1, p0, p1), gain=up**2)
    else:
        p0, p1 = (p + (4 - down + 1) // 2, p + (4 - down) // 2) if down > 1 else (p, p)
        ref = upfirdn2d(x, None, padding=(p0, p1, p0, p1))
    ref = F.conv2d(ref, w, groups=groups)
    if down > 1:
        ref = upfirdn2d(ref, f, down=down)
    assert fast.shape == (2, 6, 8 * up // down, 8 * up // down)
    torch.testing.assert_close(fast, ref)


# ---- layers ---------------------------------------------------------------------------------------------------------


def test_bias_act_gain_then_clamp() -> None:
    x = torch.tensor([[-1.0, 0.5, 3.0]])
    b = torch.tensor([0.0, 0.0, 0.0])
    s2 = math.sqrt(2)
    torch.testing.assert_close(bias_act(x, b, act="lrelu"), torch.tensor([[-0.2 * s2, 0.5 * s2, 3 * s2]]))
    torch.testing.assert_close(bias_act(x, b, act="lrelu", clamp=1.0), torch.tensor([[-0.2 * s2, 0.5 * s2, 1.0]]))
    torch.testing.assert_close(bias_act(x, torch.ones(3), act="linear"), x + 1)


def test_fully_connected_equalized_learning_rate() -> None:
    torch.manual_seed(0)
    fc = FullyConnectedLayer(400, 300, lr_multiplier=0.01, bias_init=2.0)
    assert fc.weight.std().item() == pytest.approx(100.0, rel=0.05)  # stored as N(0, 1) / lr_multiplier
    assert fc.weight_gain == pytest.approx(0.01 / 20) and fc.bias_gain == 0.01
    x = torch.randn(64, 400)
    torch.testing.assert_close(fc(x), F.linear(x, fc.weight * fc.weight_gain, fc.bias * 0.01))


def test_modulated_conv_grouped_equals_per_sample_loop_and_non_fused() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 8, 10, 10, dtype=torch.float64)
    weight = torch.randn(5, 8, 3, 3, dtype=torch.float64)
    styles = torch.randn(3, 8, dtype=torch.float64)
    out = modulated_conv2d(x, weight, styles, padding=1)
    for i in range(3):
        wi = weight * styles[i].reshape(1, -1, 1, 1)  # eq. 1
        wi = wi / (wi.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).sqrt()  # eq. 3
        torch.testing.assert_close(out[i : i + 1], F.conv2d(x[i : i + 1], wi, padding=1))
    f = setup_filter([1, 3, 3, 1])
    for kw in (dict(padding=1), dict(padding=1, up=2, resample_filter=f, flip_weight=False), dict(demodulate=False)):
        noise = torch.randn(3, 1, 1, 1, dtype=torch.float64)
        fused = modulated_conv2d(x, weight, styles, noise=noise, fused_modconv=True, **kw)
        unfused = modulated_conv2d(x, weight, styles, noise=noise, fused_modconv=False, **kw)
        torch.testing.assert_close(fused, unfused)


@pytest.mark.parametrize("fused", [False, True])
def test_demodulation_equals_the_reference_path_with_gradients(fused: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """ganforge computes eq. 3 as one (N, I) x (I, O) product; the reference multiplies out the per-sample weights
    (N, O, I, k, k) first. Both must agree, forward and backward (to float64 rounding)."""
    from ganforge.nn import stylegan2 as S

    def run(reference: bool) -> list[torch.Tensor]:
        monkeypatch.setitem(S.REFERENCE_PATH, "demodulation", reference)
        torch.manual_seed(1)
        x = torch.randn(4, 6, 9, 9, dtype=torch.float64, requires_grad=True)
        weight = torch.randn(7, 6, 3, 3, dtype=torch.float64, requires_grad=True)
        styles = (torch.rand(4, 6, dtype=torch.float64) + 0.2).requires_grad_()
        out = modulated_conv2d(x, weight, styles, padding=1, fused_modconv=fused)
        (out * torch.linspace(-1, 1, out.numel(), dtype=torch.float64).reshape(out.shape)).sum().backward()
        return [out.detach(), x.grad, weight.grad, styles.grad]

    for ours, ref in zip(run(False), run(True)):
        torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)


def test_demodulation_gives_unit_variance_on_random_input() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 64, 24, 24)
    out = modulated_conv2d(x, torch.randn(32, 64, 3, 3), 3 * torch.rand(4, 64) + 0.1, padding=1)
    std = out[:, :, 1:-1, 1:-1].std(dim=[2, 3])  # (N, O), interior away from zero padding
    assert 0.85 < std.min().item() and std.max().item() < 1.15


def test_minibatch_std_groups_strided_samples() -> None:
    torch.manual_seed(0)
    x = torch.randn(8, 4, 2, 2)
    y = MinibatchStdLayer(group_size=4)(x)
    assert y.shape == (8, 5, 2, 2)
    # Group of sample 0 is {0, 2, 4, 6} (batch reshaped as (G, N / G)).
    expect = (x[0::2].var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
    torch.testing.assert_close(y[0, 4], expect.expand(2, 2))
    torch.testing.assert_close(y[6, 4], expect.expand(2, 2))


def test_frozen_layers_keep_state_dict_keys() -> None:
    a = Conv2dLayer(3, 4, 3)
    b = Conv2dLayer(3, 4, 3, trainable=False)
    assert sorted(a.state_dict()) == sorted(b.state_dict()) and len(list(b.parameters())) == 0
    d = tiny_d(16, block_kwargs=dict(freeze_layers=2))
    assert sorted(d.state_dict()) == sorted(tiny_d(16).state_dict())
    assert not any(n.startswith("b16.fromrgb") or n.startswith("b16.conv0") for n, _ in d.named_parameters())


# ---- mapping and truncation -----------------------------------------------------------------------------------------


def test_truncation_psi_zero_gives_w_avg_and_cutoff_limits_layers() -> None:
    torch.manual_seed(0)
    m = MappingNetwork(z_dim=16, c_dim=0, w_dim=16, num_ws=6, num_layers=2).eval()
    m.w_avg.copy_(torch.randn(16))
    z = torch.randn(5, 16)
    ws = m(z, None, truncation_psi=0)
    assert ws.shape == (5, 6, 16)
    torch.testing.assert_close(ws, m.w_avg.expand(5, 6, 16))
    full, cut = m(z, None), m(z, None, truncation_psi=0.5, truncation_cutoff=2)
    torch.testing.assert_close(cut[:, :2], m.w_avg + 0.5 * (full[:, :2] - m.w_avg))
    torch.testing.assert_close(cut[:, 2:], full[:, 2:])
    torch.testing.assert_close(m(z, None, psi=0.5), m(z, None, truncation_psi=0.5))


def test_w_avg_tracks_only_in_training_mode() -> None:
    torch.manual_seed(0)
    m = MappingNetwork(z_dim=8, c_dim=3, w_dim=8, num_ws=2, num_layers=2)
    z, c = torch.randn(4, 8), F.one_hot(torch.arange(4) % 3, 3).float()
    m.eval()(z, c)
    assert m.w_avg.abs().sum() == 0
    w = m.train()(z, c)
    torch.testing.assert_close(m.w_avg, (1 - 0.995) * w[:, 0].mean(0).detach())
    before = m.w_avg.clone()
    m(z, c, skip_w_avg_update=True)
    assert torch.equal(before, m.w_avg)


# ---- whole networks -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("res", [16, 32, 64])
def test_shapes(res: int) -> None:
    torch.manual_seed(0)
    g, d = tiny_g(res, c_dim=4).eval(), tiny_d(res, c_dim=4)
    z, c = torch.randn(4, 16), F.one_hot(torch.arange(4), 4).float()
    assert g.num_ws == 2 * int(math.log2(res)) - 2
    img = g(z, c)
    assert img.shape == (4, 3, res, res) and torch.isfinite(img).all()
    assert d(img, c).shape == (4, 1)


@pytest.mark.parametrize("arch", ["skip", "resnet", "orig"])
def test_architectures_and_noise_modes(arch: str) -> None:
    torch.manual_seed(0)
    g = tiny_g(16, architecture=arch, conv_clamp=256)
    _randomise(g)
    g.eval()
    z = torch.randn(2, 16)
    const = g(z, None, noise_mode="const")
    torch.testing.assert_close(g(z, None, noise_mode="const"), const)
    assert not torch.allclose(g(z, None, noise_mode="random"), const)
    assert not torch.allclose(g(z, None, noise_mode="none"), const)
    ws = g.mapping(z, None)
    fused = g.synthesis(ws, noise_mode="const", fused_modconv=True)
    torch.testing.assert_close(g.synthesis(ws, noise_mode="const", fused_modconv=False), fused, atol=1e-5, rtol=1e-5)
    assert tiny_d(16, architecture=arch)(const, None).shape == (2, 1)


def test_same_seed_same_init_and_num_fp16_res_is_fp32_on_cpu() -> None:
    torch.manual_seed(3)
    a = tiny_g(16)
    torch.manual_seed(3)
    b = tiny_g(16, num_fp16_res=2)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    z = torch.randn(2, 16)
    out = b.eval()(z, None)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, a.eval()(z, None))


def test_discriminator_uses_labels_and_accepts_channels_last() -> None:
    torch.manual_seed(0)
    d = tiny_d(16, c_dim=5, architecture="resnet", conv_clamp=256)
    _randomise(d)
    img = torch.randn(4, 3, 16, 16)
    c0 = F.one_hot(torch.tensor([0, 1, 2, 3]), 5).float()
    c1 = F.one_hot(torch.tensor([4, 4, 4, 4]), 5).float()
    out = d(img, c0)
    assert out.shape == (4, 1)
    assert not torch.allclose(out, d(img, c1))
    torch.testing.assert_close(d(img.to(memory_format=torch.channels_last), c0), out)


def test_r1_double_backward_through_discriminator() -> None:
    torch.manual_seed(0)
    d = tiny_d(16, c_dim=3, architecture="resnet")
    img = torch.randn(4, 3, 16, 16, requires_grad=True)
    c = F.one_hot(torch.arange(4) % 3, 3).float()
    (grad,) = torch.autograd.grad(d(img, c).sum(), img, create_graph=True)
    penalty = grad.square().sum(dim=[1, 2, 3]).mean()  # R1, Mescheder et al. 2018, eq. 9
    penalty.backward()
    # Every weight sits on the path from the image to the logit, so the penalty reaches all of them.
    for name, p in d.named_parameters():
        if name.endswith("weight"):
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert d.b16.conv0.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("train", [True, False])
def test_path_length_double_backward_through_generator(train: bool) -> None:
    torch.manual_seed(0)
    g = tiny_g(16).train(train)
    ws = g.mapping(torch.randn(2, 16), None).detach().requires_grad_(True)
    img = g.synthesis(ws, noise_mode="random")
    y = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
    (grad,) = torch.autograd.grad((img * y).sum(), ws, create_graph=True)  # StyleGAN2 eq. 4: J_w^T y
    grad.square().sum(2).mean(1).sqrt().mean().backward()
    w = g.synthesis.b16.conv1.weight.grad
    assert w is not None and torch.isfinite(w).all() and w.abs().sum() > 0


# ---- state dict layout ----------------------------------------------------------------------------------------------

G_KEYS_8PX = [
    "synthesis.b4.const", "synthesis.b4.resample_filter",
    "synthesis.b4.conv1.weight", "synthesis.b4.conv1.noise_strength", "synthesis.b4.conv1.bias",
    "synthesis.b4.conv1.resample_filter", "synthesis.b4.conv1.noise_const",
    "synthesis.b4.conv1.affine.weight", "synthesis.b4.conv1.affine.bias",
    "synthesis.b4.torgb.weight", "synthesis.b4.torgb.bias",
    "synthesis.b4.torgb.affine.weight", "synthesis.b4.torgb.affine.bias",
    "synthesis.b8.resample_filter",
    "synthesis.b8.conv0.weight", "synthesis.b8.conv0.noise_strength", "synthesis.b8.conv0.bias",
    "synthesis.b8.conv0.resample_filter", "synthesis.b8.conv0.noise_const",
    "synthesis.b8.conv0.affine.weight", "synthesis.b8.conv0.affine.bias",
    "synthesis.b8.conv1.weight", "synthesis.b8.conv1.noise_strength", "synthesis.b8.conv1.bias",
    "synthesis.b8.conv1.resample_filter", "synthesis.b8.conv1.noise_const",
    "synthesis.b8.conv1.affine.weight", "synthesis.b8.conv1.affine.bias",
    "synthesis.b8.torgb.weight", "synthesis.b8.torgb.bias",
    "synthesis.b8.torgb.affine.weight", "synthesis.b8.torgb.affine.bias",
    "mapping.w_avg", "mapping.fc0.weight", "mapping.fc0.bias", "mapping.fc1.weight", "mapping.fc1.bias",
]  # fmt: skip

D_KEYS_16PX_COND = [
    "b16.resample_filter", "b16.fromrgb.weight", "b16.fromrgb.bias", "b16.fromrgb.resample_filter",
    "b16.conv0.weight", "b16.conv0.bias", "b16.conv0.resample_filter",
    "b16.conv1.weight", "b16.conv1.bias", "b16.conv1.resample_filter",
    "b16.skip.weight", "b16.skip.resample_filter",
    "b8.resample_filter", "b8.conv0.weight", "b8.conv0.bias", "b8.conv0.resample_filter",
    "b8.conv1.weight", "b8.conv1.bias", "b8.conv1.resample_filter", "b8.skip.weight", "b8.skip.resample_filter",
    "mapping.embed.weight", "mapping.embed.bias", "mapping.fc0.weight", "mapping.fc0.bias",
    "b4.conv.weight", "b4.conv.bias", "b4.conv.resample_filter",
    "b4.fc.weight", "b4.fc.bias", "b4.out.weight", "b4.out.bias",
]  # fmt: skip


def test_state_dict_layout_matches_reference_keys() -> None:
    g = Generator(
        8, 0, 8, 8, 3, mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=64, channel_max=8)
    )
    sd = g.state_dict()
    assert list(sd) == G_KEYS_8PX
    assert sd["synthesis.b4.const"].shape == (8, 4, 4) and sd["synthesis.b8.conv0.noise_const"].shape == (8, 8)
    assert sd["synthesis.b8.torgb.weight"].shape == (3, 8, 1, 1) and sd["synthesis.b4.resample_filter"].shape == (4, 4)
    assert sd["synthesis.b4.conv1.noise_strength"].shape == () and sd["synthesis.b4.conv1.noise_strength"] == 0
    torch.testing.assert_close(sd["synthesis.b4.conv1.affine.bias"], torch.ones(8))  # bias_init=1
    assert g.num_ws == 4

    d = Discriminator(3, 16, 3, channel_base=64, channel_max=8, mapping_kwargs=dict(num_layers=1))
    sd = d.state_dict()
    assert list(sd) == D_KEYS_16PX_COND
    assert "b4.mbstd" not in {k.rsplit(".", 1)[0] for k in sd}  # minibatch std has no parameters
    assert sd["b16.fromrgb.weight"].shape == (4, 3, 1, 1) and sd["b8.skip.weight"].shape == (8, 8, 1, 1)
    assert sd["b4.conv.weight"].shape == (8, 9, 3, 3) and sd["b4.fc.weight"].shape == (8, 8 * 4 * 4)
    assert sd["b4.out.weight"].shape == (8, 8)  # cmap_dim defaults to the 4x4 channel count

    skip_d = Discriminator(0, 16, 3, architecture="skip", channel_base=64, channel_max=8)
    assert {"b8.fromrgb.weight", "b4.fromrgb.weight"} <= set(skip_d.state_dict())
    assert not any(k.startswith("mapping.") for k in skip_d.state_dict())
    assert isinstance(SynthesisNetwork(8, 16, 3, channel_base=64, channel_max=8).num_ws, int)
