"""The generic training loop.

A family supplies networks, optimizers and one `train_step`; the dataset supplies batches and preview
inputs; the engine owns device and precision; the run folder owns files. The loop below reads top to
bottom in the order things happen. Ctrl-C (or SIGTERM) stops after the current step and writes a
checkpoint (press Ctrl-C twice to abort at once).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import checkpoint as ckpt
from .. import distributed
from ..config import TrainConfig
from ..data.dataset import class_weights, load_dataset, shadowed_builtin
from ..device import precision_choice, precision_name, select_device
from ..errors import ConfigError, GanforgeError, UnseenWordsWarning
from ..families.build import build_model
from ..registry import get_family
from ..sample.sampler import Sampler
from ..spec import DataSpec
from .diagnostics import Diagnostics, DivergenceCheck
from .ema import EMASet, ema_beta, update_ema
from .engine import Engine
from .previews import Previews
from .run import RunFolder, check_resume_config
from .tensorboard import TensorBoard

__all__ = [
    "TrainResult", "build_model", "cap_batch", "check_before_data", "check_resume_config", "ema_beta", "slowdown",
    "total_steps", "train", "update_ema",
]


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    interrupted: bool = False
    last: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    img_s: float = 0.0
    signal: int | None = None  # the signal (SIGINT, SIGTERM) that stopped the run, if one did
    config: TrainConfig | None = None  # the run's configuration as trained (after a resume: the merged one)


def total_steps(cfg: TrainConfig) -> int:
    if cfg.kimg is not None:
        return max(1, math.ceil(cfg.kimg * 1000 / cfg.batch))
    return cfg.steps


class _StopFlag:
    """First Ctrl-C (or SIGTERM): finish the current step, checkpoint and stop. Second Ctrl-C: abort."""

    def __init__(self) -> None:
        self.requested = False
        self.signum: int | None = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):  # noqa: ANN001
            if self.requested and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.requested = True
            self.signum = self.signum or signum

        old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, h in old.items():
                signal.signal(sig, h)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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
    # Under torchrun: join the process group (one process: nothing to join). Only rank 0 speaks and writes.
    joined = not distributed.launched_by_torchrun() or torch.distributed.is_initialized()
    group, device = distributed.init_process_group(select_device(cfg.device))
    try:
        if group.rank != 0:
            say, progress = (lambda s: None), False
        return _train(cfg, group, device, resume=resume, explicit=explicit, progress=progress, say=say, stop_at=stop_at)
    finally:
        if not joined:
            distributed.shutdown()


def _open_run(cfg: TrainConfig, group: distributed.ProcessGroup, *, resume: bool, explicit: set[str] | None, say) -> RunFolder:
    """The run folder: a new run, or the continuation of an existing one; rank 0 decides, the others follow."""
    if not group.active:
        return RunFolder(cfg, resume=resume, explicit=explicit, say=say)
    run, error = None, None
    if group.rank == 0:
        try:
            run = RunFolder(cfg, resume=resume, explicit=explicit, say=say)
        except GanforgeError as exc:
            error = exc
    if error is not None:
        mine: dict[str, Any] = {"error": str(error)}
    else:
        mine = {}
        if run is not None:
            mine = {"cfg": run.cfg.to_dict(), "resuming": run.resuming, "lr_changed": run.lr_changed}
    shared = distributed.broadcast_object(mine, group)
    if error is not None:
        raise error
    if "error" in shared:
        raise GanforgeError(shared["error"])
    if run is None:
        run = RunFolder.reader(TrainConfig.from_dict(shared["cfg"]), shared["resuming"])
        run.lr_changed = shared["lr_changed"]
    return run


def _train(
    cfg: TrainConfig,
    group: distributed.ProcessGroup,
    device: torch.device,
    *,
    resume: bool,
    explicit: set[str] | None,
    progress: bool,
    say: Callable[[str], None],
    stop_at: int | None,
) -> TrainResult:
    run = _open_run(cfg, group, resume=resume, explicit=explicit, say=say)
    try:
        return _train_run(run, group, device, progress=progress, say=say, stop_at=stop_at)
    finally:
        run.unlock()


def check_before_data(cfg: TrainConfig, world_size: int = 1) -> None:
    """The checks of a run's settings that need no data, made before the data loads (so that a refused
    --resolution 4096 never resizes the data first) and by `train --dry-run`, which thus refuses what
    the run refuses: the family's settings, --aug, --batch-gpu, and the family's own check (resolution,
    loss, ...) on the data shapes the run could see (see `_possible_specs`)."""
    family = get_family(cfg.model)
    fam_cfg = _family_config(family, cfg)
    if cfg.constraint.strip() or cfg.topk > 0:  # --constraint / --topk: a model and scorers that take them
        from ..curate.constraints import check

        check(cfg)
    if cfg.aug != "none" and not family.adversarial:
        raise ConfigError(f"--aug augments what a discriminator sees, and model '{family.name}' has none; drop --aug")
    _micro_batch(cfg, family, distributed.ProcessGroup(world_size=world_size))
    errors: list[ConfigError] = []
    for spec in _possible_specs(cfg, family, fam_cfg):
        try:
            family.check(dataclasses.replace(fam_cfg), spec)
            return  # some data of this shape trains: the data decides, when it loads
        except ConfigError as exc:
            errors.append(exc)
    if errors:
        # The refusal most shapes share: a bad setting (refused at every side the family supports) rather than
        # the resolution refusal of the few sides it does not.
        counts: dict[str, int] = {}
        for exc in errors:
            counts[str(exc)] = counts.get(str(exc), 0) + 1
        raise max(errors, key=lambda exc: counts[str(exc)])


def _possible_specs(cfg: TrainConfig, family: Any, fam_cfg: Any) -> list[DataSpec]:
    """Data shapes the run could see before its data is read: the family's data kinds at --resolution (or,
    without it, at each power-of-two side from 8 to 1024), with the crop and scale its data options make.
    Points (whose shape is not a resolution) are left out when a resolution is given."""
    options = family.data_options(fam_cfg)
    crop, scale = int(options.get("crop", 0) or 0), int(options.get("scale", 4) or 4)
    channels = cfg.channels or 3
    sides = [cfg.resolution] if cfg.resolution is not None else [2**k for k in range(3, 11)]
    specs = []
    for kind in family.data_kinds:
        if kind == "points":
            if cfg.resolution is None:
                specs.append(DataSpec(kind="points", resolution=0, channels=0))
            continue
        for r in sides:
            if kind == "superres":  # as `data.dataset.as_kind` makes it
                side = crop if crop and crop <= r else r - r % scale
                specs.append(
                    DataSpec(kind=kind, resolution=side, channels=channels, in_resolution=side // scale, in_channels=channels)
                )
            else:
                side = crop if crop and crop <= r else r
                specs.append(DataSpec(kind=kind, resolution=side, channels=channels))
                if kind == "image":  # captioned or not: the data tells (text-conditioned families need captions)
                    specs.append(DataSpec(kind=kind, resolution=side, channels=channels, captions=["a caption"]))
    return specs


def cap_batch(cfg: TrainConfig, size: int, world_size: int = 1) -> str | None:
    """A --batch larger than a dataset of whole examples (images, points) is capped at the dataset's size:
    a larger batch only repeats examples within a step, at the memory cost of the whole batch (--batch
    100000 on 12 images built a 100,000-image batch, 17.6 GB). Rounded down to a multiple of the processes.
    Returns the note to print, or None. (Paired, unpaired and super-resolution data draw random crops, so
    a repeated image is not a repeated example: their batch is left as given.)"""
    if cfg.batch <= size or size < world_size:
        return None
    capped = size - size % world_size
    note = (
        f"note: --batch {cfg.batch} is more than the {size} examples of {cfg.data}; training with --batch {capped} "
        "(the whole set each step)"
    )
    cfg.batch = capped
    return note


def _train_run(
    run: RunFolder,
    group: distributed.ProcessGroup,
    device: torch.device,
    *,
    progress: bool,
    say: Callable[[str], None],
    stop_at: int | None,
) -> TrainResult:
    """One training session (a resume is another), step by step in the order things happen."""
    cfg = run.cfg
    governor, threads_note = _threads(cfg, group, device)
    family, engine = _engine(cfg, group, device)
    data, spec = _load_data(run, family, engine, progress=progress, say=say)
    model = _build(run, engine, data, spec, say)
    at = _Position()
    if run.resuming:
        _restore(run, model, engine, at, say)
        say(f"resuming {run.dir} from step {at.step}")
    if cfg.constraint.strip() or cfg.topk > 0:  # G's loss terms of --constraint / --topk (ganforge.curate)
        from ..curate.constraints import generator_terms

        engine.generator_terms = generator_terms(cfg, len(data), spec.kind, step=lambda: at.step)
    s = _open_session(run, engine, model, at, say=say, stop_at=stop_at)
    s.governor = governor
    if threads_note:  # said once the run has passed every check: a refused run says only why
        say(threads_note)
    _announce(s)
    _start_progress(s, progress)
    return _loop(s)


def _threads(cfg: TrainConfig, group: distributed.ProcessGroup, device: torch.device) -> tuple[Any, str]:
    """--threads N fixes torch's CPU threads; 0 on a CPU (one process) lets `cpu_share.ThreadGovernor` give the run
    the cores other processes leave free, now and as their load changes (two trainings on two cores: one thread
    each, 2.6x faster each than two threads each). Fixed threads are what makes a CPU run reproducible bit for bit.
    Returns the governor (or None) and its start note ("" when it has nothing to say)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
        return None, ""
    if device.type != "cpu" or group.world_size > 1:
        return None, ""
    from ..cpu_share import ThreadGovernor

    governor = ThreadGovernor()
    return governor, governor.start() or ""


# ---- the session's state ---------------------------------------------------------------------


@dataclass
class _Model:
    """What a session trains: the family's networks and optimizers, and the data's stream of batches."""

    family: Any
    fam_cfg: Any
    spec: DataSpec
    data: Any
    nets: Any  # families.base.Networks
    opts: dict[str, torch.optim.Optimizer]
    stream: Any
    fp16_layers: list[Any]  # the family's own half-precision layers (see `_precision_policy`)
    fresh_lrs: dict[str, list[float]]  # each optimizer's learning rates as the config gives them
    lower_lr: str  # the learning rate a divergence message suggests


@dataclass
class _Position:
    """Where training stands: what each checkpoint's `loop` meta saves, and a resume or a rollback restores."""

    step: int = 0
    nimg: int = 0
    elapsed: float = 0.0
    lr_scale: float = 1.0  # --on-nan rollback halves the learning rates each time
    frozen_networks: dict[str, str] = field(default_factory=dict)  # the checksums the restored checkpoint holds


@dataclass
class _Window:
    """The logging window: values and examples since the last log line, and when it began."""

    t0: float
    values: dict[str, list[float]] = field(default_factory=dict)
    images: int = 0


@dataclass
class _Session:
    """Everything the steps share: the model and where it stands, what samples it, and what is written."""

    run: RunFolder
    engine: Engine
    model: _Model
    at: _Position
    notes: dict[str, str]  # the family's notes (Family.notes), in config.json and the start lines
    sampler: Sampler  # everything that samples goes through it: EMA recalibration, previews, evaluation
    ema: EMASet
    previews: Previews
    evaluator: Any  # evaluation.PeriodicEvaluator, or None without --eval-every
    tb: TensorBoard
    frozen: dict[str, str]  # frozen networks are rebuilt from their package, never saved: checksums only
    end: int
    result: TrainResult
    say: Callable[[str], None]
    stop_at: int | None
    stop: _StopFlag = field(default_factory=_StopFlag)
    divergence: DivergenceCheck = field(default_factory=DivergenceCheck)
    rollbacks: int = 0
    bar: Any = None  # the tqdm bar on a terminal
    plain_lines: bool = False  # one plain line per --log-every (progress off a terminal)
    window: _Window = field(default_factory=lambda: _Window(0.0))
    t_start: float = 0.0  # --max-minutes counts from here: each invocation (each --resume) gets the whole budget
    rates: list[float] = field(default_factory=list)  # img/s of each log interval, for `slowdown`
    governor: Any = None  # cpu_share.ThreadGovernor: --threads 0 on a CPU follows other processes' load

    @property
    def cfg(self) -> TrainConfig:
        return self.run.cfg

    def write(self, msg: str) -> None:
        _write(self.bar, msg, self.say)

    def warn(self, msg: str) -> None:
        self.result.warnings.append(msg)
        self.write(f"warning (step {self.at.step}): {msg}")

    def meta(self) -> dict[str, Any]:
        """A checkpoint's meta: what the networks and optimizers alone do not say."""
        at, engine = self.at, self.engine
        return {
            "frozen_networks": self.frozen,
            "family": self.model.family.name,
            "config": self.cfg.to_dict(),
            "spec": self.model.spec.to_dict(),
            "loop": {
                "nimg": at.nimg, "elapsed": at.elapsed, "sampler": self.model.stream.state_dict(),
                "precision": precision_name(engine.amp_dtype), "engine": engine.state_dict(), "lr_scale": at.lr_scale,
            },
            "torch_version": torch.__version__,
        }

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.run.close()
        self.tb.close()


# ---- before the first step -------------------------------------------------------------------


def _engine(cfg: TrainConfig, group: distributed.ProcessGroup, device: torch.device) -> tuple[Any, Engine]:
    """The family (as registered) and the engine: device, precision and process group."""
    family = get_family(cfg.model)
    # Family.cpu_bf16: bf16 measured slower than fp32 on a CPU for this family; Family.cuda_autocast False: the
    # family's networks run their own mixed precision.
    amp, why = precision_choice(
        cfg.precision, device, family=family.name, cpu_bf16=family.cpu_bf16, cuda_autocast=family.cuda_autocast
    )
    engine = Engine(device, amp, group)
    engine.precision_why = why
    engine.sanitize_grads = family.sanitize_grads and device.type == "cuda"
    engine.micro_batch = _micro_batch(cfg, family, group)
    return family, engine


def _load_data(run: RunFolder, family: Any, engine: Engine, *, progress: bool, say: Callable[[str], None]) -> tuple[Any, DataSpec]:
    """The data, as the kind the family consumes (uint8, in memory, on the training device), and its spec."""
    cfg, group = run.cfg, engine.group
    note = shadowed_builtin(cfg.data)
    if note:
        say(note)
    check_before_data(cfg, group.world_size)
    data = load_dataset(
        cfg.data, resolution=cfg.resolution, channels=cfg.channels, progress=progress,
        kinds=family.data_kinds, options=family.data_options(_family_config(family, cfg)),
    )
    if data.left_out:  # files of a raw folder or zip that could not be used, and why
        first, why = data.left_out[0]
        say(
            f"note: {len(data.left_out)} file(s) in {cfg.data} were left out, e.g. {first} ({why}); "
            f"'ganforge prepare {cfg.data} DEST' writes a report naming each one"
        )
    if cfg.cond and data.num_classes == 0:
        raise ConfigError(f"--cond needs labelled data, and {cfg.data} has no labels; prepare it with labels or drop --cond")
    if cfg.class_balance and data.labels is None:
        raise ConfigError(f"--class-balance draws the classes of a labelled set, and {cfg.data} has no labels; drop --class-balance")
    note = cap_batch(cfg, len(data), group.world_size) if data.kind in ("image", "points") and not run.resuming else None
    if note:
        say(note)
        engine.micro_batch = _micro_batch(cfg, family, group)
    spec = data.spec(conditional=cfg.cond)
    return data.to(engine.device), spec


def _build(run: RunFolder, engine: Engine, data: Any, spec: DataSpec, say: Callable[[str], None]) -> _Model:
    """Networks (seeded; with --resume-from's weights when given) and optimizers, and the stream of batches.
    The resolved family settings become the run's (`cfg.family`)."""
    cfg, device, group = run.cfg, engine.device, engine.group
    pretrained = None
    if cfg.resume_from and not run.resuming:
        # Read before building: a file from another codebase (an NVlabs pickle) brings its architecture (widths,
        # mapping depth, ...), which becomes the run's.
        pretrained = _read_pretrained(cfg)
        cfg.family.update({k: v for k, v in pretrained[0].items() if k != "cfg"})
    _seed_everything(cfg.seed)
    family, fam_cfg, nets = build_model(cfg, spec, device)
    nets = distributed.sync_batchnorm(nets, device, group)
    fp16_layers = _precision_policy(family, nets, cfg, device)
    cfg.family = dataclasses.asdict(fam_cfg)
    lower_lr = _lower_lr(family, fam_cfg, spec, cfg.batch)
    if cfg.resume_from and not run.resuming:
        say(_load_pretrained(family, nets, cfg.resume_from, pretrained[1] if pretrained else {}, spec))
    if cfg.channels_last and spec.kind not in ("points", "voxels"):  # NHWC is a layout of 2-D feature maps
        nets = nets.to(memory_format=torch.channels_last)
    if cfg.compile:
        _compile(family, nets)
        engine.compiled = True
    family.setup_training(nets, device)
    engine.set_augment(cfg.aug, p=cfg.aug_p, target=cfg.aug_target, kimg=cfg.aug_kimg, batch=cfg.batch)
    distributed.broadcast_module(nets, group)  # equal already (same seed); made certain
    opts = family.optimizers(nets, fam_cfg)
    stream = data.stream(cfg.batch, cfg.seed, xflip=cfg.xflip, **({"class_balance": cfg.class_balance} if cfg.class_balance else {}))
    if cfg.class_balance:
        say(_class_balance_line(data, cfg.class_balance))
    if group.active:
        stream.shard(group.rank, group.world_size)  # this process's slice of every global batch
    fresh_lrs = {name: [g["lr"] for g in opt.param_groups] for name, opt in opts.items()}
    return _Model(family, fam_cfg, spec, data, nets, opts, stream, fp16_layers, fresh_lrs, lower_lr)


def _precision_policy(family: Any, nets: Any, cfg: TrainConfig, device: torch.device) -> list[Any]:
    """The family's own fp16 layers (stylegan2's `use_fp16` blocks), which compute in fp16 only on CUDA."""
    fp16_layers = family.fp16_layers(nets)
    if device.type == "cuda" and cfg.precision != "auto":
        # An explicit --precision is the whole network's: the family's own fp16 layers (stylegan2's blocks, the
        # reference's mixed precision under `auto`) compute in the engine's precision instead.
        for m in fp16_layers:
            m.use_fp16 = False
        fp16_layers = []
    return fp16_layers


def _restore(run: RunFolder, model: _Model, engine: Engine, at: _Position, say: Callable[[str], None]) -> None:
    """Load the latest checkpoint over networks, optimizers, RNGs, data order, engine and family state, and
    `at` (on --resume, and on each --on-nan rollback)."""
    meta, tensors = run.load_latest(say)
    at.frozen_networks = dict(meta.get("frozen_networks") or {})
    ckpt.load_nets(model.nets, tensors)
    ckpt.load_optimizers(model.opts, tensors, meta)
    ckpt.restore_rng(tensors, meta)
    loop_state = meta["loop"]
    at.step, at.nimg, at.elapsed = int(meta["step"]), int(loop_state["nimg"]), float(loop_state.get("elapsed", 0.0))
    at.lr_scale = float(loop_state.get("lr_scale", 1.0))
    if run.lr_changed:  # --resume --set lr=...: the optimizers keep their state and take the new rates
        for name, opt in model.opts.items():
            for g, lr in zip(opt.param_groups, model.fresh_lrs[name]):
                g["lr"] = lr * at.lr_scale
    model.stream.load_state_dict(loop_state["sampler"])
    engine.load_state_dict(loop_state.get("engine", {}))
    model.family.load_state_dict(model.nets, ckpt.family_state(tensors, meta))


def _open_session(
    run: RunFolder, engine: Engine, model: _Model, at: _Position, *, say: Callable[[str], None], stop_at: int | None
) -> _Session:
    """config.json, metrics.jsonl and status.json opened at the session's first step; the sampler, EMA copies,
    previews, evaluator and TensorBoard writer built."""
    cfg, family, nets, spec = run.cfg, model.family, model.nets, model.spec
    notes = family.notes(nets)
    run.save_config(notes)
    run.open_metrics(at.step)
    run.set_status("training", at.step)
    latent_shape = family.latent_shape(model.fam_cfg, spec) if family.capabilities.inputs == "noise" else ()
    sampler = Sampler(family, nets, spec, latent_shape, engine.device, autocast=engine.autocast)
    ema = EMASet(family, nets, cfg)
    result = TrainResult(run_dir=run.dir, step=at.step)
    previews = Previews(sampler, model.data, cfg.grid_size, Diagnostics(spec=spec))
    evaluator = _periodic_evaluator(cfg, sampler, model.data, run.dir, engine.group)
    tb = TensorBoard(run.dir, enabled=engine.is_main, config=cfg.to_dict())
    end = total_steps(cfg)
    engine.total_steps = end
    return _Session(
        run, engine, model, at, notes, sampler, ema, previews, evaluator, tb, nets.frozen_checksums(), end, result,
        say, stop_at,
    )


def _announce(s: _Session) -> None:
    """The start lines: a frozen network that changed since the checkpoint, what trains on what, the family's notes."""
    for name, digest in s.at.frozen_networks.items():
        if s.frozen.get(name, digest) != digest:
            s.say(f"warning: the frozen network '{name}' differs from the one this run was trained with (another package "
                  "version?); training goes on with the one installed now")
    cfg, model, device = s.cfg, s.model, s.engine.device
    spec = model.spec
    # The family's own half-precision layers (stylegan2's `use_fp16` blocks) compute in fp16 only on CUDA.
    own_fp16 = " + the family's fp16 layers" if device.type == "cuda" and model.fp16_layers else ""
    s.say(
        f"training {model.family.name} on {cfg.data} ({len(model.data)} {_what(spec)}) on {device} ({precision_name(s.engine.amp_dtype)}{own_fp16}: "
        f"{s.engine.precision_why}) "
        f"-> {s.run.dir}"
    )
    for key, text in s.notes.items():
        s.say(f"  {key.replace('_', ' ')}: {text}")


def _start_progress(s: _Session, progress: bool) -> None:
    """A live bar on a terminal; in a log file or a pipe, one plain line per --log-every instead of thousands
    of carriage-return redraws. The clocks start."""
    s.plain_lines = progress and not _is_terminal(sys.stderr)
    if progress and not s.plain_lines:
        from tqdm.auto import tqdm

        s.bar = tqdm(total=s.end, initial=min(s.at.step, s.end), unit="step", dynamic_ncols=True, leave=True)
    s.window = _Window(time.perf_counter())
    s.t_start = s.window.t0


# ---- the steps -------------------------------------------------------------------------------


def _loop(s: _Session) -> TrainResult:
    """Steps until the end, a stop or an error; status.json says which, and the files close however it ends."""
    s.model.nets.train()
    s.ema.eval()
    try:
        with s.stop.installed():
            while s.at.step < s.end:
                if not _step(s):
                    continue  # diverged, and rolled back to the last checkpoint
                if _after_step(s):
                    break
    except KeyboardInterrupt:
        # Second Ctrl-C, mid-step: the step's state may be half-updated, so nothing is saved.
        s.result.interrupted = True
        s.run.set_status("stopped", s.at.step, "interrupted")
        raise
    except BaseException as exc:
        s.run.set_status("failed", s.at.step, str(exc)[:500])
        raise
    else:
        s.run.set_status("stopped" if s.result.interrupted else "done", s.at.step)
    finally:
        s.close()
    s.result.step = s.at.step
    s.result.config = s.cfg
    return s.result


def _step(s: _Session) -> bool:
    """One optimisation step and what follows it at once (EMA, the logging window, the checks of its values);
    False when it diverged and was rolled back (--on-nan rollback), and a divergence error otherwise."""
    cfg, model, engine, at = s.cfg, s.model, s.engine, s.at
    t0 = time.perf_counter()
    # Fetch a batch of real data (the dataset augments it: flips, crops, degradations).
    batch = model.stream.next()
    if cfg.channels_last and model.spec.kind not in ("points", "voxels"):
        batch = {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v for k, v in batch.items()}
    # One optimisation step of the family (D and G updates), under autocast.
    with engine.autocast():
        logs = model.family.train_step(model.nets, model.opts, batch, at.step, engine)
    at.step += 1
    at.nimg += cfg.batch
    logs.update(engine.end_step(at.step))
    # Processes agree: buffers and logged values averaged (identities on one process).
    engine.sync_buffers(model.nets)
    logs = engine.reduce_logs(logs)
    s.ema.update(at.nimg)
    at.elapsed += time.perf_counter() - t0
    s.window.images += cfg.batch
    for k, v in logs.items():
        s.window.values.setdefault(k, []).append(float(v))
    for msg in s.previews.diag.observe(at.step, logs):
        s.warn(msg)
    problem = s.divergence(at.step, logs)
    if problem is None:
        return True
    _roll_back(s, problem)
    return False


def _roll_back(s: _Session, problem: str) -> None:
    """--on-nan rollback: back to the last checkpoint with every learning rate halved. Without it (or without a
    checkpoint, or after MAX_ROLLBACKS), the divergence error."""
    if s.cfg.on_nan != "rollback" or not _last_ckpt(s.run) or s.rollbacks >= MAX_ROLLBACKS:
        why = f" after {s.rollbacks} rollbacks" if s.rollbacks else ""
        raise GanforgeError(_diverged(f"training diverged{why}: {problem}", s.run, s.model.lower_lr))
    bad_step = s.at.step
    _restore(s.run, s.model, s.engine, s.at, s.say)  # the learning rates (and lr_scale) as they were at that checkpoint
    s.rollbacks += 1
    s.at.lr_scale *= 0.5
    for opt in s.model.opts.values():
        for g in opt.param_groups:
            g["lr"] *= 0.5
    s.divergence = DivergenceCheck()
    s.window = _Window(s.window.t0)
    s.run.log({"step": s.at.step, "rollback_from": bad_step, "lr_scale": s.at.lr_scale})
    s.warn(f"{problem}: rolled back to step {s.at.step} with the learning rates scaled by {s.at.lr_scale:g}")


def _after_step(s: _Session) -> bool:
    """What is due after a step: log, sample grid, checkpoint, evaluation. True when the session stops here."""
    cfg, step = s.cfg, s.at.step
    timed_out = cfg.max_minutes > 0 and time.perf_counter() - s.t_start >= cfg.max_minutes * 60
    halt = s.engine.any_process(s.stop.requested or timed_out)  # every process stops at the same step
    last = step >= s.end or (s.stop_at is not None and step >= s.stop_at) or halt
    if step % cfg.log_every == 0 or last:
        _log(s)
    if step % cfg.sample_every == 0 or last:
        _preview(s)
    # Checkpoint (before any evaluation: a failing evaluation never costs training).
    evaluate_now = s.evaluator is not None and (step % cfg.eval_every == 0 or step >= s.end)
    if evaluate_now or step % cfg.ckpt_every == 0 or last:
        s.ema.recalibrate(s.sampler)
        s.run.save(step, s.model.nets, s.model.opts, s.meta(), s.model.family.state_dict(s.model.nets))
    if evaluate_now:
        _evaluate(s)
    if s.bar is not None:
        s.bar.update(1)
    if halt or (s.stop_at is not None and step >= s.stop_at and step < s.end):
        s.result.interrupted = True
        s.result.signal = s.stop.signum
        return True
    return False


def _log(s: _Session) -> None:
    """One log record (the window's means) to metrics.jsonl, status.json, TensorBoard and the progress display,
    refused when a value is not finite; a sustained slowdown is said once."""
    at, engine = s.at, s.engine
    now = time.perf_counter()
    img_s = s.window.images / max(now - s.window.t0, 1e-9)
    rec: dict[str, Any] = {"step": at.step, "kimg": round(at.nimg / 1000, 3), "time_s": round(at.elapsed, 2), "img_s": round(img_s, 1)}
    rec.update(_window_means(s.window.values))
    if engine.skipped_steps:
        rec["amp_skipped"] = engine.skipped_steps
    _check_finite(at.step, rec, s.run, s.model.lower_lr)
    s.run.log(rec)
    s.run.set_status("training", at.step)
    s.tb.log(at.step, rec)
    s.result.last, s.result.img_s = rec, img_s
    s.window = _Window(now)
    if s.bar is not None:
        s.bar.set_postfix_str(_postfix(rec), refresh=False)
    elif s.plain_lines:
        s.say(f"step {at.step}/{s.end} {_clock(now - s.t_start)} {_postfix(rec)}")
    if s.governor is not None:
        change = s.governor.update()
        if change:
            s.write(change)
            s.rates.clear()  # a new thread count, a new reference rate
    s.rates.append(img_s)
    slow = slowdown(s.rates)
    if slow is not None:
        s.warn(_slowdown_message(*slow, engine.device))
        s.rates.clear()  # the slower rate is the new reference: said once, not on every line


def _what(spec: DataSpec) -> str:
    """The start line's name for the data's samples: "points", "shapes at 16^3", "images at 32px"."""
    if spec.kind == "points":
        return "points"
    if spec.kind == "voxels":
        return f"shapes at {spec.resolution}³"
    return f"images at {spec.resolution}px"


def _preview(s: _Session) -> None:
    """The sample grid from fixed inputs (rank 0 writes it), and the diagnostics that look at it."""
    step = s.at.step
    s.ema.recalibrate(s.sampler)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnseenWordsWarning)  # the preview captions' words: not all seen yet
        msgs = s.previews.write(step, s.run.sample_path(step)) if s.engine.is_main else ()
    for msg in msgs:
        s.warn(msg)
    s.tb.grid(step, s.run.sample_path(step))


def _evaluate(s: _Session) -> None:
    """--eval-every: the metrics, logged with the step; a new best moves the `best` checkpoint. A failing
    evaluation is a warning: training goes on."""
    evaluator, step = s.evaluator, s.at.step
    try:
        res = evaluator(step)
    except GanforgeError as exc:
        s.warn(f"evaluation failed, training goes on: {exc}")
    else:
        s.run.log({"step": step, "kimg": round(s.at.nimg / 1000, 3), **res})
        if evaluator.is_best(res):
            s.run.set_best(step, evaluator.key, res.get(evaluator.key))
        s.write(f"step {step}: " + ", ".join(f"{k}={v:.4g}" for k, v in res.items() if isinstance(v, float)))


def _class_balance_line(data: Any, power: float) -> str:
    """What --class-balance does to the rarest class: its share of the batches, before and after."""
    labels = data.labels.cpu()
    counts = torch.bincount(labels).double()
    w = class_weights(labels, power)
    shares = torch.zeros_like(counts).index_add_(0, labels, w) / w.sum()  # the sampler's class shares
    rare = int(torch.where(counts > 0, counts, counts.max() + 1).argmin())
    name = data.class_names[rare] if rare < len(data.class_names) else str(rare)
    return (
        f"class balance {power:g}: the rarest class, {name} ({int(counts[rare])} images), is drawn in "
        f"{100 * shares[rare]:.2f} % of the batches instead of {100 * counts[rare] / counts.sum():.2f} %"
    )


def _read_pretrained(cfg: TrainConfig) -> tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]]]:
    """(family settings, {network: state dict}) of `--resume-from`: a ganforge run folder, or a file whose suffix
    the family declares (`Family.pretrained_sources`), read by the reader registered for it (ganforge.registry)."""
    from ..registry import get_family, pretrained_reader

    path = Path(cfg.resume_from)
    suffix = path.suffix.lower()
    if path.is_file():
        family = get_family(cfg.model)
        if suffix not in family.pretrained_sources():
            accepted = family.pretrained_sources()
            raise ConfigError(
                f"--resume-from {cfg.resume_from}: model '{cfg.model}' starts from ganforge run folders"
                + (f" or {', '.join(accepted)} files" if accepted else "")
                + ", not this file"
            )
        return pretrained_reader(suffix)(str(path))
    from ..sample.model import find_run  # a run folder, by path or name, or hf:OWNER/NAME

    base = ckpt.resolve_checkpoint(find_run(cfg.resume_from), "latest")
    state: dict[str, dict[str, torch.Tensor]] = {}
    for k, v in ckpt.load_tensors(base, prefixes=("net/",)).items():
        _, net, key = k.split("/", 2)
        state.setdefault(net, {})[key] = v
    return {}, state


def _load_pretrained(family: Any, nets: torch.nn.ModuleDict, source: str, state: dict[str, dict[str, torch.Tensor]], spec: Any) -> str:
    """Copy pretrained weights (`--resume-from`) into freshly built networks. Every tensor must match in
    name and shape, except the label embeddings of a different number of classes, which stay freshly
    initialised; a different resolution or architecture is an error."""
    kept_fresh: list[str] = []
    for name, net in nets.items():
        if name not in state:
            kept_fresh.append(name)
            continue
        own, theirs = net.state_dict(), state[name]
        missing, extra = sorted(set(own) - set(theirs)), sorted(set(theirs) - set(own))
        shape_diff = [k for k in own if k in theirs and own[k].shape != theirs[k].shape]
        label_keys = [k for k in missing + extra + shape_diff if family.label_dependent(name, k)]
        if [k for k in missing + extra + shape_diff if k not in label_keys]:
            raise ConfigError(
                f"--resume-from {source}: its '{name}' does not fit this model (e.g. {(missing + extra + shape_diff)[:2]}); "
                f"the pretrained network must have this data's resolution ({spec.resolution} px) and channels, and the same "
                "settings (prepare the data at its resolution, or start from another network)"
            )
        load = {k: v for k, v in theirs.items() if k in own and own[k].shape == v.shape}
        own.update(load)
        net.load_state_dict(own)
        if label_keys:
            kept_fresh.append(f"{name} label embedding")
    note = f"started from {source}"
    return note + (f" (fresh: {', '.join(kept_fresh)})" if kept_fresh else "")


def _micro_batch(cfg: TrainConfig, family: Any, group: distributed.ProcessGroup) -> int:
    """--batch-gpu, checked: images per forward/backward pass on each process (0: the whole share)."""
    if not cfg.batch_gpu:
        return 0
    if not family.accumulates:
        raise ConfigError(f"model '{family.name}' does not accumulate gradients over micro-batches; drop --batch-gpu")
    share = cfg.batch // group.world_size
    if cfg.batch_gpu >= share:
        return 0
    if share % cfg.batch_gpu:
        raise ConfigError(
            f"--batch-gpu {cfg.batch_gpu} does not divide the {share} images each process gets per step "
            f"(--batch {cfg.batch} over {group.world_size} process(es)); use a divisor of {share}"
        )
    return cfg.batch_gpu


def _compile(family: Any, nets: torch.nn.ModuleDict) -> None:
    """--compile: torch.compile each network that trains, in place (`Module.compile`, so parameter names,
    checkpoints and the EMA copies, which stay eager, are unchanged). The first steps pay for compilation."""
    import torch._dynamo

    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 32)  # D frozen / unfrozen, lazy regs
    ema_copies = set(family.ema.values())
    for name, net in nets.items():
        if name not in ema_copies:
            net.compile()


def _family_config(family, cfg: TrainConfig) -> Any:
    from ..config import family_config_from_dict

    return family_config_from_dict(family, cfg.family)


def _periodic_evaluator(cfg: TrainConfig, sampler: Sampler, data: Any, run_dir: Path, group: distributed.ProcessGroup):
    """The evaluator for --eval-every, checked now: missing weights or an unsuitable dataset are an error
    before the first step, not a crash hours later."""
    if not cfg.eval_every:
        return None
    from .evaluation import PeriodicEvaluator

    ev = PeriodicEvaluator(cfg, sampler, data, run_dir, group)
    ev.check()
    return ev


MAX_ROLLBACKS = 5  # --on-nan rollback gives up after this many rollbacks in one process


def _last_ckpt(run: RunFolder) -> int:
    steps = ckpt.list_checkpoints(run.ckpt_dir)
    return steps[-1] if steps else 0


def _window_means(window: dict[str, list[float]]) -> dict[str, float]:
    """Means over the logging window; gradient norms skip NaN (an fp16 overflow whose step the loss
    scaler skipped)."""
    out = {}
    for k, v in window.items():
        vals = [x for x in v if not (k.startswith("grad") and math.isnan(x))] if k.startswith("grad") else v
        if vals:
            out[k] = round(sum(vals) / len(vals), 5)
    return out


def _check_finite(step: int, rec: dict[str, Any], run: RunFolder, lower_lr: str) -> None:
    bad = [k for k, v in rec.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        what = f"training diverged at step {step} ({', '.join(bad)} = {rec[bad[0]]})"
        raise GanforgeError(_diverged(what, run, lower_lr))


def _lower_lr(family: Any, fam_cfg: Any, spec: DataSpec, batch: int) -> str:
    """A learning rate to suggest after a divergence: the family's own default for this data when the run's
    is higher, else a tenth of the run's."""
    lr = family.learning_rate(fam_cfg)
    try:
        default = family.learning_rate(family.resolve_config(family.default_config(), spec, batch))
    except Exception:  # noqa: BLE001 (a suggestion only)
        default = 0.0
    if lr <= 0:
        return f"{default:.2g}" if default > 0 else "1e-4"
    return f"{default:.2g}" if 0 < default < lr else f"{lr / 10:.2g}"


def _diverged(what: str, run: RunFolder, lower: str) -> str:
    """The one line for a diverged run: what happened, which checkpoint is kept (if one is), and a command
    that works from there: a resume with a lower learning rate (learning rates may change on --resume), or,
    before the first checkpoint, the same command again with one."""
    last = _last_ckpt(run)
    if last:
        return (
            f"{what}; the last checkpoint (step {last}) is kept. Resume from it with a lower learning rate, "
            f"e.g. --resume --set lr={lower}" + ("" if run.cfg.on_nan == "rollback" else ", or add --on-nan rollback")
        )
    return (
        f"{what}, before the first checkpoint: nothing was saved. Start the run again with a lower learning "
        f"rate, e.g. --set lr={lower} (the same command: a run without a checkpoint starts again from step 0)"
    )


SLOW_FACTOR = 4  # a log interval slower than the reference rate / this is slow
SLOW_SUSTAIN = 3  # ... for this many log intervals in a row
SLOW_HISTORY = 10  # the reference: the median rate of up to this many intervals before them


def slowdown(
    rates: list[float], *, factor: float = SLOW_FACTOR, sustain: int = SLOW_SUSTAIN, history: int = SLOW_HISTORY
) -> tuple[float, float] | None:
    """(now, was) when throughput fell far below the run's own earlier rate: each of the last `sustain`
    rates (img/s of a log interval) below the median of the up to `history` intervals before them divided
    by `factor`, with at least `sustain` intervals of history; else None. One slow interval (a checkpoint,
    a sample grid, an evaluation) is not a slowdown; a CPU shared with another process for a while is."""
    if len(rates) < 2 * sustain:
        return None
    recent = rates[-sustain:]
    before = sorted(rates[-sustain - history : -sustain])
    was = before[len(before) // 2]
    if was > 0 and all(r < was / factor for r in recent):
        return recent[-1], was
    return None


def _slowdown_message(now: float, was: float, device: torch.device) -> str:
    if device.type == "cpu":
        hint = "another process is using the CPU? see --threads (fewer threads than cores leaves room for it)"
    else:
        hint = f"another process is using {device}? (nvidia-smi lists them), or the data loading or the CPU is slower"
    return f"img/s {now:.3g} (was {was:.3g}): {hint}"


def _clock(seconds: float) -> str:
    """Elapsed time as h:mm:ss."""
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


def _postfix(rec: dict[str, Any]) -> str:
    names = [
        ("img_s", "img/s"), ("loss_D", "D"), ("loss_G", "G"), ("D_real", "D(x)"), ("D_fake", "D(G(z))"),
        ("score_real", "D(x)"), ("score_fake", "D(G(z))"), ("grad_D", "|gD|"), ("grad_G", "|gG|"), ("aug_p", "p"),
    ]
    parts = [f"{label}={rec[k]:.3g}" for k, label in names if k in rec]
    parts += [f"{k}={v:.3g}" for k, v in rec.items() if k.startswith("loss_") and k not in ("loss_D", "loss_G")]
    return " ".join(parts)


def _write(bar, msg: str, say: Callable[[str], None]) -> None:
    if bar is not None:
        bar.write(msg)
    else:
        say(msg)
