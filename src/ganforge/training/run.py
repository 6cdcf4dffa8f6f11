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
from ..config import RESUMABLE_CHANGES, TrainConfig
from ..errors import ConfigError, GanforgeError


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
        return run

    def __init__(self, cfg: TrainConfig, *, resume: bool, explicit: set[str] | None, say) -> None:
        self.dir = cfg.run_dir()
        self.ckpt_dir = self.dir / "checkpoints"
        self.samples = self.dir / "samples"
        has_ckpt = self.ckpt_dir.exists() and bool(ckpt.list_checkpoints(self.ckpt_dir))
        self.resuming = False
        if resume:
            if not (self.dir / "config.json").exists():
                raise ConfigError(f"no run to resume at {self.dir}; drop --resume to start it")
            saved = TrainConfig.load(self.dir / "config.json")
            imported = self._imported_from() if has_ckpt else None
            if imported is not None:
                cfg = self._fine_tune(saved, cfg, explicit or set(), imported, say)
            else:
                cfg = check_resume_config(saved, cfg, explicit if explicit is not None else set())
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
        self._metrics = None

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
    def load_latest(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        base = ckpt.resolve_checkpoint(self.dir, "latest")
        return ckpt.read_meta(base), ckpt.load_tensors(base)

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

    def save_config(self) -> None:
        if self.writer:
            self.cfg.save(self.dir / "config.json")

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
