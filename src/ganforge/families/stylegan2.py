"""StyleGAN2 with ADA (Karras et al. 2020a, "Analyzing and Improving the Image Quality of StyleGAN";
Karras et al. 2020b, "Training Generative Adversarial Networks with Limited Data"), in plain PyTorch.

Networks: `nn/stylegan2.py` (mapping network, modulated/demodulated convolutions, noise inputs, constant
input, skip-architecture G; residual D with minibatch standard deviation; equalized learning rate;
[1,3,3,1] resampling filters), laid out one to one with NVlabs' stylegan2-ada-pytorch so its published
networks can be imported. Training (the official loss, phase by phase):

- G: non-saturating logistic loss softplus(-D(G(z))); style mixing regularisation (two latents, a
  random crossover layer, probability 0.9); lazy path-length regularisation every 4 steps on half the
  batch (Karras et al. 2020a, eq. 4; weight 2, mean tracked with decay 0.01).
- D: softplus(D(G(z))) + softplus(-D(x)); lazy R1 every 16 steps, gamma/2 * ||grad_x D(x)||^2
  (Mescheder et al. 2018), multiplied by the interval.
- Lazy regularisation keeps the optimisers' effective step: Adam's lr and betas are scaled by
  k / (k + 1) for a regulariser every k steps (Karras et al. 2020a, appendix B).
- ADA, DiffAugment: the loop's `--aug`, applied through `ctx.augment` to every image D sees (reals,
  fakes, the R1 pass and the G pass).
- G's EMA is the loop's (`--ema-kimg`, ramp-up 0.05), as in the official `auto` configuration.

`cfg` names a configuration: `auto` (the official formula, from resolution and batch), `paper256`,
`cifar`, or `small` (narrow networks for a CPU). Settings left at 0 / -1 come from it; the resolved
values are saved in the run's config.json.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..nn.stylegan2 import Discriminator, DiscriminatorBlock, Generator, SynthesisBlock
from ..spec import Capabilities, NoiseRequest, Request
from ..vocab import NOISE_MODES
from .base import Batch, DataSpec, Family, Networks, StepContext

PRESETS = ("auto", "small", "paper256", "cifar")


@dataclass
class StyleGAN2Config:
    cfg: str = "auto"  # auto | small | paper256 | cifar: where the settings left at 0 / -1 come from
    z_dim: int = 0  # latent size (0: 512; small: 128)
    w_dim: int = 0  # intermediate latent (W) size (0: as z_dim)
    map_layers: int = 0  # mapping network depth (0: 2; paper256: 8)
    channel_base: int = 0  # widths are min(channel_base / resolution, channel_max) (0: from cfg)
    channel_max: int = 0  # (0: 512; small: 128)
    mbstd_group: int = 0  # minibatch-stddev group size (0: min(batch, 4); cifar: 32)
    lr: float = 0.0  # Adam learning rate of G and D (0: 0.0025, 0.002 at 1024 px)
    gamma: float = -1.0  # R1 weight (-1: 0.0002 * resolution^2 / batch; paper256: 1; cifar: 0.01)
    pl_weight: float = -1.0  # path-length regularisation weight (-1: 2; cifar: 0)
    style_mixing: float = -1.0  # style-mixing probability (-1: 0.9; cifar: 0)
    r1_interval: int = 16  # lazy R1: every this many steps
    pl_interval: int = 4  # lazy path length: every this many steps
    pl_batch_shrink: int = 2  # path length on batch / this many images
    pl_decay: float = 0.01  # decay of the tracked mean path length
    d_architecture: str = ""  # resnet | skip | orig ("": resnet; cifar: orig)
    num_fp16_res: int = 4  # this many highest-resolution blocks in fp16 on CUDA (never on a CPU)
    conv_clamp: float = -1.0  # clamp activations to +-this (-1: 256 when num_fp16_res > 0, else none)
    freezed: int = 0  # Freeze-D (Mo et al. 2020): freeze D's first N layers, for transfer learning


def _preset(name: str, res: int, batch: int) -> dict[str, Any]:
    """The official configurations (stylegan2-ada-pytorch's train.py `cfg_specs`), as settings."""
    auto = {
        "z_dim": 512, "map_layers": 2, "channel_base": 32768 if res >= 512 else 16384, "channel_max": 512,
        "mbstd_group": min(batch, 4), "lr": 0.002 if res >= 1024 else 0.0025, "gamma": 0.0002 * res**2 / batch,
        "pl_weight": 2.0, "style_mixing": 0.9, "d_architecture": "resnet",
    }
    if name == "auto":
        return auto
    if name == "paper256":
        return {**auto, "map_layers": 8, "channel_base": 16384, "mbstd_group": min(batch, 8), "gamma": 1.0}
    if name == "cifar":
        return {
            **auto, "channel_base": 32768, "mbstd_group": min(batch, 32), "gamma": 0.01, "pl_weight": 0.0,
            "style_mixing": 0.0, "d_architecture": "orig",
        }
    if name == "small":
        # Narrow networks that train on a laptop CPU (measured: benchmarks/stylegan_speed.py).
        return {**auto, "z_dim": 128, "channel_base": 1024, "channel_max": 128}  # 32 px: 128-128-64-32 wide, ~1.1 GFLOP/img
    raise ConfigError(f"unknown stylegan2 cfg '{name}': use one of {', '.join(PRESETS)}")


class StyleGAN2(Family):
    accumulates = True
    name = "stylegan2"
    Config = StyleGAN2Config
    data_kinds = ("image",)
    adversarial = True
    capabilities = Capabilities(truncation=True, noise_modes=NOISE_MODES, style_mixing=True)
    loop_defaults: ClassVar[dict[str, Any]] = {"batch": 32}
    # benchmarks/stylegan_speed.py on a 2-core AVX-512 BF16 CPU: 49.5 img/s fp32 vs 37.7 bf16 at 32 px (small):
    # the modulated convolutions' reshapes and the many small ops gain nothing from bf16 there.
    cpu_bf16 = False
    # On CUDA, `--precision auto` is the reference's mixed precision: the num_fp16_res highest-resolution blocks
    # compute in fp16 (activations clamped to +-conv_clamp), everything else in fp32, no autocast; gradients are
    # sanitised before each step as the reference does (no loss scaler).
    cuda_autocast = False
    sanitize_grads = True

    # ---- configuration -------------------------------------------------------------------------
    def check(self, cfg: StyleGAN2Config, spec: DataSpec) -> None:
        super().check(cfg, spec)
        r = spec.resolution
        if r < 8 or r > 1024 or r & (r - 1):
            raise ConfigError(f"stylegan2 needs a power-of-two resolution from 8 to 1024, not {r}; use --resolution 32, 64 or 256")
        if cfg.cfg not in PRESETS:
            raise ConfigError(f"unknown stylegan2 cfg '{cfg.cfg}': use one of {', '.join(PRESETS)}")
        if cfg.d_architecture not in ("", "resnet", "skip", "orig"):
            raise ConfigError(f"unknown d_architecture '{cfg.d_architecture}': use resnet, skip or orig")

    def resolve_config(self, cfg: StyleGAN2Config, spec: DataSpec, batch: int) -> StyleGAN2Config:
        """Fill the settings left at 0 / -1 / "" from the named configuration."""
        p = _preset(cfg.cfg, spec.resolution, batch)
        unset = {f.name: f.default for f in fields(StyleGAN2Config)}
        for key, value in p.items():
            # "Unset" is the field's own default (0, -1 or ""), so an explicit --set pl_weight=0 (where the
            # default is -1) stays 0 instead of being replaced by the preset's value.
            if getattr(cfg, key) == unset[key]:
                setattr(cfg, key, value)
        if not cfg.w_dim:
            cfg.w_dim = cfg.z_dim
        cfg.mbstd_group = math.gcd(cfg.mbstd_group, batch)  # minibatch-stddev groups must divide the batch
        if cfg.conv_clamp < 0:
            cfg.conv_clamp = 256.0 if cfg.num_fp16_res > 0 else 0.0
        return cfg

    def latent_shape(self, cfg: StyleGAN2Config, spec: DataSpec) -> tuple[int, ...]:
        return (cfg.z_dim,)

    # ---- networks and optimisation -------------------------------------------------------------
    def build(self, cfg: StyleGAN2Config, spec: DataSpec) -> Networks:
        if not cfg.z_dim:  # built without a loop (e.g. in a test): resolve with the default batch
            self.resolve_config(cfg, spec, self.loop_defaults["batch"])
        clamp = cfg.conv_clamp or None
        G = Generator(
            cfg.z_dim, spec.num_classes, cfg.w_dim, spec.resolution, spec.channels,
            mapping_kwargs={"num_layers": cfg.map_layers},
            synthesis_kwargs={
                "channel_base": cfg.channel_base, "channel_max": cfg.channel_max, "num_fp16_res": cfg.num_fp16_res,
                "conv_clamp": clamp,
            },
        )
        D = Discriminator(
            spec.num_classes, spec.resolution, spec.channels, architecture=cfg.d_architecture or "resnet",
            channel_base=cfg.channel_base, channel_max=cfg.channel_max, num_fp16_res=cfg.num_fp16_res, conv_clamp=clamp,
            block_kwargs={"freeze_layers": cfg.freezed}, epilogue_kwargs={"mbstd_group_size": cfg.mbstd_group},
        )
        nets = Networks({"G": G, "D": D}, cfg=cfg, spec=spec)
        nets.state["pl_mean"] = torch.zeros([])
        return nets

    def fp16_layers(self, nets: Networks) -> list[nn.Module]:
        """The reference's fp16 blocks (the `num_fp16_res` highest resolutions of G and D)."""
        return [m for m in nets.modules() if isinstance(m, (SynthesisBlock, DiscriminatorBlock)) and m.use_fp16]

    def pretrained_sources(self) -> tuple[str, ...]:
        return (".pkl",)  # NVlabs' network pickles (ganforge.interop.nvlabs)

    def optimizers(self, nets: Networks, cfg: StyleGAN2Config) -> dict[str, torch.optim.Optimizer]:
        """Adam(lr, (0, 0.99), eps 1e-8), with lr and betas scaled by k / (k + 1) for lazy regularisation
        every k steps (Karras et al. 2020a, appendix B)."""
        opts = {}
        for name, k in (("G", cfg.pl_interval if cfg.pl_weight > 0 else 0), ("D", cfg.r1_interval if cfg.gamma > 0 else 0)):
            ratio = k / (k + 1) if k else 1.0
            params = [p for p in nets[name].parameters() if p.requires_grad]
            opts[name] = torch.optim.Adam(params, lr=cfg.lr * ratio, betas=(0.0, 0.99**ratio), eps=1e-8)
        return opts

    @staticmethod
    def _onehot(spec: DataSpec, labels: torch.Tensor | None) -> torch.Tensor | None:
        if not spec.num_classes:
            return None
        if labels is None:
            raise ConfigError("this model is class-conditional: give labels (--class)")
        return F.one_hot(labels.long(), spec.num_classes).float()

    @staticmethod
    def _mix(cfg: StyleGAN2Config, G: nn.Module, z: torch.Tensor, c: torch.Tensor | None, ctx: StepContext) -> torch.Tensor:
        """W latents with style mixing: with probability `style_mixing`, the layers from a random crossover
        point on take the styles of a second latent (Karras et al. 2019, sec. 3.1)."""
        ws = G.mapping(z, c)  # (B, num_ws, w_dim); updates the tracked w_avg in training mode
        num_ws = ws.shape[1]
        if cfg.style_mixing > 0 and num_ws > 1:
            cutoff = int(torch.randint(1, num_ws, ()))
            if float(torch.rand(())) >= cfg.style_mixing:
                cutoff = num_ws
            if cutoff < num_ws:
                ws2 = G.mapping(ctx.randn(*z.shape, device=z.device), c, skip_w_avg_update=True)
                ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
        return ws

    def train_step(self, nets: Networks, opts, batch: Batch, step: int, ctx: StepContext) -> dict[str, float]:
        """Four phases, as in the reference: G main, G path-length reg (every pl_interval steps), D main, D R1
        (every r1_interval steps). Each phase runs its micro-batches (--batch-gpu; one part otherwise),
        adding their gradients, then steps."""
        cfg = nets.cfg
        G, D = nets["G"], nets["D"]
        reals = batch["image"]
        n_all = reals.shape[0]
        cs = self._onehot(nets.spec, batch.get("label"))
        parts = ctx.micro_batches(n_all)
        one = len(parts) == 1
        logs: dict[str, float] = {}

        def rows(t: torch.Tensor | None, part: slice) -> torch.Tensor | None:
            return None if t is None else t[part]

        # G: non-saturating loss through a frozen D.
        D.requires_grad_(False)
        opts["G"].zero_grad(set_to_none=True)
        loss_g_total = 0.0
        for part in parts:
            c, n = rows(cs, part), part.stop - part.start
            z = ctx.randn(n, cfg.z_dim, device=reals.device)
            fake = G.synthesis(self._mix(cfg, G, z, c, ctx), noise_mode="random")
            loss_g = F.softplus(-D(ctx.augment(fake), c)).mean()  # -log sigmoid(D(G(z)))
            ctx.backward(loss_g if one else loss_g * (n / n_all))
            loss_g_total += loss_g.item() * n / n_all
        logs["grad_G"] = ctx.grad_norm(G, opts["G"])
        ctx.step(opts["G"])

        # G regularisation: path length (Karras et al. 2020a, eq. 4), lazily, on a smaller batch.
        if cfg.pl_weight > 0 and step % cfg.pl_interval == 0:
            opts["G"].zero_grad(set_to_none=True)
            pl_total = 0.0
            for part in parts:
                n = part.stop - part.start
                with ctx.full_precision(), ctx.eager():  # double backward: eager under --compile
                    m = max(n // cfg.pl_batch_shrink, 1)
                    c = rows(cs, part)
                    ws = self._mix(cfg, G, ctx.randn(m, cfg.z_dim, device=reals.device), c[:m] if c is not None else None, ctx)
                    img = G.synthesis(ws, noise_mode="random")
                    h, w = img.shape[2:]
                    noise = ctx.randn(*img.shape, device=img.device, dtype=img.dtype) / math.sqrt(h * w)  # y ~ N(0, I) / sqrt(pixels)
                    (grads,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)  # J^T y, (m, num_ws, w_dim)
                    lengths = grads.square().sum(2).mean(1).sqrt()  # ||J^T y|| per sample, (m,)
                    prev = nets.state["pl_mean"].to(lengths.device)
                    pl_mean = prev.lerp(ctx.reduce(lengths.mean().detach()), cfg.pl_decay)  # over all processes
                    nets.state["pl_mean"] = pl_mean.detach()
                    penalty = (lengths - pl_mean).square().mean()
                    # `img[:, 0, 0, 0] * 0` keeps every synthesis parameter in the graph (as the reference does).
                    loss_pl = (img[:, 0, 0, 0] * 0).sum() + penalty * cfg.pl_weight * cfg.pl_interval
                ctx.backward(loss_pl if one else loss_pl * (n / n_all))
                pl_total += penalty.item() * n / n_all
            ctx.step(opts["G"])
            logs["pl_penalty"] = pl_total
            logs["pl_mean"] = float(nets.state["pl_mean"])
        D.requires_grad_(True)

        # D: logistic loss on fresh fakes and on reals.
        opts["D"].zero_grad(set_to_none=True)
        loss_d_total, seen_real, seen_fake = 0.0, [], []
        for part in parts:
            real, c, n = reals[part], rows(cs, part), part.stop - part.start
            with torch.no_grad():
                fake = G.synthesis(self._mix(cfg, G, ctx.randn(n, cfg.z_dim, device=reals.device), c, ctx), noise_mode="random")
            d_fake = D(ctx.augment(fake), c)
            d_real = D(ctx.augment(real), c)
            ctx.observe_real(d_real)
            loss_d = F.softplus(d_fake).mean() + F.softplus(-d_real).mean()
            ctx.backward(loss_d if one else loss_d * (n / n_all))
            loss_d_total += loss_d.item() * n / n_all
            seen_real.append(d_real.detach())
            seen_fake.append(d_fake.detach())
        logs["grad_D"] = ctx.grad_norm(D, opts["D"])
        ctx.step(opts["D"])

        # D regularisation: R1 on reals (Mescheder et al. 2018, eq. 9), lazily.
        if cfg.gamma > 0 and step % cfg.r1_interval == 0:
            opts["D"].zero_grad(set_to_none=True)
            r1_total = 0.0
            for part in parts:
                n = part.stop - part.start
                with ctx.full_precision(), ctx.eager():  # double backward: eager under --compile
                    x = reals[part].detach().float().requires_grad_(True)
                    out = D(ctx.augment(x), rows(cs, part))
                    (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)
                    r1 = g.square().flatten(1).sum(1).mean()
                    loss_r1 = (out * 0).sum() + r1 * (cfg.gamma / 2) * cfg.r1_interval
                ctx.backward(loss_r1 if one else loss_r1 * (n / n_all))
                r1_total += r1.item() * n / n_all
            ctx.step(opts["D"])
            logs["r1"] = r1_total

        d_real, d_fake = torch.cat(seen_real), torch.cat(seen_fake)
        logs.update(
            loss_G=loss_g_total, loss_D=loss_d_total,
            D_real=torch.sigmoid(d_real.float()).mean().item(), D_fake=torch.sigmoid(d_fake.float()).mean().item(),
        )
        return logs

    def label_dependent(self, net: str, key: str) -> bool:
        # G: the label embedding and the first mapping layer (its input is z + embedding); D: the label
        # mapping and the projection output (cmap_dim wide when conditional, 1 when not).
        if net.startswith("G"):
            return key.startswith(("mapping.embed.", "mapping.fc0."))
        return key.startswith(("mapping.", "b4.out."))

    # ---- generation ----------------------------------------------------------------------------
    def generate(self, nets: Networks, request: Request) -> torch.Tensor:
        """Images in [-1, 1] (the network's output, clamped) for seeds/z or W latents, with truncation
        psi toward the tracked average w and the per-pixel noise mode asked for."""
        if not isinstance(request, NoiseRequest):
            return super().generate(nets, request)
        if request.noise_mode not in self.capabilities.noise_modes:
            raise ConfigError(f"unknown noise mode '{request.noise_mode}': use const, random or none")
        if not math.isfinite(request.truncation):
            raise ConfigError("truncation psi must be a finite number (1 = none, 0.7 is usual)")
        ws = request.w if request.w is not None else self.mapping(nets, request.z, request.labels, request.truncation)
        return self.synthesize(nets, ws, request.noise_mode)

    def mapping(self, nets: Networks, z: torch.Tensor, labels: torch.Tensor | None = None, truncation: float = 1.0) -> torch.Tensor:
        """W latents (N, num_ws, w_dim) for z, with the truncation trick (psi toward the tracked mean w)."""
        G = self.generator_net(nets)
        c = self._onehot(nets.spec, labels)
        return G.mapping(z.float(), c, truncation_psi=truncation)

    def synthesize(self, nets: Networks, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        return self.generator_net(nets).synthesis(ws, noise_mode=noise_mode).float().clamp(-1, 1)

    def num_ws(self, nets: Networks) -> int:
        return int(self.generator_net(nets).num_ws)

    # ---- state: the tracked mean path length (a tensor, saved in the checkpoint's safetensors) --
    def state_dict(self, nets: Networks) -> dict[str, Any]:
        return {"pl_mean": nets.state["pl_mean"].detach().cpu().reshape(1)}

    def load_state_dict(self, nets: Networks, state: dict[str, Any]) -> None:
        if "pl_mean" in state:
            nets.state["pl_mean"] = torch.as_tensor(state["pl_mean"], dtype=torch.float32).reshape(())
