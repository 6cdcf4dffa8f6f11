"""Many processes, one run: `torchrun` + `torch.distributed` (NCCL on CUDA, gloo on the CPU).

How a distributed run divides the work (the same for every family):
- `--batch` is the *global* batch. Every process draws the same global batch of indices from the shared,
  seeded sampler and keeps its own contiguous slice, so the shards of one step are disjoint and an epoch
  covers the dataset once, whatever the number of processes.
- Every process starts from the same seed, so the networks start equal, and the shared random stream stays
  in step across processes: per-example noise (z, the reparameterisation's eps, style mixing, path-length
  noise) is drawn for the global batch and sliced (`StepContext.randn`). A run on N processes therefore
  computes the same step as one process with the whole batch (up to float summation order), and a
  checkpoint (step, data position, RNG state) resumes on any number of processes.
- Gradients are averaged over processes once per optimizer step, in one flat all-reduce per optimizer (the
  scheme NVlabs' StyleGAN2-ADA/StyleGAN3 trainers use instead of the `DistributedDataParallel` module
  wrapper: a GAN step runs each network in several phases, freezes D with `requires_grad_(False)` for the G
  pass and adds lazy regularisers every k steps, which the wrapper's reducer does not allow without
  `find_unused_parameters`). Gradient accumulation is then free: nothing is exchanged until the step.
- Floating-point buffers (BatchNorm statistics, StyleGAN's tracked W average) are averaged after each step,
  and the logged losses are averaged, so every process takes the same decisions (divergence, stop, ADA's p).
- Only rank 0 writes: checkpoints, sample grids, metrics.jsonl, TensorBoard, status.json, the console.
- BatchNorm normalises over each process's slice; on CUDA it is converted to `SyncBatchNorm` (which
  normalises over the global batch, as one process would); PyTorch has no SyncBatchNorm on the CPU.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .errors import ConfigError


@dataclass(frozen=True)
class ProcessGroup:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def active(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_process_group(device: torch.device, timeout_s: float = 1800.0) -> tuple[ProcessGroup, torch.device]:
    """Join the process group torchrun set up (RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR in the environment),
    and the device this process trains on (cuda:LOCAL_RANK under CUDA). One process: nothing to join."""
    if not launched_by_torchrun():
        return ProcessGroup(), device
    world = int(os.environ["WORLD_SIZE"])
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ConfigError(
                f"process {rank} has LOCAL_RANK {local} but this machine shows {torch.cuda.device_count()} GPU(s); "
                "give torchrun --nproc_per_node at most the number of GPUs"
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise ConfigError(f"distributed training runs on CUDA (NCCL) or the CPU (gloo), not on {device.type}; use --device cuda or cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return ProcessGroup(rank, world, local, backend), device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(obj: Any, group: ProcessGroup) -> Any:
    """`obj` from rank 0, on every process (JSON-like values: configs, error messages)."""
    if not group.active:
        return obj
    box = [obj if group.rank == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_module(module: nn.Module, group: ProcessGroup) -> None:
    """Rank 0's parameters and buffers, on every process."""
    if not group.active:
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def all_reduce_mean_(tensors: list[torch.Tensor], group: ProcessGroup) -> None:
    """Average tensors over processes, in place, in one flat all-reduce per dtype."""
    if not group.active or not tensors:
        return
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    for ts in by_dtype.values():
        flat = torch.cat([t.reshape(-1) for t in ts])
        dist.all_reduce(flat)
        flat.div_(group.world_size)
        offset = 0
        for t in ts:
            n = t.numel()
            t.copy_(flat[offset : offset + n].view_as(t))
            offset += n


def reduce_floats(values: dict[str, float], group: ProcessGroup, device: torch.device) -> dict[str, float]:
    """Logged values averaged over processes (every process logs the same keys)."""
    if not group.active or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= group.world_size
    return dict(zip(keys, t.tolist()))


def any_process(flag: bool, group: ProcessGroup, device: torch.device) -> bool:
    """True on every process when `flag` is true on any (stop requests, time limits)."""
    if not group.active:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def gather_rows(x: torch.Tensor, group: ProcessGroup) -> torch.Tensor:
    """Concatenate every process's rows (N_i, ...) in rank order; sizes may differ by process."""
    if not group.active:
        return x
    n = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(n) for _ in range(group.world_size)]
    dist.all_gather(sizes, n)
    most = int(max(int(s.item()) for s in sizes))
    padded = torch.zeros((most, *x.shape[1:]), dtype=x.dtype, device=x.device)
    padded[: x.shape[0]] = x
    out = [torch.zeros_like(padded) for _ in range(group.world_size)]
    dist.all_gather(out, padded)
    return torch.cat([o[: int(s.item())] for o, s in zip(out, sizes)])


def barrier(group: ProcessGroup) -> None:
    if group.active:
        dist.barrier()


def sync_batchnorm(nets: nn.ModuleDict, device: torch.device, group: ProcessGroup) -> nn.ModuleDict:
    """BatchNorm over the global batch on CUDA (see the module docstring)."""
    if group.active and device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(nets)  # type: ignore[return-value]
    return nets
