"""The one interface every model family implements.

A family owns its networks and its optimisation step; the training loop owns everything else
(data, device, precision, EMA, checkpoints, logging, sampling grids, evaluation). Images cross this
boundary as float tensors in [-1, 1], NCHW; 2-D point data as float tensors (N, D).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import ConfigError


@dataclass
class DataSpec:
    """What a family needs to know about its data to build networks."""

    kind: str = "image"  # "image" (NCHW in [-1, 1]) or "points" (N, dim)
    resolution: int = 32  # image height == width, in pixels
    channels: int = 3  # 1 (grayscale) or 3 (RGB)
    num_classes: int = 0  # 0 for unlabelled data
    class_names: list[str] = field(default_factory=list)  # one name per class index
    dim: int = 2  # dimensionality of point data (kind == "points")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class StepContext:
    """What the loop hands to `train_step`: device, precision and gradient helpers.

    The loop runs `train_step` inside the autocast region; families call `ctx.backward(loss)` (not
    `loss.backward()`) and `ctx.step(opt)` so that fp16 loss scaling works without family code.
    """

    device: torch.device
    scaler: torch.amp.GradScaler | None = None
    amp_dtype: torch.dtype | None = None  # None: full precision

    def backward(self, loss: torch.Tensor, **kw: Any) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward(**kw)

    def step(self, opt: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.step(opt)
        else:
            opt.step()

    def update(self) -> None:
        """Called by the loop once per train_step (updates the fp16 loss scale)."""
        if self.scaler is not None:
            self.scaler.update()

    @contextlib.contextmanager
    def full_precision(self) -> Iterator[None]:
        """Disable autocast for numerically delicate code (gradient penalties, small matrices)."""
        with torch.autocast(self.device.type, enabled=False):
            yield


Batch = dict[str, torch.Tensor]  # "image" (B,C,H,W) in [-1,1], "label" (B,) long, "points" (B,D)


class Family:
    """Base class of a model family. Subclasses set the class attributes and override the methods.

    `Config` is a dataclass of the family's hyper-parameters; every field has a default, so a family
    trains with `Config()`, and `--set key=value` on the CLI overrides fields by name.
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type] = object
    # What the family's `sample` consumes: "noise" (latent vectors, addressed by seed).
    task: ClassVar[str] = "noise"
    # Which data kinds the family can model.
    data_kinds: ClassVar[tuple[str, ...]] = ("image",)
    # Generator -> EMA copy. The loop creates, updates, checkpoints and samples from the copies.
    ema: ClassVar[dict[str, str]] = {"G": "G_ema"}
    # Loop settings this family prefers (e.g. a larger batch for point data), used unless given.
    loop_defaults: ClassVar[dict[str, Any]] = {}

    # ---- configuration -------------------------------------------------------------------------
    def default_config(self) -> Any:
        return self.Config()

    def check(self, cfg: Any, spec: DataSpec) -> None:
        """Raise ConfigError when this family cannot model data of this shape with this config."""
        if spec.kind not in self.data_kinds:
            raise ConfigError(
                f"model '{self.name}' cannot train on {spec.kind} data; use one of: "
                f"{', '.join(self.data_kinds)} data, or another --model"
            )

    def latent_shape(self, cfg: Any, spec: DataSpec) -> tuple[int, ...]:
        """Shape of one latent sample (without the batch dimension)."""
        raise NotImplementedError

    # ---- networks and optimisation -------------------------------------------------------------
    def build(self, cfg: Any, spec: DataSpec) -> nn.ModuleDict:
        """Build the networks ("G", "D", ...). The loop adds the EMA copies named in `ema`."""
        raise NotImplementedError

    def optimizers(self, nets: nn.ModuleDict, cfg: Any) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def train_step(
        self, nets: nn.ModuleDict, opts: dict[str, torch.optim.Optimizer], batch: Batch, step: int, ctx: StepContext
    ) -> dict[str, float]:
        """One optimisation step (D and G updates). Returns scalars to log.

        Conventional keys, shown in the progress line when present: loss_D, loss_G, D_real and
        D_fake (mean probability D assigns to real / generated samples), grad_D, grad_G.
        """
        raise NotImplementedError

    def sample(self, nets: nn.ModuleDict, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Map latents (and labels, for conditional models) to samples: images in [-1, 1] or points."""
        raise NotImplementedError

    # ---- extra state (checkpointed as JSON, e.g. ADA's p or an image pool's fill) --------------
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    # ---- helpers shared by families ------------------------------------------------------------
    @staticmethod
    def generator_net(nets: nn.ModuleDict, name: str = "G") -> nn.Module:
        """The EMA copy of a generator when it exists, else the generator itself."""
        ema = f"{name}_ema"
        return nets[ema] if ema in nets else nets[name]
