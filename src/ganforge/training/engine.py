"""The engine: device, mixed precision and the process group, behind the calls families make.

`Engine` is the `StepContext` the loop hands to `train_step`. It owns
- autocast (bf16 or fp16) around the step, and full precision on request;
- fp16 loss scaling with one GradScaler, updated after every optimizer step (families may step an
  optimizer several times per train_step, e.g. 5 critic updates), with gradients unscaled before their
  norms are taken, so logged norms are the ones applied;
- the hooks distributed data-parallel training needs: `rank`/`world_size`/`is_main`, `reduce`,
  `no_sync`, `wrap` (which keeps the raw networks, that EMA and checkpoints use, apart from the wrapped
  ones that train) and per-rank seeds. On one device they are identities; `torchrun` support fills them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from ..augment import AdaController, make_augment
from ..families.base import StepContext
from ..losses import grad_norm


class Engine(StepContext):
    def __init__(self, device: torch.device, amp_dtype: torch.dtype | None = None) -> None:
        super().__init__(device)
        self.amp_dtype = amp_dtype
        self.scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
        self.skipped_steps = 0  # optimizer steps skipped by the loss scaler (fp16 overflow)
        self._unscaled: set[int] = set()
        self.aug: nn.Module | None = None  # the discriminator augmentation (--aug)
        self.ada: AdaController | None = None  # moves the augmentation's p (--aug ada)

    # ---- discriminator augmentation ------------------------------------------------------------
    def set_augment(self, kind: str, *, p: float = 0.0, target: float = 0.6, kimg: float = 500.0, batch: int = 64) -> None:
        """`--aug`: none | ada (bgc pipeline, p adapted every 4 steps toward r_t = target) | fixed (p) |
        diffaugment (Zhao et al. 2020's color, translation, cutout)."""
        if kind == "none":
            self.aug = self.ada = None
            return
        self.aug = make_augment(kind, p=p) if kind in ("ada", "fixed") else make_augment(kind)
        self.aug.to(self.device)
        self.ada = AdaController(target=target, interval=4, kimg=kimg, p=p, batch=batch) if kind == "ada" else None

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        return images if self.aug is None else self.aug(images)

    def observe_real(self, d_real: torch.Tensor) -> None:
        if self.ada is not None:
            self.ada.observe(d_real)

    def end_step(self, step: int) -> dict[str, float]:
        """Called by the loop after each train_step (1-based `step`): ADA's p update; values to log."""
        if self.ada is None:
            return {"aug_p": float(self.aug.p)} if self.aug is not None and hasattr(self.aug, "p") else {}
        if self.ada.update(step, reduce=lambda t: self.reduce(t, "sum")):
            self.aug.p = self.ada.p  # type: ignore[union-attr]
        return {"aug_p": self.ada.p, "aug_rt": self.ada.rt}

    # ---- precision -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.amp_dtype is None:
            yield
        else:
            with torch.autocast(self.device.type, dtype=self.amp_dtype):
                yield

    def backward(self, loss: torch.Tensor, **kw: Any) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward(**kw)

    def grad_norm(self, module: nn.Module, opt: torch.optim.Optimizer | None = None) -> float:
        if self.scaler is not None and opt is not None and id(opt) not in self._unscaled:
            self.scaler.unscale_(opt)  # once per step; scaler.step() then does not unscale again
            self._unscaled.add(id(opt))
        norm = grad_norm(module)
        return norm if math.isfinite(norm) or self.scaler is None else math.nan

    def step(self, opt: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            opt.step()
            return
        scale = self.scaler.get_scale()
        self.scaler.step(opt)  # skipped when the gradients hold inf/NaN
        self.scaler.update()  # per optimizer step: several steps per train_step are fine
        self._unscaled.discard(id(opt))
        if self.scaler.get_scale() < scale:
            self.skipped_steps += 1

    # ---- processes (single device here; see the module docstring) ------------------------------
    def wrap(self, nets: nn.ModuleDict) -> nn.ModuleDict:
        """The networks `train_step` should use (DDP wrappers under torchrun; the same ones here)."""
        return nets

    def seed(self, base: int) -> int:
        """This process's seed for noise and augmentation (the data order is shared and sharded)."""
        return base + 1_000_003 * self.rank

    def reduce(self, value: torch.Tensor, op: str = "mean") -> torch.Tensor:
        return value

    def state_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.scaler is not None:
            out["scale"] = self.scaler.get_scale()
        if self.ada is not None:
            out["ada"] = self.ada.state_dict()
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and "scale" in state:
            self.scaler = torch.amp.GradScaler(self.device.type, init_scale=float(state["scale"]))
        if self.ada is not None and "ada" in state:
            self.ada.load_state_dict(state["ada"])
            self.aug.p = self.ada.p  # type: ignore[union-attr]
