"""Mode-collapse benchmark on the 2-D mixtures `ring8` and `grid25` (VEEGAN / PacGAN protocol).

Every configuration trains through ganforge's real loop (`ganforge.training.loop.train`, fp32, one CPU
thread, no sample grids or intermediate checkpoints), is reloaded from its run folder with
`ganforge.load`, and generates 2,500 points from seeds 0..2499. A point is high quality (HQ) within
3 std of its nearest mode; a mode is covered when it is the nearest mode of at least one HQ point
(`ganforge.data.points.mode_stats`). Each configuration runs 5 training seeds for a fixed number of
steps; the table shows mean and minimum over seeds, beside the published numbers (ANCHORS.md).

    python benchmarks/mode_collapse.py [--quick] [--json PATH] [--jobs 2] [--configs a,b] [--data ring8]

The "best" configuration of a data set is the one whose worst seed is best (modes, then HQ): a
configuration only counts for what all its seeds reach. CPU seconds are `time.process_time()` of the
training process (training plus evaluation), the budget the benchmark sets is 60 per run.
"""

from __future__ import annotations

import multiprocessing as mp
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common

DATASETS = ("ring8", "grid25")
SEEDS = (0, 1, 2, 3, 4)
EVAL_SEEDS = range(2500)  # generated points per evaluation (VEEGAN / PacGAN)
CPU_BUDGET_S = 60.0


@dataclass
class BenchConfig:
    """One row of the benchmark: a family, its settings and the loop settings of every run."""

    name: str
    model: str
    family: dict[str, Any]
    steps: int
    batch: int
    ema_kimg: float = 0.0
    note: str = ""
    loop: dict[str, Any] = field(default_factory=dict)


# The PacGAN / VEEGAN architecture (G 4x400 ReLU + BN, D 3x200 maxout, z 2-D, Adam(1e-4, beta1 0.8),
# batch 100, PacGAN sec. 5.1) with the budget cut from 400k steps to what fits in about a minute of CPU.
VANILLA = BenchConfig(
    "gan (vanilla)", "gan",
    {"nz": 2, "g_width": 400, "g_layers": 4, "g_norm": "batch", "d_width": 200, "d_layers": 3, "d_act": "maxout",
     "maxout_pieces": 5, "lr": 1e-4, "beta1": 0.8, "beta2": 0.999},
    steps=1000, batch=100, note="PacGAN arch., 1k steps",
)
CONFIGS: list[BenchConfig] = [
    VANILLA,
    BenchConfig(
        "gan (ganforge)", "gan",
        {"nz": 9, "g_width": 64, "g_layers": 3, "g_norm": "none", "d_width": 64, "d_layers": 3, "d_act": "lrelu",
         "mixture": 100, "loss": "nonsaturating", "r1": 0.1, "lr": 2e-3, "lr_halflife": 1000, "beta1": 0.5,
         "beta2": 0.999},
        steps=4000, batch=1024, ema_kimg=50.0, note="mixture latent, R1, lr decay, EMA",
    ),
    BenchConfig(
        "gan hinge", "gan",
        {"nz": 2, "g_width": 64, "g_layers": 3, "g_norm": "none", "d_width": 64, "d_layers": 3, "d_act": "lrelu",
         "loss": "hinge", "lr": 3e-3, "beta1": 0.5, "beta2": 0.999},
        steps=4000, batch=1024, ema_kimg=50.0, note="3x64 MLPs, hinge, lr 3e-3, batch 1024, EMA",
    ),
    BenchConfig(
        "wgan-gp", "wgan-gp", {"nz": 2, "width": 128, "layers": 3, "lr": 5e-4, "beta1": 0.5},
        steps=1000, batch=1280, note="lambda 10, 5 critic steps, lr 5e-4, 3x128 MLPs",
    ),
    BenchConfig(
        "sngan", "sngan", {"nz": 2, "width": 128, "layers": 3, "lr": 1e-3},
        steps=3000, batch=256, note="SN + hinge, 3x128 MLPs, lr 1e-3",
    ),
]

# Published numbers (ANCHORS.md; sources in the first column): (ring modes, ring HQ %, grid modes, grid HQ %).
PUBLISHED: list[tuple[str, str, tuple[Any, Any, Any, Any]]] = [
    ("GAN", "VEEGAN T1", (1, 99.3, 3.3, 0.5)),
    ("ALI", "VEEGAN T1", (2.8, 0.13, 15.8, 1.6)),
    ("Unrolled GAN", "VEEGAN T1", (7.6, 35.6, 23.6, 16)),
    ("VEEGAN", "VEEGAN T1", (8, 52.9, 24.6, 40)),
    ("WGAN-GP", "GDPP T1", (6.8, 59.6, 24.2, 28.7)),
    ("GDPP-GAN", "GDPP T1", (8.0, 71.7, 24.8, 68.5)),
    ("GAN", "PacGAN T1", ("6.3 ± 0.5", "98.2 ± 0.2", "17.3 ± 0.8", "94.8 ± 0.7")),
    ("PacGAN2", "PacGAN T1", ("7.9 ± 0.1", "95.6 ± 2.0", "23.8 ± 0.7", "91.3 ± 0.8")),
    ("PacGAN4", "PacGAN T1", ("7.8 ± 0.1", "95.9 ± 1.4", "24.8 ± 0.2", "93.6 ± 0.6")),
]


def run_one(cfg: BenchConfig, data: str, seed: int, *, steps: int | None = None, plot_dir: Path | None = None) -> dict[str, Any]:
    """Train one configuration on one data set with one seed; return its row."""
    import torch

    import ganforge
    from ganforge.config import TrainConfig
    from ganforge.data.dataset import load_dataset
    from ganforge.data.points import mode_stats
    from ganforge.training.loop import train

    torch.set_num_threads(1)  # tiny MLPs: one thread is as fast, and runs can go side by side
    n_steps = steps or cfg.steps
    t_cpu, t_wall = time.process_time(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ganforge-modes-") as tmp:
        tc = TrainConfig(
            data=data, model=cfg.model, steps=n_steps, batch=cfg.batch, seed=seed, runs_dir=tmp, run="run",
            precision="fp32", ema_kimg=cfg.ema_kimg, log_every=max(n_steps // 10, 1), sample_every=10**9,
            ckpt_every=10**9, threads=1, device="cpu", family=dict(cfg.family), **cfg.loop,
        )
        res = train(tc, progress=False)
        train_cpu = time.process_time() - t_cpu
        model = ganforge.load(res.run_dir)
        points = model.generate(list(EVAL_SEEDS), output="tensor")
        ds = load_dataset(data)
        st = mode_stats(points, ds.centers, ds.std)
        warnings = list(res.warnings)
        if plot_dir is not None and seed == 0:
            from ganforge.sample.grid import render_points, save_png

            plot_dir.mkdir(parents=True, exist_ok=True)
            slug = re.sub(r"[^a-z0-9]+", "-", cfg.name.lower()).strip("-")
            save_png(render_points(points, centers=ds.centers), plot_dir / f"{slug}-{data}.png")
    return {
        "config": cfg.name, "model": cfg.model, "data": data, "seed": seed, "steps": n_steps, "batch": cfg.batch,
        "modes": st.modes, "num_modes": st.num_modes, "hq": round(st.hq_fraction, 4), "kl": round(st.kl, 4),
        "train_cpu_s": round(train_cpu, 2), "cpu_s": round(time.process_time() - t_cpu, 2),
        "wall_s": round(time.perf_counter() - t_wall, 2), "warnings": warnings,
    }


def _warm_imports() -> None:
    """Import torch and ganforge, and build one Adam (which imports torch._dynamo, ~3 CPU-s), before
    any run is timed: CPU-s per run measure training and evaluation, not a process's first imports."""
    import torch

    import ganforge.training.loop  # noqa: F401

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def _run_task(task: tuple[BenchConfig, str, int, int | None, Path | None]) -> dict[str, Any]:
    cfg, data, seed, steps, plot_dir = task
    return run_one(cfg, data, seed, steps=steps, plot_dir=plot_dir)


def summarise(rows: list[dict[str, Any]], configs: list[BenchConfig], datasets: tuple[str, ...]) -> dict[str, Any]:
    """Per (config, data): mean / min over seeds; the best configuration per data set; the flat keys."""
    groups: dict[str, dict[str, Any]] = {}
    for cfg in configs:
        for data in datasets:
            rs = [r for r in rows if r["config"] == cfg.name and r["data"] == data]
            if not rs:
                continue
            modes, hq = [r["modes"] for r in rs], [r["hq"] for r in rs]
            groups[f"{cfg.name}|{data}"] = {
                "config": cfg.name, "data": data, "seeds": len(rs),
                "modes_mean": statistics.fmean(modes), "modes_min": min(modes),
                "hq_mean": statistics.fmean(hq), "hq_min": min(hq),
                "cpu_s_max": max(r["cpu_s"] for r in rs), "cpu_s_mean": statistics.fmean(r["cpu_s"] for r in rs),
            }
    out: dict[str, Any] = {"groups": list(groups.values())}
    for data in datasets:
        cands = [g for g in groups.values() if g["data"] == data]
        if not cands:
            continue
        best = max(cands, key=lambda g: (g["modes_min"], g["hq_min"]))
        out[f"best_{data}_config"] = best["config"]
        out[f"best_{data}_modes_min"] = best["modes_min"]
        out[f"best_{data}_hq_min"] = best["hq_min"]
        out[f"best_{data}_cpu_s_max"] = best["cpu_s_max"]
    vanilla = groups.get(f"{VANILLA.name}|grid25")
    if vanilla is not None:
        out["vanilla_grid25_modes_mean"] = vanilla["modes_mean"]
        out["vanilla_grid25_hq_mean"] = vanilla["hq_mean"]
    return out


def format_table(summary: dict[str, Any], configs: list[BenchConfig], datasets: tuple[str, ...]) -> str:
    """One table: ganforge's rows (mean, [min] over seeds) above the published ones."""
    groups = {(g["config"], g["data"]): g for g in summary["groups"]}
    head = f"| {'model':<22} | {'source':<34} | ring8 modes /8 | ring8 HQ % | grid25 modes /25 | grid25 HQ % | CPU-s/run |"
    lines = [head, "|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|"]
    for cfg in configs:
        cells = []
        cpu = []
        for data in ("ring8", "grid25"):
            g = groups.get((cfg.name, data))
            if g is None:
                cells += ["-", "-"]
                continue
            cells += [f"{g['modes_mean']:.1f} [{g['modes_min']}]", f"{100 * g['hq_mean']:.1f} [{100 * g['hq_min']:.1f}]"]
            cpu.append(g["cpu_s_max"])
        src = f"ganforge, {max((groups[k]['seeds'] for k in groups if k[0] == cfg.name), default=0)} seeds: {cfg.note}"
        lines.append(
            f"| {cfg.name:<22} | {src[:34]:<34} | {cells[0]:>14} | {cells[1]:>10} | {cells[2]:>16} | {cells[3]:>11} | "
            f"{(f'{max(cpu):.0f}' if cpu else '-'):>9} |"
        )
    for name, source, vals in PUBLISHED:
        cells = [str(v) for v in vals]
        lines.append(
            f"| {name:<22} | {source:<34} | {cells[0]:>14} | {cells[1]:>10} | {cells[2]:>16} | {cells[3]:>11} | {'-':>9} |"
        )
    lines.append("ganforge cells: mean over seeds [worst seed]; CPU-s: worst run (training + evaluation, 1 thread).")
    for data in datasets:
        if f"best_{data}_config" in summary:
            lines.append(
                f"best on {data}: {summary[f'best_{data}_config']} "
                f"(worst seed: {summary[f'best_{data}_modes_min']} modes, {100 * summary[f'best_{data}_hq_min']:.1f} % HQ)"
            )
    return "\n".join(lines)


def run_benchmark(
    configs: list[BenchConfig], datasets: tuple[str, ...] = DATASETS, seeds: tuple[int, ...] = SEEDS, *,
    steps: int | None = None, jobs: int = 1, plot_dir: Path | None = None, echo=print,
) -> dict[str, Any]:
    """Run every (config, data, seed); return {"rows", "summary" keys..., "table"}."""
    tasks = [(cfg, data, seed, steps, plot_dir) for cfg in configs for data in datasets for seed in seeds]
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    if jobs > 1:
        with mp.get_context("spawn").Pool(jobs, initializer=_warm_imports) as pool:
            for row in pool.imap(_run_task, tasks):
                rows.append(row)
                echo(_row_line(row))
    else:
        _warm_imports()
        for task in tasks:
            rows.append(_run_task(task))
            echo(_row_line(rows[-1]))
    summary = summarise(rows, configs, datasets)
    result: dict[str, Any] = {
        "benchmark": "mode_collapse", "protocol": "VEEGAN/PacGAN: 2,500 samples, HQ within 3 std, mode covered by >= 1 HQ sample",
        "rows": rows, **summary, "wall_s": round(time.perf_counter() - t0, 1), "cpu_budget_s": CPU_BUDGET_S,
        "over_budget": [f"{r['config']}|{r['data']}|{r['seed']}" for r in rows if r["cpu_s"] > CPU_BUDGET_S],
        "configs": [{"name": c.name, "model": c.model, "family": c.family, "steps": steps or c.steps, "batch": c.batch,
                     "ema_kimg": c.ema_kimg} for c in configs],
    }
    result["table"] = format_table(summary, configs, datasets)
    return result


def _row_line(r: dict[str, Any]) -> str:
    return (
        f"{r['config']:<18} {r['data']:<7} seed {r['seed']}: {r['modes']:>2}/{r['num_modes']} modes, "
        f"{100 * r['hq']:5.1f} % HQ, KL {r['kl']:.3f}, {r['cpu_s']:.1f} CPU-s"
    )


def main(argv: list[str] | None = None) -> int:
    ap = _common.parser(__doc__, quick="2 seeds instead of 5 (same steps)")
    ap.add_argument("--jobs", type=int, default=1, help="runs side by side (each uses one thread)")
    ap.add_argument("--configs", default="", help="comma-separated configuration names (default: all)")
    ap.add_argument("--data", default=",".join(DATASETS), help="ring8, grid25 or both")
    ap.add_argument("--seeds", type=int, default=0, help="number of seeds (default 5, or 2 with --quick)")
    ap.add_argument("--plots", type=Path, default=None, help="save a scatter plot of seed 0 of every row here")
    args = ap.parse_args(argv)
    configs = _common.select(CONFIGS, args.configs, "configuration")
    n_seeds = args.seeds or (2 if args.quick else len(SEEDS))
    datasets = tuple(d for d in args.data.split(",") if d)
    result = run_benchmark(configs, datasets, tuple(range(n_seeds)), jobs=args.jobs, plot_dir=args.plots)
    result["quick"] = bool(args.quick)
    print(result["table"])
    _common.write_json(args.json, result, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
