"""`ganforge report RUN`: one self-contained HTML page about a training run.

Everything is embedded (plots and images as base64 data URIs, CSS inline), so the file can be mailed,
attached to an issue or opened offline years later. The page shows: a summary, the final metrics, loss
and metric curves (matplotlib, drawn on an Agg canvas without touching pyplot's global state), the sample
grid timeline (at most `max_grids`, evenly spaced, first and last included), input/output pairs for
image-to-image runs, and the configuration.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from pathlib import Path
from typing import Any

from . import checkpoint as ckpt
from .errors import GanforgeError, require

# Keys of metrics.jsonl that are bookkeeping, not curves.
_AXES = {"step", "kimg", "time_s"}
# Curve groups: title, and a test on the key. The first group a key matches takes it.
_GROUPS: list[tuple[str, Any]] = [
    ("Losses", lambda k: k.startswith("loss")),
    ("D(x) and D(G(z))", lambda k: k in ("D_real", "D_fake")),
    ("Gradient norms", lambda k: k.startswith("grad")),
    (
        "Evaluation",
        lambda k: (
            "[" in k
            or k.split("_")[0].rstrip("0123456789k")
            in ("fid", "kid", "is", "precision", "recall", "density", "coverage", "psnr", "ssim", "classes", "kl")
        ),
    ),
    (
        "Regularisers",
        lambda k: k in ("r1", "gp", "pl_penalty", "pl_mean", "kl_loss", "recon", "cycle", "identity", "l1", "content"),
    ),
    ("Augmentation", lambda k: k.startswith("aug") or k in ("rt", "ada_p", "p")),
    ("Speed (img/s)", lambda k: k == "img_s"),
]
PALETTE = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The log's records that carry a step (damaged lines skipped)."""
    return [r for r in ckpt.read_log(path) if isinstance(r.get("step"), (int, float))]


def _series(recs: list[dict[str, Any]]) -> dict[str, tuple[list[float], list[float]]]:
    """key -> (steps, values) for every finite numeric key."""
    out: dict[str, tuple[list[float], list[float]]] = {}
    for rec in recs:
        for k, v in rec.items():
            if k in _AXES or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                continue
            xs, ys = out.setdefault(k, ([], []))
            xs.append(float(rec["step"]))
            ys.append(float(v))
    return out


def _group(keys: list[str]) -> list[tuple[str, list[str]]]:
    groups: dict[str, list[str]] = {}
    for k in keys:
        title = next((t for t, test in _GROUPS if test(k)), "Other")
        groups.setdefault(title, []).append(k)
    order = [t for t, _ in _GROUPS] + ["Other"]
    return [(t, sorted(groups[t])) for t in order if t in groups]


def _smooth(ys: list[float], n: int) -> list[float]:
    """Exponential moving average with a span of about n/50 points, for noisy GAN losses."""
    alpha = 2 / (max(n // 50, 2) + 1)
    out, acc = [], ys[0]
    for y in ys:
        acc = alpha * y + (1 - alpha) * acc
        out.append(acc)
    return out


def _plot(title: str, keys: list[str], series: dict[str, tuple[list[float], list[float]]]) -> str:
    """One PNG (base64) with a line per key against the step."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.3), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for i, k in enumerate(keys):
        xs, ys = series[k]
        color = PALETTE[i % len(PALETTE)]
        if len(ys) > 60:  # raw values faint, their moving average on top
            ax.plot(xs, ys, color=color, alpha=0.22, linewidth=0.8)
            ax.plot(xs, _smooth(ys, len(ys)), color=color, linewidth=1.6, label=k)
        else:
            ax.plot(xs, ys, color=color, linewidth=1.6, marker="o" if len(ys) < 12 else None, markersize=3, label=k)
    ax.set_title(title, fontsize=11, loc="left", fontweight="bold")
    ax.set_xlabel("step", fontsize=9)
    ax.grid(True, alpha=0.25)
    ax.tick_params(labelsize=8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(fontsize=8, frameon=False, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode()


def _png_b64(path_or_img: Any) -> str:
    if isinstance(path_or_img, Path):
        return base64.b64encode(path_or_img.read_bytes()).decode()
    from .images import png_bytes

    return base64.b64encode(png_bytes(path_or_img)).decode()


def pick_evenly(items: list[Any], k: int) -> list[Any]:
    """At most k items, evenly spaced, always including the first and the last."""
    if len(items) <= k:
        return list(items)
    if k == 1:
        return [items[-1]]
    idx = sorted({round(i * (len(items) - 1) / (k - 1)) for i in range(k)})
    return [items[i] for i in idx]


def _grid_step(path: Path) -> int:
    m = re.search(r"(\d+)", path.stem)
    return int(m.group(1)) if m else -1


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != v:
            return "nan"
        return f"{v:,.0f}" if abs(v) >= 10000 else f"{v:.4g}"
    return html.escape(str(v))


def _pairs(run_dir: Path, n: int) -> tuple[str, list[str]]:
    """HTML rows of input | output (| target) for `n` dataset preview images, through Model.translate."""
    import torch

    from .data.dataset import load_dataset
    from .sample.model import Model

    model = Model.load(run_dir)
    cfg = model.config
    try:
        data = load_dataset(
            cfg.data, resolution=cfg.resolution, channels=cfg.channels, kinds=model.family.data_kinds,
            options=model.family.data_options(model.fam_cfg),
        )  # fmt: skip
        batch = data.preview(n)
    except GanforgeError as exc:
        return "", [f"input/output pairs skipped: the training data is not available here ({exc})"]
    src = batch["source"] if "source" in batch else batch["A"]
    out = model.translate(src.float().cpu(), output="pil")
    target = batch.get("target")
    from .images import to_pil

    src_pil = to_pil(src.float().cpu())
    tgt_pil = to_pil(target.float().cpu()) if isinstance(target, torch.Tensor) else None
    head = "<tr><th>input</th><th>output</th>" + ("<th>target</th>" if tgt_pil else "") + "</tr>"
    rows = []
    for i, (a, b) in enumerate(zip(src_pil, out)):
        cells = [a, b] + ([tgt_pil[i]] if tgt_pil else [])
        rows.append(
            "<tr>"
            + "".join(f'<td><img class="px" src="data:image/png;base64,{_png_b64(c)}"></td>' for c in cells)
            + "</tr>"
        )
    return f'<table class="pairs">{head}{"".join(rows)}</table>', []


CSS = """
*{box-sizing:border-box} body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2937;background:#f3f4f6}
header{background:linear-gradient(135deg,#111827,#1e3a8a);color:#fff;padding:28px 40px}
header h1{margin:0 0 4px;font-size:26px} header .sub{opacity:.8;font-size:14px}
.chips{margin-top:14px;display:flex;flex-wrap:wrap;gap:8px}
.chip{background:rgba(255,255,255,.14);border-radius:999px;padding:3px 12px;font-size:13px}
main{max-width:1180px;margin:0 auto;padding:24px 28px 60px}
section{background:#fff;border-radius:12px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:20px 24px;margin:0 0 22px}
h2{margin:0 0 14px;font-size:18px;color:#111827}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:14px}
.plots img{width:100%;border:1px solid #e5e7eb;border-radius:8px}
.timeline{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:14px}
figure{margin:0;text-align:center} figure img{width:100%;border-radius:6px;border:1px solid #e5e7eb}
figcaption{font-size:12px;color:#6b7280;margin-top:4px}
img.px{image-rendering:pixelated;image-rendering:crisp-edges}
.last img{max-width:520px;width:100%}
table.kv{border-collapse:collapse;width:100%;font-size:14px}
table.kv td,table.kv th{padding:5px 10px;border-bottom:1px solid #f0f0f0;text-align:left}
table.kv td.num{text-align:right;font-variant-numeric:tabular-nums}
table.pairs td{padding:4px} table.pairs img{width:128px} table.pairs th{font-size:13px;color:#6b7280}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:22px}
.note{color:#92400e;background:#fffbeb;border:1px solid #fde68a;border-radius:8px;padding:8px 12px;font-size:13px}
details summary{cursor:pointer;color:#1e3a8a}
footer{color:#9ca3af;font-size:12px;text-align:center}
"""


def build_report(run_dir: Path, *, max_grids: int = 12, pairs: int = 6) -> tuple[str, dict[str, Any]]:
    """(HTML, info) for the run at `run_dir`. info: grids, plots, notes."""
    require("matplotlib", "report")
    from . import __version__

    run_dir = Path(run_dir)
    notes: list[str] = []
    try:
        config = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise GanforgeError(f"cannot read {run_dir / 'config.json'} ({exc}); is {run_dir} a run folder?") from None
    meta: dict[str, Any] = {}
    try:
        meta = ckpt.read_meta(ckpt.resolve_checkpoint(run_dir, "latest"))
    except GanforgeError as exc:
        notes.append(f"no checkpoint read ({exc})")
    spec = meta.get("spec", {})
    status: dict[str, Any] = {}
    if (run_dir / "status.json").exists():
        try:
            status = json.loads((run_dir / "status.json").read_text())
        except ValueError:
            pass
    recs = _read_jsonl(run_dir / "metrics.jsonl")
    series = _series(recs)
    plots = [(t, _plot(t, keys, series)) for t, keys in _group(list(series))]
    if not recs:
        notes.append("metrics.jsonl is missing or empty: no curves")

    grids = sorted((run_dir / "samples").glob("grid-*.png"), key=_grid_step) if (run_dir / "samples").is_dir() else []
    shown = pick_evenly(grids, max_grids)

    last: dict[str, Any] = {}
    for rec in recs:
        last.update(
            {k: v for k, v in rec.items() if k not in ("step", "rollback_from") and isinstance(v, (int, float, str))}
        )
    # Evaluation and losses first, bookkeeping (kimg, time, speed) last.
    ordered = [k for _, keys in _group([k for k in last if k not in _AXES]) for k in keys if k != "img_s"]
    final = {k: last[k] for k in ordered + [k for k in ("img_s", "kimg", "time_s") if k in last]}
    best = None
    if (run_dir / "checkpoints" / "best.json").exists():
        try:
            best = json.loads((run_dir / "checkpoints" / "best.json").read_text())
        except ValueError:
            pass

    pairs_html = ""
    if pairs and spec.get("kind") in ("paired", "unpaired", "superres") and meta:
        pairs_html, more = _pairs(run_dir, pairs)
        notes += more

    family = meta.get("family", config.get("model", "?"))
    step = int(meta.get("step", recs[-1]["step"] if recs else 0))
    loop = meta.get("loop", {})
    e = html.escape
    chips = [
        f"family <b>{e(str(family))}</b>",
        f"data <b>{e(str(config.get('data', '?')))}</b>",
        f"step <b>{step:,}</b>",
    ]
    if loop.get("nimg"):
        chips.append(f"<b>{loop['nimg'] / 1000:,.1f}</b> kimg")
    if spec.get("kind") and spec.get("kind") != "points":
        chips.append(f"{spec.get('resolution')} px, {spec.get('channels')} ch")
    if spec.get("num_classes"):
        chips.append(f"{spec['num_classes']} classes")
    if loop.get("elapsed"):
        chips.append(f"{loop['elapsed'] / 60:,.1f} min training")
    if status.get("state"):
        chips.append(f"status <b>{e(str(status['state']))}</b>")

    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>ganforge report: {e(run_dir.name)}</title><style>{CSS}</style></head><body>",
        f"<header><h1>{e(run_dir.name)}</h1><div class='sub'>ganforge training report</div>",
        "<div class='chips'>" + "".join(f"<span class='chip'>{c}</span>" for c in chips) + "</div></header><main>",
    ]
    if notes:
        parts.append("<section>" + "".join(f"<p class='note'>{e(n)}</p>" for n in notes) + "</section>")

    # Latest samples beside the final metrics.
    latest = ""
    if grids:
        latest = (
            f"<figure class='last'><img class='px' src='data:image/png;base64,{_png_b64(grids[-1])}' alt='latest grid'>"
            f"<figcaption>step {_grid_step(grids[-1]):,}</figcaption></figure>"
        )
    rows = "".join(
        f"<tr><td>{e(k)}</td><td class='num'>{_fmt(v)}</td></tr>" for k, v in final.items() if k != "rollback_from"
    )
    if best:
        rows += f"<tr><td>best checkpoint</td><td class='num'>step {_fmt(best.get('step'))} ({e(str(best.get('key', '')))} {_fmt(best.get('value', ''))})</td></tr>"
    metrics_table = (
        f"<table class='kv'><tr><th>metric</th><th style='text-align:right'>last value</th></tr>{rows}</table>"
        if rows
        else "<p>no metrics logged</p>"
    )
    parts.append(
        f"<section><div class='cols'><div><h2>Latest samples</h2>{latest or '<p>no sample grids</p>'}</div><div><h2>Final metrics</h2>{metrics_table}</div></div></section>"
    )

    if plots:
        parts.append("<section><h2>Curves</h2><div class='plots'>")
        parts += [f"<img src='data:image/png;base64,{b64}' alt='{e(t)}'>" for t, b64 in plots]
        parts.append("</div></section>")
    if shown:
        parts.append(
            f"<section><h2>Sample grids over training ({len(shown)} of {len(grids)})</h2><div class='timeline'>"
        )
        parts += [
            f"<figure><img class='px' src='data:image/png;base64,{_png_b64(g)}' alt='{e(g.name)}'><figcaption>step {_grid_step(g):,}</figcaption></figure>"
            for g in shown
        ]
        parts.append("</div></section>")
    if pairs_html:
        parts.append(f"<section><h2>Input / output</h2>{pairs_html}</section>")

    fam_cfg = config.get("family", {}) if isinstance(config.get("family"), dict) else {}
    cfg_rows = "".join(
        f"<tr><td>{e(str(k))}</td><td>{e(json.dumps(v))}</td></tr>" for k, v in config.items() if k != "family"
    )
    fam_rows = "".join(f"<tr><td>{e(str(k))}</td><td>{e(json.dumps(v))}</td></tr>" for k, v in fam_cfg.items())
    parts.append(
        "<section><h2>Configuration</h2><div class='cols'>"
        f"<div><h3>loop</h3><table class='kv'>{cfg_rows}</table></div>"
        f"<div><h3>family ({e(str(family))})</h3><table class='kv'>{fam_rows}</table></div></div>"
        f"<details><summary>config.json</summary><pre>{e(json.dumps(config, indent=2))}</pre></details></section>"
    )
    parts.append(f"<footer>written by ganforge {e(__version__)} from {e(str(run_dir))}</footer></main></body></html>")
    return "".join(parts), {"grids": len(shown), "plots": len(plots), "notes": notes}


def write_report(run_dir: Path, out: Path, *, max_grids: int = 12, pairs: int = 6) -> dict[str, Any]:
    """Write the report to `out` (atomically); returns info (grids, plots, notes, bytes)."""
    import os

    text, info = build_report(run_dir, max_grids=max_grids, pairs=pairs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    info["bytes"] = out.stat().st_size
    return info
