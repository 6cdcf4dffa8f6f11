"""The one interface every model family implements.

A family owns its networks and its optimisation step; the training loop owns everything else (data,
device, precision, EMA, checkpoints, logging, previews, evaluation), and the inference path (`Model`,
`sample/`) owns generation. Images cross these boundaries as float tensors in [-1, 1], NCHW; 2-D point
data as float tensors (N, D). The shared vocabulary (`DataSpec`, `Batch`, `Capabilities`, requests)
lives in `ganforge.spec`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import ConfigError
from ..spec import Batch, Capabilities, DataSpec, ImageRequest, NoiseRequest, Request

__all__ = ["Batch", "Capabilities", "DataSpec", "Family", "Networks", "StepContext"]


class Networks(nn.ModuleDict):
    """What `Family.build` returns: the built state of one model, which `train_step`, `generate` and the
    other family methods receive. A family keeps nothing on `self`; everything about a run is here.

    - the trainable networks, by name (a `ModuleDict`: they move, save and load as one; the loop adds
      the EMA copies named in `Family.ema`);
    - `cfg`, the resolved family config, and `spec`, the data spec, as the family built them;
    - `frozen`: helper networks trained by no optimizer and never written into a checkpoint (a VGG for
      a perceptual loss, a feature network inside a projected discriminator). They are rebuilt from
      their package by `Family.setup_training`; the checkpoint records their checksums (`frozen_checksums`);
    - `state`: the run state that is not a network (StyleGAN2's mean path length, CycleGAN's image
      pools), saved through `Family.state_dict`.
    """

    def __init__(self, modules: dict[str, nn.Module] | None = None, *, cfg: Any = None, spec: DataSpec | None = None) -> None:
        super().__init__(modules)
        # Plain attributes (not sub-modules): nn.Module.__setattr__ stores non-module values as usual.
        self.cfg = cfg
        self.spec = spec if spec is not None else DataSpec()
        self.frozen: dict[str, nn.Module] = {}
        self.state: dict[str, Any] = {}

    def subset(self, names: Iterator[str] | tuple[str, ...] | list[str]) -> Networks:
        """The same built state with only the named networks (inference loads just the generator)."""
        out = Networks({k: self[k] for k in names if k in self}, cfg=self.cfg, spec=self.spec)
        out.frozen, out.state = self.frozen, self.state
        return out

    def frozen_checksums(self) -> dict[str, str]:
        """sha256 of each frozen network's tensors (name order), recorded in checkpoints instead of the weights."""
        import hashlib

        out = {}
        for name, net in sorted(self.frozen.items()):
            h = hashlib.sha256()
            for key, t in sorted(net.state_dict().items()):
                h.update(key.encode())
                h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
            out[name] = h.hexdigest()
        return out


class StepContext:
    """What a family's `train_step` gets from the loop: the device, precision and (for distributed runs)
    the process group, behind a few calls. Families call `ctx.backward(loss)` (not `loss.backward()`),
    `ctx.step(opt)` and `ctx.grad_norm(net, opt)`, so fp16 loss scaling and DDP need no family code.

    This base class is the plain single-device, full-precision context (handy in tests); the training
    loop hands families a `training.engine.Engine`, which adds autocast, loss scaling and the hooks
    distributed training needs.
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.amp_dtype: torch.dtype | None = None  # None: full precision
        self.rank, self.world_size = 0, 1
        self.total_steps = 0  # the run's length in steps (0: unknown), for families' schedules
        self.compiled = False  # the training networks are torch.compiled (--compile); see `eager`
        self.micro_batch = 0  # examples per forward/backward pass (--batch-gpu); 0: the whole batch at once
        self.precision_why = ""  # why the engine computes in its precision, for the start line
        self.generator_terms: Any = None  # --constraint / --topk: families.adversarial.GeneratorTerms, or None

    @property
    def is_main(self) -> bool:
        """True on the process that writes files (rank 0)."""
        return self.rank == 0

    def backward(self, loss: torch.Tensor, **kw: Any) -> None:
        loss.backward(**kw)

    def step(self, opt: torch.optim.Optimizer) -> None:
        opt.step()

    def grad_norm(self, module: nn.Module, opt: torch.optim.Optimizer | None = None) -> float:
        """L2 norm of `module`'s gradients, as they will be applied (unscaled under fp16 loss scaling).
        NaN when they are not finite (an fp16 overflow: the engine then skips that optimizer step)."""
        from ..losses import grad_norm

        return grad_norm(module)

    def reduce(self, value: torch.Tensor, op: str = "mean") -> torch.Tensor:
        """`value` combined over all processes ("mean" or "sum"); itself on one device."""
        return value

    def micro_batches(self, n: int) -> list[slice]:
        """A batch of n examples as the parts that go through the networks one at a time (gradient
        accumulation, `--batch-gpu`): the family adds each part's loss times its share of the batch, so
        the step applies the gradient of the whole batch's mean loss. One part without --batch-gpu."""
        m = self.micro_batch
        if m <= 0 or m >= n:
            return [slice(0, n)]
        return [slice(i, min(i + m, n)) for i in range(0, n, m)]

    def randn(
        self, n: int, *shape: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """Standard normal noise for this process's `n` examples: its slice of a draw for the global batch
        (n * world_size), so that a distributed step uses the noise one process would (ganforge/distributed.py)."""
        full = torch.randn(n * self.world_size, *shape, device=device if device is not None else self.device, dtype=dtype)
        return full[self.rank * n : (self.rank + 1) * n]

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """The loop's discriminator augmentation (`--aug`: ADA, DiffAugment), applied by adversarial
        families to every image D sees: reals, fakes, the R1 pass and the G pass (Karras et al. 2020).
        Differentiable; the identity without augmentation."""
        return images

    def observe_real(self, d_real: torch.Tensor) -> None:
        """D's raw outputs on (augmented) reals, for ADA's overfitting heuristic r_t = E[sign(D(x))]."""

    @contextlib.contextmanager
    def no_sync(self, *modules: nn.Module) -> Iterator[None]:
        """Skip gradient synchronisation inside (gradient accumulation under DDP); nothing on one device."""
        yield

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """The loop's mixed precision (none here)."""
        yield

    @contextlib.contextmanager
    def eager(self) -> Iterator[None]:
        """Run compiled networks eagerly inside: code that differentiates twice (R1, path length, gradient
        penalties), which torch.compile cannot. Nothing to do when nothing is compiled."""
        if not self.compiled:
            yield
            return
        with torch.compiler.set_stance("force_eager"):
            yield

    @contextlib.contextmanager
    def full_precision(self) -> Iterator[None]:
        """Disable autocast for numerically delicate code (gradient penalties, small matrices)."""
        with torch.autocast(self.device.type, enabled=False):
            yield


class Family:
    """Base class of a model family. Subclasses set the class attributes and override the methods.

    `Config` is a dataclass of the family's hyper-parameters; every field has a default, so a family
    trains with `Config()`, and `--set key=value` on the CLI overrides fields by name.
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type] = object
    # Which data kinds (spec.DATA_KINDS) the family can model; the first is the one it asks a dataset for.
    data_kinds: ClassVar[tuple[str, ...]] = ("image",)
    # What the trained model can do; callers (CLI, Model, server) ask this instead of probing.
    capabilities: ClassVar[Capabilities] = Capabilities()
    # Networks that generation needs (inference loads only these; EMA copies are loaded in their place).
    generator_nets: ClassVar[tuple[str, ...]] = ("G",)
    # Generator -> EMA copy. The loop creates, updates, checkpoints and samples from the copies.
    ema: ClassVar[dict[str, str]] = {"G": "G_ema"}
    # Whether `--precision auto` may pick bf16 autocast on a CPU with native bf16 (False where it was measured
    # slower than fp32 for this family's networks).
    cpu_bf16: ClassVar[bool] = True
    # Whether `--precision auto` may autocast on CUDA. False where the networks run their own mixed precision
    # (stylegan2's fp16 blocks, as in the reference): autocast would recast those fp16 convolutions to bf16 and
    # promote every fp16 x bf16 op to fp32.
    cuda_autocast: ClassVar[bool] = True
    # Replace NaN/Inf in gradients before each optimizer step (0 and +-1e5), as the StyleGAN2-ADA reference does
    # for its fp16 layers, which train without a loss scaler.
    sanitize_grads: ClassVar[bool] = False
    # train_step splits its batch with `ctx.micro_batches`, so --batch-gpu (gradient accumulation) works.
    accumulates: ClassVar[bool] = False
    # Has a discriminator that sees images, so the loop's --aug (ADA, DiffAugment) applies.
    adversarial: ClassVar[bool] = False
    # Loop settings this family prefers (e.g. a larger batch for point data), used unless given.
    loop_defaults: ClassVar[dict[str, Any]] = {}

    # ---- configuration -------------------------------------------------------------------------
    def default_config(self) -> Any:
        return self.Config()

    def check(self, cfg: Any, spec: DataSpec) -> None:
        """Raise ConfigError when this family cannot model data of this shape with this config."""
        if spec.kind not in self.data_kinds:
            hint = ""
            if {"paired", "unpaired"} & set(self.data_kinds):
                hint = " (a folder with two sub-folders such as trainA/ and trainB/, or side-by-side A|B images)"
            raise ConfigError(
                f"model '{self.name}' cannot train on {spec.kind} data; use one of: "
                f"{', '.join(self.data_kinds)} data{hint}, or another --model"
            )

    def resolve_config(self, cfg: Any, spec: DataSpec, batch: int) -> Any:
        """Fill settings that depend on the data and the batch (e.g. StyleGAN2's `auto` configuration).
        Must be idempotent: the resolved values are saved and resolved again when the run is reloaded."""
        return cfg

    def learning_rate(self, cfg: Any) -> float:
        """The learning rate `--set lr=...` sets, which a divergence message suggests lowering: every built-in
        family's Config names it `lr` (0 until `resolve_config` fills it, for families that pick it from the
        data). A family whose Config has none overrides this with 0.0 (the message then suggests 1e-4)."""
        return float(cfg.lr)

    def data_options(self, cfg: Any) -> dict[str, Any]:
        """How to make this family's kind of data from a plain image dataset (e.g. a super-resolution
        family's scale and crop size); see `data.dataset.as_kind`."""
        return {}

    def latent_shape(self, cfg: Any, spec: DataSpec) -> tuple[int, ...]:
        """Shape of one latent sample (without the batch dimension), for noise-input families."""
        raise NotImplementedError

    # ---- networks and optimisation -------------------------------------------------------------
    def build(self, cfg: Any, spec: DataSpec) -> Networks:
        """Build the networks ("G", "D", ...) and return them with the config and spec they were built for
        (`Networks`). The loop adds the EMA copies named in `ema`. Nothing is kept on the family: inference
        and training may build several models with one family instance."""
        raise NotImplementedError

    def setup_training(self, nets: Networks, device: torch.device) -> None:
        """Training-only helpers that are neither trained nor checkpointed nor built at inference (a frozen
        VGG for a perceptual loss): put them in `nets.frozen`. Called once by the loop."""

    def optimizers(self, nets: Networks, cfg: Any) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def train_step(
        self, nets: Networks, opts: dict[str, torch.optim.Optimizer], batch: Batch, step: int, ctx: StepContext
    ) -> dict[str, float]:
        """One optimisation step (D and G updates). Returns scalars to log.

        Conventional keys, shown in the progress line when present: loss_D, loss_G, D_real and
        D_fake (mean probability D assigns to real / generated samples), grad_D, grad_G.
        """
        raise NotImplementedError

    def label_dependent(self, net: str, key: str) -> bool:
        """Whether tensor `key` of network `net` depends on the number of classes, so that fine-tuning
        from a network with other classes (`--resume-from`) starts it fresh."""
        return "embed" in key

    # ---- what a built model can do -------------------------------------------------------------
    def capabilities_for(self, nets: Networks) -> Capabilities:
        """`capabilities` completed with what depends on the built model: its kind of conditioning and,
        for fully convolutional image-input models, the stride their input sides must be a multiple of."""
        caps = self.capabilities
        if caps.inputs == "image":
            cond = "image"
        elif caps.conditioning == "text":  # declared: the family reads captions (`NoiseRequest.text`, Batch["text"])
            cond = "text"
        else:
            cond = "class" if nets.spec.num_classes else "none"
        return dataclasses.replace(caps, conditioning=cond)

    def notes(self, nets: Networks) -> dict[str, str]:
        """What a run uses that its settings alone do not say (a stated substitute loss, a frozen feature
        network): the loop prints them under the start line and writes them into the run's config.json.
        By default the text entries of `nets.state`."""
        return {k: v for k, v in nets.state.items() if isinstance(v, str)}

    def fp16_layers(self, nets: Networks) -> list[nn.Module]:
        """The precision policy: layers that compute in fp16 by themselves on CUDA (stylegan2's blocks, as in
        the reference), each with a boolean `use_fp16` the loop turns off when an explicit --precision
        applies to the whole network. None by default (the loop's autocast decides)."""
        return []

    def pretrained_sources(self) -> tuple[str, ...]:
        """File suffixes, besides ganforge run folders, that `train --resume-from` can start this family from
        (read by a reader registered in `ganforge.pretrained`, e.g. ".pkl" for NVlabs' networks)."""
        return ()

    # ---- generation ----------------------------------------------------------------------------
    def generate(self, nets: Networks, request: Request) -> torch.Tensor:
        """The one entry point of generation: samples (images in [-1, 1], or points) for a request.

        Checks the request against `capabilities` and dispatches to `sample` (noise) or `translate`
        (images). Families with more to offer (truncation, W space) override it."""
        caps = self.capabilities
        if isinstance(request, NoiseRequest):
            if caps.inputs != "noise":
                raise ConfigError(f"model '{self.name}' translates images; give it images, not seeds")
            if request.truncation != 1.0 and not caps.truncation:
                raise ConfigError(f"model '{self.name}' has no truncation trick; drop --trunc")
            if request.noise_mode != "const" and request.noise_mode not in caps.noise_modes:
                raise ConfigError(f"model '{self.name}' has no per-pixel noise; drop --noise-mode")
            if request.w is not None and not caps.style_mixing:
                raise ConfigError(f"model '{self.name}' has no W space")
            self.check_text(nets, request)
            if request.text is not None:  # text-conditioned families take the captions' bytes as `text`
                return self.sample(nets, request.z, request.labels, text=request.text)
            return self.sample(nets, request.z, request.labels)
        if isinstance(request, ImageRequest):
            if caps.inputs != "image":
                raise ConfigError(f"model '{self.name}' generates from noise; it does not take input images")
            if caps.directions and request.direction not in caps.directions:
                raise ConfigError(
                    f"model '{self.name}' translates {', '.join(caps.directions)}, not {request.direction}"
                )
            return self.translate(nets, request)
        raise TypeError(f"unknown request type {type(request).__name__}")

    def check_text(self, nets: Networks, request: NoiseRequest) -> None:
        """A prompt goes only to a text-conditioned model, and a text-conditioned model needs one."""
        text_model = self.capabilities.conditioning == "text"
        if request.text is not None and not text_model:
            raise ConfigError(f"model '{self.name}' is not conditioned on text; drop the prompt")
        if request.text is None and text_model:
            raise ConfigError(f"model '{self.name}' is conditioned on text; give a prompt")

    def sample(self, nets: Networks, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Noise families: map latents (and labels, for conditional models) to images in [-1, 1] or points.
        Text-conditioned families (`capabilities.conditioning == "text"`) also take `text`, the captions as
        uint8 (B, TEXT_BYTES) (`spec.encode_text`), and read Batch["text"] when training."""
        raise NotImplementedError

    # ---- the text protocol (`capabilities.conditioning == "text"`): generation, the studio and ONNX use it ----
    def sentence(self, nets: Networks, text: torch.Tensor) -> torch.Tensor:
        """Text-conditioned families: captions uint8 (B, TEXT_BYTES) -> the vectors (B, dim) G reads."""
        raise NotImplementedError(f"model '{self.name}' is not conditioned on text")

    def sample_sentence(self, nets: Networks, z: torch.Tensor, sentence: torch.Tensor) -> torch.Tensor:
        """Text-conditioned families: images in [-1, 1] from latents and `sentence` vectors (the ONNX graph)."""
        raise NotImplementedError(f"model '{self.name}' is not conditioned on text")

    def translate(self, nets: Networks, request: ImageRequest) -> torch.Tensor:
        """Image-input families: translate `request.images` (in [-1, 1]) to output images in [-1, 1]."""
        raise NotImplementedError

    def encode(
        self, nets: Networks, images: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Families with `capabilities.encode`: posterior mean and log-variance of images in [-1, 1]."""
        raise NotImplementedError

    def preview_rows(self, nets: Networks, generate: Callable[[Request], torch.Tensor], batch: Batch) -> list[torch.Tensor]:
        """Image-input families: the images a preview shows for fixed inputs, one tensor per column
        (input | output | target by default); `generate` runs a request through the sampler."""
        src = batch["source"] if "source" in batch else batch["A"]
        rows = [src, generate(ImageRequest(src, direction=(self.capabilities.directions or ("AtoB",))[0]))]
        if "target" in batch:
            rows.append(batch["target"])
        return rows

    # ---- the style-space protocol (`capabilities.style_mixing`): mix and project use it -------------
    def num_ws(self, nets: Networks) -> int:
        """Number of per-layer W latents the synthesis network takes."""
        raise NotImplementedError(f"model '{self.name}' has no W space")

    def mapping(self, nets: Networks, z: torch.Tensor, labels: torch.Tensor | None = None, truncation: float = 1.0) -> torch.Tensor:
        """W latents (N, num_ws, w_dim) for latents z (and labels), with truncation toward the mean w."""
        raise NotImplementedError(f"model '{self.name}' has no W space")

    def synthesize(self, nets: Networks, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """Images in [-1, 1] from W latents (N, num_ws, w_dim)."""
        raise NotImplementedError(f"model '{self.name}' has no W space")

    # ---- run state in `nets.state` (e.g. a mean path length, image pools): JSON values or tensors ----
    def state_dict(self, nets: Networks) -> dict[str, Any]:
        """What of `nets.state` a checkpoint keeps (tensors go to safetensors, the rest to JSON)."""
        return {}

    def load_state_dict(self, nets: Networks, state: dict[str, Any]) -> None:
        pass

    # ---- helpers shared by families ------------------------------------------------------------
    @staticmethod
    def generator_net(nets: Networks, name: str = "G") -> nn.Module:
        """The EMA copy of a generator when it exists, else the generator itself."""
        ema = f"{name}_ema"
        return nets[ema] if ema in nets else nets[name]
