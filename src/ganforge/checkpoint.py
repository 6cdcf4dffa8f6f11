"""Checkpoints without pickle: tensors in safetensors, everything else in JSON.

`checkpoints/step-000500.safetensors` holds network weights (`net/<name>/<param>`), optimizer state
tensors (`opt/<name>/<param index>/<key>`) and the torch RNG state; `step-000500.json` holds the
family, configs, data spec, optimizer hyper-parameters, loop state and the ganforge version, so a
model can be rebuilt from the run folder alone. Both files are written to a temporary name and
renamed; the JSON goes last and marks the checkpoint complete. `latest.json` / `best.json` point at
checkpoints. Loading never executes code from a file.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from . import __version__
from .errors import ConfigError, GanforgeError

FORMAT = "ganforge-checkpoint-1"


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_log(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a run's metrics.jsonl, in order; lines a crash cut or a disk damaged are skipped
    (an absent log is empty)."""
    recs: list[dict[str, Any]] = []
    if not path.exists():
        return recs
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except (ValueError, RecursionError):  # a torn line, binary garbage, absurd nesting
                continue
            if isinstance(rec, dict):
                recs.append(rec)
    return recs


def ckpt_name(step: int) -> str:
    return f"step-{step:06d}"


def _to_jsonable(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return v.item() if v.numel() == 1 else v.tolist()
    if isinstance(v, tuple):
        return list(v)
    if isinstance(v, dict):
        return {str(k): _to_jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_to_jsonable(x) for x in v]
    return v


def save_checkpoint(
    ckpt_dir: Path,
    step: int,
    nets: nn.ModuleDict,
    opts: dict[str, torch.optim.Optimizer],
    meta: dict[str, Any],
    family_state: dict[str, Any] | None = None,
) -> Path:
    """Write one checkpoint and point `latest.json` at it. Returns the JSON path.

    `family_state` (a family's extra state) goes to the JSON, except its tensors, which are stored in
    the safetensors file as `family/<key>`."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    fam_json: dict[str, Any] = {}
    for k, v in (family_state or {}).items():
        if isinstance(v, torch.Tensor):
            tensors[f"family/{k}"] = v.detach().to("cpu").contiguous().clone()
        else:
            fam_json[k] = v
    for name, net in nets.items():
        for k, t in net.state_dict().items():
            tensors[f"net/{name}/{k}"] = t.detach().to("cpu").contiguous().clone()
    opt_meta: dict[str, Any] = {}
    for name, opt in opts.items():
        sd = opt.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for idx, state in sd["state"].items():
            for k, v in state.items():
                if isinstance(v, torch.Tensor):
                    tensors[f"opt/{name}/{idx}/{k}"] = v.detach().to("cpu").contiguous().clone()
                else:
                    scalars.setdefault(str(idx), {})[k] = v
        opt_meta[name] = {"param_groups": _to_jsonable(sd["param_groups"]), "scalars": scalars}
    tensors["rng/torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = s
    py_state = random.getstate()
    np_state = np.random.get_state()
    info = {
        "format": FORMAT,
        "ganforge_version": __version__,
        "step": step,
        **meta,
        "family_state": fam_json,
        "optimizers": opt_meta,
        "rng": {
            "python": [py_state[0], list(py_state[1]), py_state[2]],
            "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        },
    }
    base = ckpt_dir / ckpt_name(step)
    st_tmp = base.with_name(f".{base.name}.safetensors.tmp")
    try:
        save_file(tensors, str(st_tmp), metadata={"format": FORMAT, "ganforge_version": __version__})
        with open(st_tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(st_tmp, base.with_suffix(".safetensors"))
        _atomic_write_text(base.with_suffix(".json"), json.dumps(info))
    except Exception as exc:  # disk full, quota, I/O error: the previous checkpoint stays as it was
        st_tmp.unlink(missing_ok=True)
        base.with_name(f".{base.name}.json.tmp").unlink(missing_ok=True)
        raise GanforgeError(
            f"could not write checkpoint {base.name} in {ckpt_dir} ({exc}); the previous checkpoint is intact. "
            "Free some disk space and continue with --resume"
        ) from exc
    set_pointer(ckpt_dir, "latest", step)
    return base.with_suffix(".json")


def set_pointer(ckpt_dir: Path, name: str, step: int, **extra: Any) -> None:
    _atomic_write_text(ckpt_dir / f"{name}.json", json.dumps({"step": step, "file": ckpt_name(step), **extra}))


def list_checkpoints(ckpt_dir: Path) -> list[int]:
    """Steps of complete checkpoints (both files present), ascending."""
    steps = []
    for p in ckpt_dir.glob("step-*.json"):
        try:
            step = int(p.stem.split("-")[1])
        except (IndexError, ValueError):
            continue
        if p.with_suffix(".safetensors").exists():
            steps.append(step)
    return sorted(steps)


def resolve_checkpoint(run_dir: Path, which: str | int = "latest") -> Path:
    """Path (without suffix) of the checkpoint `which` (latest | best | step number) of a run."""
    ckpt_dir = Path(run_dir) / "checkpoints"
    steps = list_checkpoints(ckpt_dir) if ckpt_dir.exists() else []
    if not steps:
        raise ConfigError(f"{run_dir} has no checkpoints; train it first with `ganforge train --run {Path(run_dir).name}`")
    if isinstance(which, str) and which in ("latest", "best"):
        ptr = ckpt_dir / f"{which}.json"
        if ptr.exists():
            try:
                step = int(json.loads(ptr.read_text())["step"])
                if step in steps:
                    return ckpt_dir / ckpt_name(step)
            except (OSError, ValueError, KeyError, TypeError, IndexError):  # damaged pointer: fall back
                pass
        if which == "best":
            raise ConfigError(
                f"{run_dir} has no best checkpoint: it is chosen by periodic evaluation during training "
                "(`ganforge train --eval-every N`); use --checkpoint latest"
            )
        return ckpt_dir / ckpt_name(steps[-1])  # pointer missing or stale: the newest complete one
    try:
        step = int(which)
    except ValueError:
        raise ConfigError(f"bad checkpoint '{which}': use latest, best or a step number") from None
    if step not in steps:
        raise ConfigError(f"{run_dir} has no checkpoint at step {step}; it has {', '.join(map(str, steps))}")
    return ckpt_dir / ckpt_name(step)


def read_meta(base: Path) -> dict[str, Any]:
    try:
        meta = json.loads(base.with_suffix(".json").read_text())
    except (OSError, ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        meta = exc
    if not isinstance(meta, dict):
        why = str(meta)[:120] if isinstance(meta, Exception) else "not a JSON object"
        raise ConfigError(
            f"cannot read checkpoint {base.name}.json ({why}): the file is damaged; delete it and "
            f"{base.name}.safetensors to fall back to the previous checkpoint"
        )
    if meta.get("format") != FORMAT:
        raise ConfigError(f"{base}.json is not a ganforge checkpoint (format {meta.get('format')!r})")
    return meta


def load_tensors(base: Path, prefixes: tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors, or only those whose names start with one of `prefixes` (read lazily:
    inference reads a generator without touching the discriminator's or the optimizers' bytes)."""
    path = str(base.with_suffix(".safetensors"))
    try:
        if prefixes is None:
            return load_file(path)
        out = {}
        with safe_open(path, framework="pt") as f:
            for k in f.keys():  # noqa: SIM118 (safe_open has no __iter__)
                if k.startswith(prefixes):
                    out[k] = f.get_tensor(k)
        return out
    except Exception as exc:  # safetensors raises several types for damaged files
        raise ConfigError(f"cannot read {base}.safetensors ({exc}); the file is damaged, pick another checkpoint") from exc


def load_nets(
    nets: nn.ModuleDict, tensors: dict[str, torch.Tensor], *, only: set[str] | None = None, sources: dict[str, str] | None = None
) -> None:
    """Load network weights; `sources` maps a network to the stored one it is read from (e.g. the
    generator from its EMA copy, for inference)."""
    for name, net in nets.items():
        if only is not None and name not in only:
            continue
        stored = (sources or {}).get(name, name)
        prefix = f"net/{stored}/"
        sd = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        if not sd:
            raise ConfigError(f"the checkpoint has no weights for network '{stored}'")
        try:
            net.load_state_dict(sd)
        except RuntimeError as exc:  # missing/unexpected keys or a tensor of the wrong shape
            first = str(exc).strip().splitlines()
            detail = " ".join(line.strip() for line in first[:3])
            raise ConfigError(
                f"the checkpoint's weights for '{stored}' do not fit the network its config describes ({detail[:300]}); "
                "the file is damaged or from another version"
            ) from None


def family_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """A family's extra state as saved: the JSON part and its tensors (`family/<key>`)."""
    state = dict(meta.get("family_state", {}))
    state.update({k[len("family/") :]: v for k, v in tensors.items() if k.startswith("family/")})
    return state


def load_optimizers(opts: dict[str, torch.optim.Optimizer], tensors: dict[str, torch.Tensor], meta: dict) -> None:
    for name, opt in opts.items():
        if name not in meta.get("optimizers", {}):
            continue  # e.g. an imported network: its optimizer starts fresh
        om = meta["optimizers"][name]
        state: dict[int, dict[str, Any]] = {}
        prefix = f"opt/{name}/"
        for k, v in tensors.items():
            if k.startswith(prefix):
                idx, key = k[len(prefix) :].split("/", 1)
                state.setdefault(int(idx), {})[key] = v
        for idx, sc in om["scalars"].items():
            state.setdefault(int(idx), {}).update(sc)
        groups = om["param_groups"]
        for g in groups:
            if "betas" in g:
                g["betas"] = tuple(g["betas"])
        opt.load_state_dict({"state": state, "param_groups": groups})


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["rng/torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng/cuda/"))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    py = meta["rng"]["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npst = meta["rng"]["numpy"]
    np.random.set_state((npst[0], np.array(npst[1], dtype=np.uint32), npst[2], npst[3], npst[4]))


def prune(ckpt_dir: Path, keep: int) -> None:
    """Delete old periodic checkpoints, keeping the newest `keep` and any the pointers name."""
    if keep <= 0:
        return
    pinned = set()
    for ptr in ("latest", "best"):
        p = ckpt_dir / f"{ptr}.json"
        if p.exists():
            try:
                pinned.add(int(json.loads(p.read_text())["step"]))
            except (json.JSONDecodeError, KeyError, ValueError):
                pass
    steps = list_checkpoints(ckpt_dir)
    for step in steps[:-keep]:
        if step in pinned:
            continue
        base = ckpt_dir / ckpt_name(step)
        base.with_suffix(".json").unlink(missing_ok=True)  # JSON first: a half-deleted checkpoint is incomplete
        base.with_suffix(".safetensors").unlink(missing_ok=True)
