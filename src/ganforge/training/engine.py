"""The engine: device, mixed precision and the process group, behind the calls families make.

`Engine` is the `StepContext` the loop hands to `train_step`. It owns
- autocast (bf16 or fp16) around the step, and full precision on request;
- fp16 loss scaling with one GradScaler, updated after every optimizer step (families may step an
  optimizer several times per train_step, e.g. 5 critic updates), with gradients unscaled before their
  norms are taken, so logged norms are the ones applied;
- distributed training under `torchrun` (see `ganforge/distributed.py`): `rank`/`world_size`/`is_main`,
  gradients averaged over processes once per optimizer step (so `no_sync` and gradient accumulation need
  nothing), `reduce` for statistics, `randn` slices of global-batch noise. On one process all of these are
  identities.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from .. import distributed
from ..augment import AdaController, AugmentPipe, make_augment
from ..distributed import ProcessGroup
from ..families.base import StepContext
from ..losses import grad_norm


def _grads(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    """The gradients `opt` will apply (parameters without one left out)."""
    return [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]


class Engine(StepContext):
    def __init__(self, device: torch.device, amp_dtype: torch.dtype | None = None, group: ProcessGroup | None = None) -> None:
        super().__init__(device)
        self.group = group or ProcessGroup()
        self.rank, self.world_size = self.group.rank, self.group.world_size
        self._synced: set[int] = set()  # optimizers whose gradients were averaged over processes this step
        self.amp_dtype = amp_dtype
        self.scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
        self.skipped_steps = 0  # optimizer steps skipped by the loss scaler (fp16 overflow)
        self._unscaled: set[int] = set()
        self.aug: nn.Module | None = None  # the discriminator augmentation (--aug)
        self.ada: AdaController | None = None  # moves the augmentation's p (--aug ada)
        self.sanitize_grads = False  # NaN/Inf in gradients -> 0 / +-1e5 before each step (Family.sanitize_grads)

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
            return {"aug_p": float(self.aug.p)} if isinstance(self.aug, AugmentPipe) else {}  # --aug fixed
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

    def _sync_grads(self, opt: torch.optim.Optimizer) -> None:
        """Average `opt`'s gradients over processes, once per optimizer step (the distributed module docstring)."""
        if not self.group.active or id(opt) in self._synced:
            return
        distributed.all_reduce_mean_(_grads(opt), self.group)
        self._synced.add(id(opt))

    def grad_norm(self, module: nn.Module, opt: torch.optim.Optimizer | None = None) -> float:
        if opt is not None:
            self._sync_grads(opt)  # the norm of the gradient that will be applied
        if self.scaler is not None and opt is not None and id(opt) not in self._unscaled:
            self.scaler.unscale_(opt)  # once per step; scaler.step() then does not unscale again
            self._unscaled.add(id(opt))
        norm = grad_norm(module)
        return norm if math.isfinite(norm) or self.scaler is None else math.nan

    def step(self, opt: torch.optim.Optimizer) -> None:
        self._sync_grads(opt)
        self._synced.discard(id(opt))
        if self.sanitize_grads:
            for grad in _grads(opt):
                torch.nan_to_num_(grad, nan=0.0, posinf=1e5, neginf=-1e5)
        if self.scaler is None:
            opt.step()
            return
        scale = self.scaler.get_scale()
        self.scaler.step(opt)  # skipped when the gradients hold inf/NaN
        self.scaler.update()  # per optimizer step: several steps per train_step are fine
        self._unscaled.discard(id(opt))
        if self.scaler.get_scale() < scale:
            self.skipped_steps += 1

    # ---- processes (see ganforge/distributed.py) --------------------------------------------------
    def reduce(self, value: torch.Tensor, op: str = "mean") -> torch.Tensor:
        if not self.group.active:
            return value
        out = value.detach().clone()
        torch.distributed.all_reduce(out)
        return out / self.world_size if op == "mean" else out

    def sync_buffers(self, nets: nn.ModuleDict) -> None:
        """Average floating-point buffers (BatchNorm statistics, tracked averages) over processes."""
        if self.group.active:
            bufs = [b for b in nets.buffers() if b.is_floating_point()]
            with torch.no_grad():
                distributed.all_reduce_mean_(bufs, self.group)

    def reduce_logs(self, logs: dict[str, float]) -> dict[str, float]:
        return distributed.reduce_floats(logs, self.group, self.device)

    def any_process(self, flag: bool) -> bool:
        return distributed.any_process(flag, self.group, self.device)

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
