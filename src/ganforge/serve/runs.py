"""What the studio shows about run folders: their summary, live status and training log.

Everything here reads files that a training process may be writing at the same moment (metrics.jsonl
grows, checkpoints rotate, status.json is replaced), so every reader tolerates a torn line, a missing
file or a damaged JSON object, and shows what it could read instead of failing the page.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

from .. import checkpoint as ckpt

STALE_S = 600.0  # a "training" status not updated for 10 minutes belongs to a process that is gone
MAX_POINTS = 2000  # points per curve sent to the page: enough for a canvas, bounded for huge logs
_AXES = ("step", "kimg", "time_s")
_METRIC_PREFIXES = (
    "fid", "kid", "is", "precision", "recall", "density", "coverage", "psnr", "ssim", "classes", "kl", "memorization", "copies",
)


def read_json(path: Path, limit: int = 4 * 2**20) -> dict[str, Any] | None:
    """A small JSON object, or None when missing, too large, damaged or not an object."""
    try:
        if path.stat().st_size > limit:
            return None
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def finite(value: Any) -> Any:
    """JSON has no NaN or infinity: such numbers (a diverged loss) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def pid_alive(pid: Any) -> bool:
    """Whether a process with this id runs on this host (signal 0 checks without sending anything)."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except (OSError, OverflowError):
        return False
    return True


def run_status(run_dir: Path, now: float | None = None) -> dict[str, Any]:
    """status.json as the page shows it. Absent -> "stopped"; "training" whose process is gone, or whose
    last sign of life (status.json's `updated`, or the newest metrics.jsonl line) is older than
    STALE_S -> "stopped", so a killed run never shows as training forever."""
    now = time.time() if now is None else now
    raw = read_json(run_dir / "status.json") or {}
    state = raw.get("state") if raw.get("state") in ("training", "done", "stopped", "failed") else "stopped"
    updated = raw.get("updated") if isinstance(raw.get("updated"), (int, float)) else None
    step = raw.get("step") if isinstance(raw.get("step"), int) and not isinstance(raw.get("step"), bool) else None
    message = str(raw.get("message") or "")[:500]
    if state == "training":
        last = updated if updated is not None and math.isfinite(updated) else 0.0
        try:
            last = max(last, (run_dir / "metrics.jsonl").stat().st_mtime)
        except OSError:
            pass
        if not pid_alive(raw.get("pid")):
            state, message = "stopped", "the training process is no longer running"
        elif now - last > STALE_S:
            state, message = "stopped", f"no progress for {int((now - last) // 60)} minutes"
    return finite({"state": state, "step": step, "updated": updated, "message": message})


class MetricsLog:
    """metrics.jsonl of one run, read incrementally: a poll while training reads only the new lines, and
    a line still being written (no newline yet) waits for the next poll. Damaged lines are skipped."""

    def __init__(self, path: Path):
        self.path = path
        self.records: list[dict[str, Any]] = []
        self._offset = 0
        self._ident: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def read(self) -> list[dict[str, Any]]:
        with self._lock:
            try:
                st = self.path.stat()
            except OSError:
                self.records, self._offset, self._ident = [], 0, None
                return []
            ident = (st.st_ino, st.st_dev)
            if ident != self._ident or st.st_size < self._offset:  # replaced or truncated: start over
                self.records, self._offset, self._ident = [], 0, ident
            if st.st_size > self._offset:
                try:
                    with open(self.path, "rb") as f:
                        f.seek(self._offset)
                        chunk = f.read(st.st_size - self._offset)
                except OSError:
                    return list(self.records)
                end = chunk.rfind(b"\n")
                if end >= 0:
                    self._offset += end + 1
                    self.records.extend(parse_lines(chunk[: end + 1]))
            return list(self.records)


def parse_lines(data: bytes) -> list[dict[str, Any]]:
    """JSON objects with a numeric step, one per line; anything else (a torn line, garbage) skipped."""
    out = []
    for line in data.splitlines():
        try:
            rec = json.loads(line.decode("utf-8", errors="replace"))
        except (ValueError, RecursionError):
            continue
        if isinstance(rec, dict):
            step = rec.get("step")
            if isinstance(step, (int, float)) and not isinstance(step, bool) and math.isfinite(step):
                out.append(rec)
    return out


def is_metric(key: str) -> bool:
    """Evaluation results (fid50k_full, kid, precision, ...) as opposed to losses and diagnostics."""
    return "[" in key or key.split("_")[0].rstrip("0123456789k") in _METRIC_PREFIXES


def series(records: list[dict[str, Any]], max_points: int = MAX_POINTS) -> dict[str, dict[str, list[float]]]:
    """key -> {"x": steps, "y": values} for every numeric key, each thinned to at most max_points by
    averaging runs of neighbouring points (a mean keeps a noisy loss's level, a stride would alias)."""
    raw: dict[str, tuple[list[float], list[float]]] = {}
    for rec in records:
        for k, v in rec.items():
            if k in _AXES or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                continue
            xs, ys = raw.setdefault(k, ([], []))
            xs.append(float(rec["step"]))
            ys.append(float(v))
    out = {}
    for k, (xs, ys) in raw.items():
        n = len(xs)
        if n > max_points:
            per = math.ceil(n / max_points)
            xs = [sum(xs[i : i + per]) / len(xs[i : i + per]) for i in range(0, n, per)]
            ys = [sum(ys[i : i + per]) / len(ys[i : i + per]) for i in range(0, n, per)]
        out[k] = {"x": xs, "y": ys}
    return out


def last_values(records: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, Any] | None]:
    """The last losses (loss_* keys of the newest record with any) and the last evaluation result
    ({"key", "value", "step"}, the newest metric logged)."""
    losses: dict[str, float] = {}
    metric = None
    for rec in reversed(records):
        if not losses:
            losses = {k: v for k, v in rec.items() if k.startswith("loss") and _number(v)}
        if metric is None:
            for k, v in rec.items():
                if is_metric(k) and _number(v):
                    metric = {"key": k, "value": v, "step": rec["step"]}
                    break
        if losses and metric is not None:
            break
    return finite(losses), finite(metric)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def sample_steps(run_dir: Path) -> list[int]:
    """Steps of the sample grids (samples/grid-NNNNNN.png), ascending."""
    steps = []
    try:
        names = os.listdir(run_dir / "samples")
    except OSError:
        return []
    for name in names:
        if name.startswith("grid-") and name.endswith(".png"):
            num = name[5:-4]
            if num.isascii() and num.isdigit():
                steps.append(int(num))
    return sorted(steps)


def latest_step(run_dir: Path) -> int | None:
    """The step of the newest complete checkpoint (latest.json, checked against the files), without
    reading its metadata: what each generation request asks."""
    try:
        base = ckpt.resolve_checkpoint(run_dir, "latest")
        return int(base.name.split("-")[1])
    except Exception:  # no checkpoint yet, or one rotated away mid-read
        return None


def checkpoint_meta(run_dir: Path) -> tuple[int | None, dict[str, Any]]:
    """(step, metadata) of the latest complete checkpoint, or (None, {}) when there is none yet."""
    d = run_dir / "checkpoints"
    try:
        steps = ckpt.list_checkpoints(d) if d.is_dir() else []
    except OSError:
        steps = []
    if not steps:
        return None, {}
    try:
        base = ckpt.resolve_checkpoint(run_dir, "latest")
    except Exception:  # a damaged pointer or a checkpoint rotated away mid-read
        base = d / ckpt.ckpt_name(steps[-1])
    meta = read_json(base.with_suffix(".json"), limit=64 * 2**20) or {}
    try:
        step = int(base.name.split("-")[1])
    except (IndexError, ValueError):
        step = steps[-1]
    return step, meta


def capabilities(model: str | None) -> dict[str, Any]:
    """What the run's family can do, from the registry (no network is built)."""
    from ..registry import get_family

    try:
        caps = get_family(str(model)).capabilities
    except Exception:  # an unknown family (a run made by a newer ganforge)
        return {
            "inputs": "unknown", "truncation": False, "noise_modes": [], "style_mixing": False, "directions": [],
            "text": False,
        }
    return {
        "inputs": caps.inputs,
        "truncation": caps.truncation,
        "noise_modes": list(caps.noise_modes),
        "style_mixing": caps.style_mixing,
        "directions": list(caps.directions),
        "text": caps.conditioning == "text",  # takes a prompt (the run detail lists example prompts)
    }


def dataset_name(data: Any) -> str:
    """The dataset as a short name: the file or folder name of a path, or the source as given."""
    if not isinstance(data, str) or not data:
        return ""
    if data.startswith(("hf:", "builtin:", "imported:")) or "://" in data:
        return data
    name = data.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]
    for ext in (".zip", ".tar.gz", ".tar", ".npz"):
        if name.endswith(ext):
            name = name[: -len(ext)]
    return name or data


def summary(run_dir: Path, log: MetricsLog, *, detail: bool = False) -> dict[str, Any]:
    """One run as the runs list (detail=False) or the run page (detail=True) shows it."""
    cfg = read_json(run_dir / "config.json") or {}
    ckpt_step, meta = checkpoint_meta(run_dir)
    if not cfg and isinstance(meta.get("config"), dict):
        cfg = meta["config"]
    spec = meta.get("spec") if isinstance(meta.get("spec"), dict) else {}
    records = log.read()
    losses, metric = last_values(records)
    status = run_status(run_dir)
    logged = int(records[-1]["step"]) if records else None
    steps = [s for s in (status.get("step"), logged, ckpt_step) if isinstance(s, int)]
    model = cfg.get("model")
    names = spec.get("class_names") if isinstance(spec.get("class_names"), list) else []
    out: dict[str, Any] = {
        "name": run_dir.name,
        "family": model if isinstance(model, str) else None,
        "dataset": dataset_name(cfg.get("data")),
        "kind": spec.get("kind"),
        "resolution": spec.get("resolution"),
        "channels": spec.get("channels"),
        "num_classes": spec.get("num_classes", 0) or 0,
        "step": max(steps) if steps else 0,
        "steps_planned": cfg.get("steps") if cfg.get("kimg") is None else None,
        "checkpoint_step": ckpt_step,
        "losses": losses,
        "metric": metric,
        "status": status,
        "capabilities": capabilities(model),
        "imported": isinstance(meta.get("imported_from"), dict),  # `ganforge import` of an NVlabs pickle
        "sample_steps": sample_steps(run_dir)[-1:] if not detail else sample_steps(run_dir),
    }
    if detail:
        out["class_names"] = [str(n) for n in names]
        out["domains"] = spec.get("domains") or []
        captions = spec.get("captions") if isinstance(spec.get("captions"), list) else []
        out["example_prompts"] = list(dict.fromkeys(str(c) for c in captions))[:16]
        out["config"] = cfg
        try:
            out["checkpoints"] = ckpt.list_checkpoints(run_dir / "checkpoints")
        except OSError:
            out["checkpoints"] = []
    return finite(out)


def list_runs(runs_dir: Path) -> list[Path]:
    """Run folders directly inside runs_dir (a config.json or a checkpoints folder), by name. Symlinks
    that lead outside runs_dir are left out, as the API refuses them."""
    root = runs_dir.resolve()
    out = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return []
    for e in entries:
        if e.name.startswith(".") or "\\" in e.name:
            continue
        try:
            p = Path(e.path).resolve()
            if p.parent != root or not p.is_dir():
                continue
            if (p / "config.json").is_file() or (p / "checkpoints").is_dir():
                out.append(p)
        except OSError:
            continue
    return out


MAX_EXAMPLES = 4  # inputs the image-to-image playground offers as one-click examples
_MAX_GRID_SIDE = 20000  # a sample grid larger than this is not one the training loop wrote


def example_inputs(run_dir: Path, limit: int = MAX_EXAMPLES) -> dict[str, Any]:
    """The fixed inputs an image-input run shows in its previews (the first column of its sample grids:
    input | output | target, taken from its dataset), cut out of the newest grid, as examples for the
    playground. {"step": grid step or None, "examples": [(PIL image, direction)], "note": why none}.
    A super-resolution run's inputs are shown enlarged in the grid (nearest neighbour); they are brought
    back to the model's input size, exactly. Reads only files of the run: no dataset, no model."""
    from PIL import Image

    cfg = read_json(run_dir / "config.json") or {}
    _, meta = checkpoint_meta(run_dir)
    if not cfg and isinstance(meta.get("config"), dict):
        cfg = meta["config"]
    caps = capabilities(cfg.get("model"))
    if caps["inputs"] != "image":
        return {"step": None, "examples": [], "note": "this run generates from seeds; it takes no input images"}
    spec = meta.get("spec") if isinstance(meta.get("spec"), dict) else {}
    side, steps = spec.get("resolution"), sample_steps(run_dir)
    if not steps or not isinstance(side, int) or side < 1:
        return {"step": None, "examples": [], "note": "no sample grid yet: examples appear with the first one"}
    step = steps[-1]
    path = run_dir / "samples" / f"grid-{step:06d}.png"
    try:
        with Image.open(path) as im:
            w, h = im.size
            if max(w, h) > _MAX_GRID_SIDE:
                raise ValueError("too large")
            grid = im.convert("L" if im.mode in ("L", "I;16", "1") else "RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return {"step": step, "examples": [], "note": f"cannot read {path.name}"}
    cell, pad = side + 1, 1
    cols, rows = (w - pad) // cell, (h - pad) // cell
    if cols < 2 or rows < 1 or cols * cell + pad != w or rows * cell + pad != h:
        return {"step": step, "examples": [], "note": f"{path.name} is not laid out as input | output | target rows"}
    directions = caps["directions"] or ["AtoB"]
    # CycleGAN's previews are A | G_AB(A) | B | G_BA(B): both sides are inputs, one per direction.
    columns = [(0, directions[0])] + ([(2, directions[1])] if len(directions) > 1 and cols >= 4 else [])
    in_side = spec.get("in_resolution") or side
    shrink = isinstance(in_side, int) and 0 < in_side < side and side % in_side == 0
    out = []
    for r in range(rows):
        for c, way in columns:
            if len(out) >= limit:
                break
            x, y = pad + c * cell, pad + r * cell
            tile = grid.crop((x, y, x + side, y + side))
            if shrink:
                tile = tile.resize((in_side, in_side), Image.Resampling.NEAREST)
            out.append((tile, way))
    return {"step": step, "examples": out, "note": ""}
