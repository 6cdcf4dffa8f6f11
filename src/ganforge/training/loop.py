"""The generic training loop: data, device, precision, EMA, checkpoints, sample grids, logging.

A family supplies networks, optimizers and one `train_step`; everything else happens here, in the
order the steps are commented below. Ctrl-C stops after the current step and writes a checkpoint
(press it twice to abort at once).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import RESUMABLE_CHANGES, TrainConfig, family_config_from_dict
from ..data.dataset import BatchSampler, ImageDataset, PointDataset, load_dataset, shadowed_builtin
from ..errors import ConfigError, GanforgeError
from ..families.base import DataSpec, Family, StepContext
from ..registry import get_family
from ..sample.grid import make_grid, render_points, save_png
from ..sample.latents import labels_for_seeds, latents_for_seeds
from . import checkpoint as ckpt
from .device import precision_name, select_device, select_precision
from .diagnostics import Diagnostics


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    interrupted: bool = False
    last: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    img_s: float = 0.0


def total_steps(cfg: TrainConfig) -> int:
    if cfg.kimg is not None:
        return max(1, math.ceil(cfg.kimg * 1000 / cfg.batch))
    return cfg.steps


def check_resume_config(saved: TrainConfig, requested: TrainConfig, explicit: set[str]) -> TrainConfig:
    """Merge a resumed run's saved config with options given now; refuse changes that would make the
    resumed run a different experiment (model, data, batch, ...)."""
    merged = dataclasses.replace(saved)
    for key in sorted(explicit):
        new, old = getattr(requested, key), getattr(saved, key)
        if key == "family":
            fam = dict(saved.family)
            for k, v in new.items():
                if k in fam and fam[k] != v:
                    raise ConfigError(
                        f"cannot resume: the run was trained with {k}={fam[k]}, not {v}; "
                        "drop the setting or start a new run with --run NAME"
                    )
            continue
        if new == old:
            continue
        if key not in RESUMABLE_CHANGES:
            raise ConfigError(
                f"cannot resume: the run was trained with {key}={old}, not {new}; "
                "drop the option or start a new run with --run NAME"
            )
        setattr(merged, key, new)
    return merged


class _StopFlag:
    """First Ctrl-C: finish the current step, checkpoint and stop. Second: abort immediately."""

    def __init__(self) -> None:
        self.requested = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):  # noqa: ANN001
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True

        old = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, old)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@torch.no_grad()
def update_ema(ema: nn.Module, net: nn.Module, beta: float) -> None:
    """EMA of the weights; buffers (e.g. BatchNorm statistics) are copied."""
    # One fused call for all tensors: for small models the per-tensor Python dispatch is the cost.
    torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in net.parameters()], 1.0 - beta)
    buffers = list(ema.buffers())
    if buffers:
        torch._foreach_copy_(buffers, list(net.buffers()))


def ema_beta(cfg: TrainConfig, nimg: int) -> float:
    """Per-step EMA decay for a half-life of `ema_kimg` thousand images (StyleGAN2-ADA convention)."""
    ema_nimg = cfg.ema_kimg * 1000
    if cfg.ema_rampup:
        ema_nimg = min(ema_nimg, nimg * cfg.ema_rampup)
    return 0.5 ** (cfg.batch / max(ema_nimg, 1e-8))


@torch.no_grad()
def recalibrate_batchnorm(
    family: Family, nets: nn.ModuleDict, ema_name: str, spec: DataSpec, latent_shape: tuple[int, ...], device, batches: int = 8, batch: int = 64
) -> None:
    """Recompute BatchNorm statistics of an EMA generator for its own (averaged) weights.

    The running statistics copied from G belong to G's weights, not to the EMA's; feeding the EMA a
    few fixed batches of noise in train mode gives statistics that match it. Uses its own RNG, so
    it never changes the training run's random stream.
    """
    net = nets[ema_name]
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [(m, m.momentum) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    net.train()
    g = torch.Generator().manual_seed(0x5EED)
    try:
        for _ in range(batches):
            z = torch.randn((batch, *latent_shape), generator=g).to(device)
            labels = None
            if spec.num_classes:
                labels = torch.randint(spec.num_classes, (batch,), generator=g).to(device)
            family.sample(nets, z, labels)
    finally:
        for m, mom in saved:
            m.momentum = mom
        net.eval()


class _TensorBoard:
    def __init__(self, run_dir: Path) -> None:
        self.writer = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir))
        except ImportError:  # tensorboard is an optional extra
            pass

    def log(self, step: int, values: dict[str, float]) -> None:
        if self.writer is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and k not in ("step",):
                    self.writer.add_scalar(k, v, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def build_model(
    cfg: TrainConfig, spec: DataSpec, device: torch.device
) -> tuple[Family, Any, nn.ModuleDict]:
    """Family, family config and networks (with EMA copies) for a config; weights freshly initialised."""
    family = get_family(cfg.model)
    fam_cfg = family_config_from_dict(family, cfg.family)
    family.check(fam_cfg, spec)
    nets = family.build(fam_cfg, spec)
    for src, dst in family.ema.items():
        if src in nets:
            nets[dst] = copy.deepcopy(nets[src]).eval().requires_grad_(False)
    nets = nets.to(device)
    return family, fam_cfg, nets


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    explicit: set[str] | None = None,
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
    stop_at: int | None = None,
) -> TrainResult:
    """Train a model as configured; see `TrainConfig`. `stop_at` stops (with a checkpoint) at that
    step as if interrupted, which is how tests exercise interrupt-and-resume."""
    say = echo or (lambda s: None)
    run_dir = cfg.run_dir()
    ckpt_dir = run_dir / "checkpoints"

    # Resolve the run folder: a new run, or the continuation of an existing one.
    if resume:
        if not (run_dir / "config.json").exists():
            raise ConfigError(f"no run to resume at {run_dir}; drop --resume to start it")
        saved = TrainConfig.load(run_dir / "config.json")
        cfg = check_resume_config(saved, cfg, explicit if explicit is not None else set())
        cfg.run, cfg.runs_dir = run_dir.name, str(run_dir.parent)
    elif (run_dir / "config.json").exists() or (ckpt_dir.exists() and ckpt.list_checkpoints(ckpt_dir)):
        raise ConfigError(
            f"run '{run_dir.name}' already exists in {run_dir.parent}; continue it with --resume "
            "or start another with --run NEW_NAME"
        )
    try:
        (run_dir / "samples").mkdir(parents=True, exist_ok=True)
        ckpt_dir.mkdir(exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write the run folder {run_dir} ({exc.strerror}); use --runs-dir on a writable disk") from exc

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = select_device(cfg.device)
    amp_dtype = select_precision(cfg.precision, device)

    # Load the data (uint8, in memory, on the training device).
    note = shadowed_builtin(cfg.data)
    if note:
        say(note)
    data = load_dataset(cfg.data, resolution=cfg.resolution, channels=cfg.channels, progress=progress)
    if cfg.cond and data.num_classes == 0:
        raise ConfigError(f"--cond needs labelled data, and {cfg.data} has no labels; prepare it with labels or drop --cond")
    spec = data.spec(conditional=cfg.cond)
    data = data.to(device)

    # Build networks and optimizers (seeded), then load the checkpoint over them when resuming.
    _seed_everything(cfg.seed)
    family, fam_cfg, nets = build_model(cfg, spec, device)
    cfg.family = dataclasses.asdict(fam_cfg)
    use_cl = cfg.channels_last and spec.kind == "image"
    if use_cl:
        nets = nets.to(memory_format=torch.channels_last)
    opts = family.optimizers(nets, fam_cfg)
    sampler = BatchSampler(len(data), cfg.batch, cfg.seed)
    latent_shape = family.latent_shape(fam_cfg, spec)
    step, nimg, elapsed = 0, 0, 0.0
    if resume:
        base = ckpt.resolve_checkpoint(run_dir, "latest")
        meta = ckpt.read_meta(base)
        tensors = ckpt.load_tensors(base)
        ckpt.load_nets(nets, tensors)
        ckpt.load_optimizers(opts, tensors, meta)
        ckpt.restore_rng(tensors, meta)
        loop_state = meta["loop"]
        step, nimg, elapsed = int(meta["step"]), int(loop_state["nimg"]), float(loop_state.get("elapsed", 0.0))
        sampler.load_state_dict(loop_state["sampler"])
        family.load_state_dict(meta.get("family_state", {}))
        say(f"resuming {run_dir} from step {step}")
    cfg.save(run_dir / "config.json")

    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
    ctx = StepContext(device=device, scaler=scaler, amp_dtype=amp_dtype)
    end = total_steps(cfg)
    grid_seeds = list(range(cfg.grid_size))
    grid_z = latents_for_seeds(grid_seeds, latent_shape, device)
    grid_labels = labels_for_seeds(grid_seeds, spec.num_classes, device=device)
    diag = Diagnostics(spec=spec)
    tb = _TensorBoard(run_dir)
    metrics_file = open(run_dir / "metrics.jsonl", "a")
    stop = _StopFlag()
    result = TrainResult(run_dir=run_dir, step=step)
    evaluator = None
    if cfg.eval_every:
        from .evaluation import PeriodicEvaluator

        evaluator = PeriodicEvaluator(cfg, family, spec, latent_shape, device, data, run_dir)

    def meta_now() -> dict[str, Any]:
        return {
            "family": family.name,
            "config": cfg.to_dict(),
            "spec": spec.to_dict(),
            "family_state": family.state_dict(),
            "loop": {"nimg": nimg, "elapsed": elapsed, "sampler": sampler.state_dict(), "precision": precision_name(amp_dtype)},
            "torch_version": torch.__version__,
        }

    def write_samples() -> None:
        for dst in family.ema.values():
            if dst in nets:
                recalibrate_batchnorm(family, nets, dst, spec, latent_shape, device)
        with torch.no_grad(), _autocast(device, amp_dtype):
            out = family.sample(nets, grid_z, grid_labels)
        path = run_dir / "samples" / f"grid-{step:06d}.png"
        if spec.kind == "points":
            centers = getattr(data, "centers", None)
            with torch.no_grad():
                many = family.sample(nets, torch.randn((2500, *latent_shape), generator=torch.Generator().manual_seed(1)).to(device), None)
            save_png(render_points(many, centers=centers), path)
            for msg in diag.observe_points(step, many, data.points[:2500], centers, getattr(data, "std", 0.0)):
                result.warnings.append(msg)
                _write(bar, f"warning (step {step}): {msg}", say)
        else:
            save_png(make_grid(out.float()), path)
            real = data.batch(torch.arange(min(len(data), len(grid_seeds)), device=data.images.device))["image"]
            real_labels = None
            if grid_labels is not None and data.labels is not None:
                # Up to 16 real images of each class in the grid, for the per-class diversity check.
                idx = torch.cat([torch.nonzero(data.labels == c).flatten()[:16] for c in grid_labels.unique().tolist()])
                real_labels = data.labels[idx]
                real = data.batch(idx.to(data.images.device))["image"]
            for msg in diag.observe_samples(step, out, real, grid_labels, real_labels):
                result.warnings.append(msg)
                _write(bar, f"warning (step {step}): {msg}", say)

    def write_checkpoint() -> None:
        for dst in family.ema.values():
            if dst in nets:
                recalibrate_batchnorm(family, nets, dst, spec, latent_shape, device)
        ckpt.save_checkpoint(ckpt_dir, step, nets, opts, meta_now())
        ckpt.prune(ckpt_dir, cfg.keep_ckpts)

    say(
        f"training {family.name} on {cfg.data} ({len(data)} {'points' if spec.kind == 'points' else 'images'}"
        f"{f' at {spec.resolution}px' if spec.kind == 'image' else ''}) on {device} ({precision_name(amp_dtype)}) "
        f"-> {run_dir}"
    )
    bar = None
    # A live bar on a terminal; in a log file or a pipe, one plain line per --log-every instead of
    # thousands of carriage-return redraws.
    plain_lines = progress and not _is_terminal(sys.stderr)
    if progress and not plain_lines:
        from tqdm.auto import tqdm

        bar = tqdm(total=end, initial=min(step, end), unit="step", dynamic_ncols=True, leave=True)
    window: dict[str, list[float]] = {}
    t_window, n_window = time.perf_counter(), 0
    for net in nets.values():
        net.train()
    for dst in family.ema.values():
        if dst in nets:
            nets[dst].eval()
    try:
        with stop.installed():
            while step < end:
                t0 = time.perf_counter()
                # Fetch a batch of real data.
                batch = sampler_batch(data, sampler, cfg.xflip)
                if use_cl:
                    batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
                # One optimisation step of the family (D and G updates), under autocast.
                with _autocast(device, amp_dtype):
                    logs = family.train_step(nets, opts, batch, step, ctx)
                ctx.update()
                step += 1
                nimg += cfg.batch
                # Update the EMA copies.
                if cfg.ema_kimg > 0:
                    beta = ema_beta(cfg, nimg)
                    for src, dst in family.ema.items():
                        if dst in nets:
                            update_ema(nets[dst], nets[src], beta)
                else:
                    for src, dst in family.ema.items():
                        if dst in nets:
                            nets[dst].load_state_dict(nets[src].state_dict())
                dt = time.perf_counter() - t0
                elapsed += dt
                n_window += cfg.batch
                for k, v in logs.items():
                    window.setdefault(k, []).append(float(v))
                for msg in diag.observe(step, logs):
                    result.warnings.append(msg)
                    _write(bar, f"warning (step {step}): {msg}", say)
                # Log, sample, checkpoint, evaluate.
                last = step >= end or (stop_at is not None and step >= stop_at) or stop.requested
                if step % cfg.log_every == 0 or last:
                    now = time.perf_counter()
                    img_s = n_window / max(now - t_window, 1e-9)
                    rec = {"step": step, "kimg": round(nimg / 1000, 3), "time_s": round(elapsed, 2), "img_s": round(img_s, 1)}
                    rec.update({k: round(sum(v) / len(v), 5) for k, v in window.items() if v})
                    if not all(math.isfinite(v) for k, v in rec.items() if isinstance(v, float)):
                        raise GanforgeError(
                            f"training diverged at step {step} (a loss is NaN or infinite); resume from the last "
                            "checkpoint with a lower learning rate, e.g. --set lr=1e-4"
                        )
                    metrics_file.write(json.dumps(rec) + "\n")
                    metrics_file.flush()
                    tb.log(step, rec)
                    result.last, result.img_s = rec, img_s
                    window, t_window, n_window = {}, now, 0
                    if bar is not None:
                        bar.set_postfix_str(_postfix(rec), refresh=False)
                    elif plain_lines:
                        say(f"step {step}/{end} {_postfix(rec)}")
                if step % cfg.sample_every == 0 or last:
                    write_samples()
                if evaluator is not None and (step % cfg.eval_every == 0 or step >= end):
                    for dst in family.ema.values():
                        if dst in nets:
                            recalibrate_batchnorm(family, nets, dst, spec, latent_shape, device)
                    res = evaluator(nets, step)
                    metrics_file.write(json.dumps({"step": step, "kimg": round(nimg / 1000, 3), **res}) + "\n")
                    metrics_file.flush()
                    write_checkpoint()
                    if evaluator.is_best(res):
                        ckpt.set_pointer(ckpt_dir, "best", step, metric=evaluator.key, value=res.get(evaluator.key))
                    _write(bar, f"step {step}: " + ", ".join(f"{k}={v:.4g}" for k, v in res.items() if isinstance(v, float)), say)
                elif step % cfg.ckpt_every == 0 or last:
                    write_checkpoint()
                if bar is not None:
                    bar.update(1)
                if stop.requested or (stop_at is not None and step >= stop_at and step < end):
                    result.interrupted = True
                    break
    except KeyboardInterrupt:
        # Second Ctrl-C, mid-step: the step's state may be half-updated, so nothing is saved.
        result.interrupted = True
        raise
    finally:
        if bar is not None:
            bar.close()
        metrics_file.close()
        tb.close()
    result.step = step
    return result


def sampler_batch(data: ImageDataset | PointDataset, sampler: BatchSampler, xflip: bool):
    idx = sampler.next().to(data.images.device if isinstance(data, ImageDataset) else data.points.device)
    return data.batch(idx, xflip=xflip)


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


def _postfix(rec: dict[str, Any]) -> str:
    names = [
        ("img_s", "img/s"), ("loss_D", "D"), ("loss_G", "G"), ("D_real", "D(x)"), ("D_fake", "D(G(z))"),
        ("score_real", "D(x)"), ("score_fake", "D(G(z))"), ("grad_D", "|gD|"), ("grad_G", "|gG|"),
    ]
    parts = [f"{label}={rec[k]:.3g}" for k, label in names if k in rec]
    parts += [f"{k}={v:.3g}" for k, v in rec.items() if k.startswith("loss_") and k not in ("loss_D", "loss_G")]
    return " ".join(parts)


def _write(bar, msg: str, say: Callable[[str], None]) -> None:
    if bar is not None:
        bar.write(msg)
    else:
        say(msg)

