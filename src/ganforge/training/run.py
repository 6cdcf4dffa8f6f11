"""The run folder: creating or resuming it, its metrics log, and checkpoints in and out."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import checkpoint as ckpt
from ..config import RESUMABLE_CHANGES, TrainConfig, check_run_name, is_lr_name
from ..errors import ConfigError, GanforgeError


def check_resume_config(
    saved: TrainConfig, requested: TrainConfig, explicit: set[str], trained: dict[str, Any] | None = None
) -> TrainConfig:
    """Merge a resumed run's saved config with options given now; refuse changes that would make the
    resumed run a different experiment (model, data, batch, ...). Learning rates (lr, lr_g, map_lr, ...)
    may change: the resumed optimizers take the new ones. `trained` holds what a setting saved as None
    (the data's own) resolved to, e.g. {"resolution": 32}, from the run's checkpoint: messages name it,
    and asking for that very value is no change."""
    merged = dataclasses.replace(saved, family=dict(saved.family))
    trained = trained or {}
    for key in sorted(explicit):
        new, old = getattr(requested, key), getattr(saved, key)
        if key == "family":
            fam = merged.family
            for k, v in new.items():
                if k in fam and fam[k] != v:
                    if is_lr_name(k):
                        fam[k] = v
                        continue
                    raise ConfigError(
                        f"cannot resume: the run was trained with {k}={fam[k]}, not {v}; "
                        "drop the setting or start a new run with --run NAME"
                    )
            continue
        if new == old:
            continue
        if old is None and trained.get(key) is not None and new == trained[key]:
            continue  # e.g. --resolution 32 for a run trained at its data's own 32 px
        if key not in RESUMABLE_CHANGES:
            shown = f"{trained[key]} (the data's own)" if old is None and trained.get(key) is not None else old
            raise ConfigError(
                f"cannot resume: the run was trained with {key}={shown}, not {new}; "
                "drop the option or start a new run with --run NAME"
            )
        setattr(merged, key, new)
    return merged


class RunLock:
    """`runs/<name>/.lock`, held with `flock` while one process trains the run, with its pid inside: a
    second `train` of the same run (new or --resume) is refused instead of interleaving checkpoints. The
    kernel releases the lock when the process ends, however it ends, so a stale file never blocks.
    Where `fcntl` is missing (Windows) there is no lock."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / ".lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover (Windows)
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise ConfigError(
                f"run '{self.path.parent.name}' is being trained by {who} (lock {self.path}); wait for it to end "
                f"or stop it{f' (kill {holder})' if holder else ''}, or train another run with --run NEW_NAME"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock; the file stays (see class doc)
            self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except (OSError, ValueError):
        return None


class RunFolder:
    """`runs/<name>/`: config.json, checkpoints/, samples/, metrics.jsonl, status.json.

    Under distributed training only rank 0 owns the folder; the other processes get a `reader` (which
    loads checkpoints and writes nothing)."""

    writer = True

    @classmethod
    def reader(cls, cfg: TrainConfig, resuming: bool) -> RunFolder:
        run = cls.__new__(cls)
        run.dir = cfg.run_dir()
        run.ckpt_dir, run.samples = run.dir / "checkpoints", run.dir / "samples"
        run.cfg, run.resuming, run.writer, run._metrics = cfg, resuming, False, None
        run.lock, run.lr_changed = None, False  # only rank 0 holds the run's lock
        return run

    def __init__(self, cfg: TrainConfig, *, resume: bool, explicit: set[str] | None, say) -> None:
        if cfg.run is not None:
            check_run_name(cfg.run)
        self.dir = cfg.run_dir()
        self.ckpt_dir = self.dir / "checkpoints"
        self.samples = self.dir / "samples"
        self._metrics = None
        self.lock: RunLock | None = RunLock(self.dir)
        no_run = ConfigError(f"no run to resume at {self.dir}; drop --resume to start it")
        if resume and not self.dir.is_dir():
            raise no_run
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.lock.acquire()  # before anything is read or written: one process per run
        except OSError as exc:
            raise ConfigError(
                f"cannot write the run folder {self.dir} ({exc.strerror}); use --runs-dir on a writable disk"
            ) from exc
        try:
            if resume and not (self.dir / "config.json").exists():
                raise no_run
            self._open(cfg, resume=resume, explicit=explicit, say=say)
        except BaseException:
            self.unlock()
            raise

    def _open(self, cfg: TrainConfig, *, resume: bool, explicit: set[str] | None, say) -> None:
        has_ckpt = self.ckpt_dir.exists() and bool(ckpt.list_checkpoints(self.ckpt_dir))
        self.resuming = False
        self.lr_changed = False  # a resume with new learning rates: the loop gives them to the optimizers
        if resume:
            saved = TrainConfig.load(self.dir / "config.json")
            imported = self._imported_from() if has_ckpt else None
            if imported is not None:
                cfg = self._fine_tune(saved, cfg, explicit or set(), imported, say)
            else:
                given = explicit if explicit is not None else set()
                cfg = check_resume_config(saved, cfg, given, self._trained_values())
                self.lr_changed = any(is_lr_name(k) and saved.family.get(k) != v for k, v in cfg.family.items())
                self.resuming = has_ckpt
            cfg.run, cfg.runs_dir = self.dir.name, str(self.dir.parent)
            if not has_ckpt:
                say(f"note: {self.dir} has no checkpoint yet; starting it from step 0")
        elif has_ckpt:
            raise ConfigError(
                f"run '{self.dir.name}' already exists in {self.dir.parent}; continue it with --resume "
                "or start another with --run NEW_NAME"
            )
        elif (self.dir / "config.json").exists():
            # A run that stopped before its first checkpoint has nothing to lose: start it again.
            say(f"note: {self.dir} has no checkpoint; starting it again from step 0")
        self.cfg = cfg
        try:
            self.samples.mkdir(parents=True, exist_ok=True)
            self.ckpt_dir.mkdir(exist_ok=True)
            probe = self.dir / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(
                f"cannot write the run folder {self.dir} ({exc.strerror}); use --runs-dir on a writable disk"
            ) from exc

    def _trained_values(self) -> dict[str, Any]:
        """What settings saved as None (the data's own resolution and channels) were in training, from the
        newest readable checkpoint's data spec; empty when none can be read."""
        for step in reversed(ckpt.list_checkpoints(self.ckpt_dir) if self.ckpt_dir.exists() else []):
            try:
                spec = ckpt.read_meta(self.ckpt_dir / ckpt.ckpt_name(step)).get("spec")
            except GanforgeError:
                continue
            if isinstance(spec, dict):
                return {k: spec[k] for k in ("resolution", "channels") if isinstance(spec.get(k), int)}
        return {}

    def _imported_from(self) -> str | None:
        """The pickle a run's only checkpoint was imported from (`ganforge import`), if it is such a run."""
        try:
            meta = ckpt.read_meta(ckpt.resolve_checkpoint(self.dir, "latest"))
        except GanforgeError:
            return None
        src = meta.get("imported_from")
        return str(src.get("file", "a pickle")) if isinstance(src, dict) else None

    def _fine_tune(self, saved: TrainConfig, cfg: TrainConfig, explicit: set[str], source: str, say) -> TrainConfig:
        """`train --resume` on an imported network: nothing was trained here yet, so this starts training
        (step 0, fresh optimizers) from the imported weights, on the data and settings given now."""
        data = cfg.data if "data" in explicit else saved.data
        if data.startswith("imported:"):
            raise ConfigError(
                f"run '{self.dir.name}' holds a network imported from {source} and no training data yet; "
                "give --data (the images to fine-tune it on)"
            )
        merged = dataclasses.replace(saved, data=data)
        for key in explicit - {"family", "data"}:
            setattr(merged, key, getattr(cfg, key))
        merged.family = {**saved.family, **cfg.family} if "family" in explicit else dict(saved.family)
        merged.resume_from = str(self.dir)  # the loop copies the imported weights in (checked like --resume-from)
        say(f"fine-tuning the network imported from {source} on {data}")
        return merged

    # ---- checkpoints ---------------------------------------------------------------------------
    def load_latest(self, say=None) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """The newest intact checkpoint: one whose files cannot be read (a truncated copy, a damaged disk) is
        passed over for the one before it, with a note, as a deleted one is."""
        base = ckpt.resolve_checkpoint(self.dir, "latest")
        newest = int(base.name.split("-")[1])
        order = [newest] + [s for s in reversed(ckpt.list_checkpoints(self.ckpt_dir)) if s < newest]
        damaged: list[tuple[str, str]] = []
        for step in order:
            b = self.ckpt_dir / ckpt.ckpt_name(step)
            try:
                meta, tensors = ckpt.read_meta(b), ckpt.load_tensors(b)
            except GanforgeError as exc:
                damaged.append((b.name, _first_clause(str(exc))))
                continue
            if damaged and say is not None:
                names = ", ".join(n for n, _ in damaged)
                say(f"note: checkpoint {names} cannot be read ({damaged[0][1]}); resuming from {b.name} instead")
            return meta, tensors
        name, why = damaged[0]
        if len(damaged) == 1:
            which = f"its only checkpoint, {name},"
        else:
            which = f"none of its {len(damaged)} checkpoints (newest {name})"
        raise ConfigError(
            f"cannot resume run '{self.dir.name}': {which} cannot be read ({why}); delete {self.ckpt_dir} "
            "to train the run again from step 0, or start another with --run NEW_NAME"
        )

    def save(self, step: int, nets: nn.ModuleDict, opts: dict, meta: dict[str, Any], family_state: dict[str, Any]) -> None:
        if not self.writer:
            return
        ckpt.save_checkpoint(self.ckpt_dir, step, nets, opts, meta, family_state)
        ckpt.prune(self.ckpt_dir, self.cfg.keep_ckpts)

    def set_best(self, step: int, key: str, value: Any) -> None:
        if self.writer:
            ckpt.set_pointer(self.ckpt_dir, "best", step, metric=key, value=value)

    # ---- metrics.jsonl -------------------------------------------------------------------------
    def open_metrics(self, resumed_step: int) -> None:
        """Open metrics.jsonl for appending. Lines after the resumed step (written after the last
        checkpoint by a run that was killed) are dropped, so no step is logged twice; a fresh run
        starts an empty log."""
        if not self.writer:
            return
        path = self.dir / "metrics.jsonl"
        if path.exists():
            keep: list[str] = []
            if resumed_step > 0:
                for line in path.read_text(errors="replace").splitlines():
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a torn last line from a hard kill
                    if isinstance(rec, dict) and isinstance(rec.get("step"), int) and rec["step"] <= resumed_step:
                        keep.append(line)
            tmp = path.with_name(".metrics.jsonl.tmp")
            tmp.write_text("".join(line + "\n" for line in keep))
            os.replace(tmp, path)
        self._metrics = open(path, "a")

    def log(self, rec: dict[str, Any]) -> None:
        if not self.writer:
            return
        assert self._metrics is not None
        self._metrics.write(json.dumps(rec) + "\n")
        self._metrics.flush()

    def close(self) -> None:
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None

    def unlock(self) -> None:
        """Release the run lock (at the end of training; the process ending releases it too)."""
        if self.lock is not None:
            self.lock.release()

    def save_config(self, notes: dict[str, str] | None = None) -> None:
        if self.writer:
            self.cfg.save(self.dir / "config.json", notes)

    def set_status(self, state: str, step: int, message: str = "") -> None:
        """status.json, for `ganforge serve` and other watchers: state training | done | stopped | failed,
        the writing process's pid, the step and the time. Written atomically; a failure to write it never
        stops training."""
        if not self.writer:
            return
        rec = {"state": state, "pid": os.getpid(), "step": step, "updated": time.time(), "message": message}
        tmp = self.dir / ".status.json.tmp"
        try:
            tmp.write_text(json.dumps(rec))
            os.replace(tmp, self.dir / "status.json")
        except OSError:
            pass

    def sample_path(self, step: int) -> Path:
        return self.samples / f"grid-{step:06d}.png"


def _first_clause(message: str) -> str:
    """What a checkpoint error says is wrong, without its advice, shortened."""
    text = message.split("; ")[0]
    return text if len(text) <= 160 else text[:157] + "..."
