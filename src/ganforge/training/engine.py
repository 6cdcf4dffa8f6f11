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

from ..families.base import StepContext
from ..losses import grad_norm


class Engine(StepContext):
    def __init__(self, device: torch.device, amp_dtype: torch.dtype | None = None) -> None:
        super().__init__(device)
        self.amp_dtype = amp_dtype
        self.scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
        self.skipped_steps = 0  # optimizer steps skipped by the loss scaler (fp16 overflow)
        self._unscaled: set[int] = set()

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
        return {"scale": self.scaler.get_scale()} if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and "scale" in state:
            self.scaler = torch.amp.GradScaler(self.device.type, init_scale=float(state["scale"]))
