"""DCGAN training throughput: ganforge's loop against a plain fp32 reference loop, in one run; and, with
--device cuda, ganforge's GPU throughput beside the GPU's measured bf16 matmul peak and beside lucidrains'
stylegan2-pytorch and lightweight-gan.

CPU mode (the default). The reference is written the way the PyTorch DCGAN tutorial writes it (64x64,
nz=100, ngf=ndf=64, BCELoss on a sigmoid D, Adam(2e-4, 0.5, 0.999), one G forward reused for the G update),
fed from in-memory float tensors so that data loading costs it nothing. ganforge runs its real `train()`
with its defaults for the device (precision "auto": bf16 autocast where the CPU computes bf16 natively,
channels_last, EMA, logging). Runs alternate (reference, ganforge, ...) and the medians are compared,
because this machine is shared and noisy.

CUDA mode (--device cuda). Rows: ganforge dcgan 64 px (batch 64) and stylegan2 cfg=auto at 64, 128 and
256 px (batch 32), each with precision "auto" (dcgan: bf16 autocast where the GPU has it, else fp16;
stylegan2: the reference's fp16 blocks on the 4 highest resolutions, no autocast) and with --compile off
and on. Each row runs the real `train()` on the built-in emoji images in its own process and reports
- img/s in steady state: from the loop's own metrics.jsonl windows (16 steps each, so every window holds
  the same share of stylegan2's lazy R1 and path-length steps), the warm-up windows (compilation
  included) left out;
- peak GPU memory of the run (torch.cuda.max_memory_allocated; the dataset lives on the GPU too);
- TFLOP/s and the fraction of the GPU's bf16 matmul peak, measured once (8192^3 bf16 matmul, best of 20).
  FLOPs per image are counted with torch.utils.flop_counter over a training step (for stylegan2 with its
  lazy path-length step amortised over its interval; lazy R1, which the counter cannot follow, is left out,
  so for stylegan2 the fraction is a lower bound).
Then, when installed, lucidrains' `stylegan2-pytorch` and `lightweight-gan` (pip packages, CUDA only) train
on the same images (written to a temporary folder as PNGs at the row's resolution) at the same resolution and
batch, with their own Trainer, data loader and defaults (stylegan2-pytorch: fp32, as its fp16 needs apex,
network_capacity 16, gradient penalty every 4 steps and no path-length penalty before its step 5000, so in
these short runs it does less work per step than ganforge; lightweight-gan: amp on), timed over steps after
a warm-up. The goal: ganforge stylegan2 >= 1.5x the img/s of stylegan2-pytorch at equal resolution and batch
(printed per resolution, for ganforge without and with --compile).

    python benchmarks/train_speed.py [--quick] [--json PATH]                      # CPU: DCGAN vs the tutorial loop
    python benchmarks/train_speed.py --device cuda [--quick] [--resolutions 64,128,256]
        [--compile-rows both|on|off] [--no-comparison] [--json PATH]             # GPU rows and comparison
    python benchmarks/train_speed.py --sharing [--seconds 60] [--json PATH]     # two trainings on one CPU

Sharing mode (--sharing, issue 29). `ganforge train` with its default options (the no-argument DCGAN on emoji)
runs as its own process: alone, then two at once, then two at once with `--threads N` (N = the cores, what every
torch process did by default before the thread governor: the "before" row of the same run). Each run's img/s is
the median of its metrics.jsonl windows in the second half of its time (start-up and warm-up left out);
`concurrent_fraction` is the smaller of the two concurrent runs' img/s over the solo img/s. Then the studio
(`ganforge serve`, default options) serves the solo run's generator (the default 32 px DCGAN): generate.png
latency alone, then while a default training runs beside it and a client asks for one image every 0.2 s
(`beside_studio_fraction`: that training's img/s over solo; `studio_p50_ms_under_training`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common
import torch
from torch import nn

from ganforge.config import TrainConfig
from ganforge.data import load_dataset
from ganforge.data.dataset import BatchSampler
from ganforge.device import cpu_has_native_bf16, precision_name, select_device, select_precision
from ganforge.training.loop import train

NZ, NGF, NDF, NC, RES, BATCH = 100, 64, 64, 3, 64, 64


# fmt: off
class RefGenerator(nn.Module):  # the tutorial's architecture, for 64x64
    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(NZ, NGF * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(NGF * 8), nn.ReLU(True),
            nn.ConvTranspose2d(NGF * 8, NGF * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF * 4), nn.ReLU(True),
            nn.ConvTranspose2d(NGF * 4, NGF * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF * 2), nn.ReLU(True),
            nn.ConvTranspose2d(NGF * 2, NGF, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF), nn.ReLU(True),
            nn.ConvTranspose2d(NGF, NC, 4, 2, 1, bias=False), nn.Tanh(),
        )

    def forward(self, x):
        return self.main(x)


class RefDiscriminator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(NC, NDF, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(NDF, NDF * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(NDF * 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(NDF * 2, NDF * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(NDF * 4), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(NDF * 4, NDF * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(NDF * 8), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(NDF * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid(),
        )

    def forward(self, x):
        return self.main(x)


def reference_img_s(images: torch.Tensor, steps: int, warmup: int) -> float:
    """Images/s of the tutorial loop (fp32, NCHW) over `steps` iterations after `warmup`."""
    torch.manual_seed(0)
    G, D = RefGenerator(), RefDiscriminator()
    crit = nn.BCELoss()
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    data = images.float().div(127.5).sub(1)  # in memory, already normalised: free for the reference
    t0 = 0.0
    for it in range(warmup + steps):
        if it == warmup:
            t0 = time.perf_counter()
        real = data[torch.randint(len(data), (BATCH,))]
        D.zero_grad()
        label = torch.full((BATCH,), 1.0)
        err_real = crit(D(real).view(-1), label)
        err_real.backward()
        fake = G(torch.randn(BATCH, NZ, 1, 1))
        label.fill_(0.0)
        err_fake = crit(D(fake.detach()).view(-1), label)
        err_fake.backward()
        opt_d.step()
        G.zero_grad()
        label.fill_(1.0)
        err_g = crit(D(fake).view(-1), label)
        err_g.backward()
        opt_g.step()
    return steps * BATCH / (time.perf_counter() - t0)
# fmt: on


def steady_img_s(records: list[dict[str, Any]], batch: int, warmup: int) -> float | None:
    """Images/s over the logged windows that start at or after step `warmup` (the warm-up windows, and
    with them any compilation, are left out); None when no such window was logged."""
    recs = [r for r in records if "img_s" in r and "step" in r]
    pairs = [(p, r) for p, r in zip(recs, recs[1:]) if p["step"] >= warmup and r["img_s"] > 0]
    if not pairs:
        return None
    n_img = sum((r["step"] - p["step"]) * batch for p, r in pairs)
    t_img = sum((r["step"] - p["step"]) * batch / r["img_s"] for p, r in pairs)
    return n_img / t_img


def ganforge_img_s(
    steps: int,
    warmup: int,
    workdir: Path,
    tag: str,
    *,
    model: str = "dcgan",
    resolution: int = RES,
    batch: int = BATCH,
    family: dict[str, Any] | None = None,
    device: str = "cpu",
    precision: str = "auto",
    compile: bool = False,
    window: int = 0,
) -> float:
    """Images/s of ganforge's train() on the emoji images after `warmup` steps, from its own per-window
    timings (metrics.jsonl). The loop logs every `window` steps (0: every `warmup` steps, so that the first
    record covers the warm-up)."""
    cfg = TrainConfig(
        data="emoji",
        resolution=resolution,
        model=model,
        batch=batch,
        steps=warmup + steps,
        log_every=window or warmup,
        sample_every=10**9,
        ckpt_every=10**9,
        runs_dir=str(workdir),
        run=tag,
        device=device,
        precision=precision,
        compile=compile,
        family=dict(family) if family is not None else {"nz": NZ, "ngf": NGF, "ndf": NDF},
    )
    t0 = time.perf_counter()
    train(cfg, progress=False)
    wall = time.perf_counter() - t0
    recs = [json.loads(x) for x in (workdir / tag / "metrics.jsonl").read_text().splitlines()]
    steady = steady_img_s(recs, batch, warmup)
    return steady if steady is not None else (warmup + steps) * batch / wall


def data_img_s(n_batches: int = 300) -> float:
    """Images/s of the in-memory uint8 pipeline at 64x64: shuffle, index, convert to [-1, 1], x-flip."""
    ds = load_dataset("emoji", resolution=RES)
    sampler = BatchSampler(len(ds), BATCH, 0)
    for _ in range(10):
        ds.batch(sampler.next(), xflip=True)
    t0 = time.perf_counter()
    for _ in range(n_batches):
        ds.batch(sampler.next(), xflip=True)
    return n_batches * BATCH / (time.perf_counter() - t0)


# ---- CPU mode: DCGAN against the tutorial loop ------------------------------------------------------


def cpu_main(args: argparse.Namespace, argv: list[str] | None) -> None:
    steps, warmup, repeats = (8, 3, 1) if args.quick else (30, 5, 3)
    repeats = args.repeats or repeats
    dev = select_device("cpu")
    prec = precision_name(select_precision("auto", dev))
    images = load_dataset("emoji", resolution=RES).images
    refs, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            refs.append(reference_img_s(images, steps, warmup))
            ours.append(ganforge_img_s(steps, warmup * 2, Path(tmp), f"r{r}"))
            print(
                f"repeat {r + 1}/{repeats}: reference {refs[-1]:.1f} img/s, ganforge {ours[-1]:.1f} img/s",
                file=sys.stderr,
            )
    d = data_img_s()
    ref, our = statistics.median(refs), statistics.median(ours)
    out = {
        "benchmark": "train_speed",
        "model": f"dcgan {RES}x{RES}, batch {BATCH}, nz={NZ}, ngf=ndf={NGF}",
        "device": str(dev),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "ganforge_precision": prec,
        "ganforge_img_s": round(our, 1),
        "reference_img_s": round(ref, 1),
        "ratio": round(our / ref, 3),
        "data_img_s": round(d, 0),
        "ganforge_runs": [round(x, 1) for x in ours],
        "reference_runs": [round(x, 1) for x in refs],
        "steps_per_run": steps,
        "torch": torch.__version__,
    }
    print(f"{'':<28}{'img/s':>10}")
    print(f"{'reference loop (fp32)':<28}{ref:>10.1f}")
    print(f"{'ganforge (' + prec + ', channels_last)':<28}{our:>10.1f}")
    print(f"{'ratio ganforge/reference':<28}{our / ref:>10.2f}   (goal: >= 2.0 with native bf16, >= 1.0 everywhere)")
    print(f"{'data pipeline (uint8, 64px)':<28}{d:>10.0f}   (goal: >= 20,000)")
    print(f"cpu native bf16: {cpu_has_native_bf16()}; threads: {torch.get_num_threads()}; torch {torch.__version__}")
    _common.write_json(args.json, out, argv)


# ---- CUDA mode: ganforge rows beside the matmul peak, and lucidrains' libraries -----------------------

NO_CUDA = "train_speed: --device cuda needs a CUDA GPU; none is visible (torch.cuda.is_available() is False)"
SG2_BATCH = 32  # the stylegan2 auto config's batch on one GPU up to 128 px; the comparison uses the same
WINDOW = 16  # steps per logged window: a multiple of stylegan2's lazy R1 (16) and path-length (4) intervals
PEAK_N, PEAK_REPS = 8192, 20  # the bf16 matmul that measures the peak
LIBRARIES = {"stylegan2-pytorch": "stylegan2_pytorch", "lightweight-gan": "lightweight_gan"}  # pip name: module
GOAL_RATIO = 1.5  # ganforge stylegan2 / stylegan2-pytorch img/s at equal resolution and batch
ROW_TAG = "train_speed row: "  # a child process's result line
ROW_KEYS = (
    "name",
    "model",
    "resolution",
    "batch",
    "precision",
    "compile",
    "img_s",
    "gpu_mem_gib",
    "tflops",
    "peak_fraction",
)
FLOPS_NOTE = (
    "FLOPs per image: counted with torch.utils.flop_counter over a training step (G and D updates; stylegan2: "
    "its lazy path-length step amortised over 4 steps, lazy R1 left out, so its fraction is a lower bound)"
)


def resolve_device(name: str) -> str:
    """cpu | cuda for --device (auto: cuda when one is visible). --device cuda without a CUDA GPU prints one
    line and exits with status 2."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        sys.exit(2)
    return name


def bf16_matmul_peak_tflops() -> float:
    """The GPU's measured bf16 matmul peak in TFLOP/s (stylegan_speed's timing, on a large matmul)."""
    import stylegan_speed

    peak = stylegan_speed.matmul_peak("cuda", "bf16", n=PEAK_N, reps=PEAK_REPS) / 1000
    torch.cuda.empty_cache()  # the row processes get the memory
    return peak


def ganforge_plan(
    resolutions: list[int], compile_rows: str, *, quick: bool, batch: int = SG2_BATCH, fp16_res: int | None = None
) -> list[dict[str, Any]]:
    """The ganforge rows: dcgan 64 px (batch 64), then stylegan2 cfg=auto per resolution, each with
    --compile off and/or on (`compile_rows`: both | off | on)."""
    compiles = {"both": [False, True], "off": [False], "on": [True]}[compile_rows]
    warmup, steps = (WINDOW, 2 * WINDOW) if quick else (2 * WINDOW, 4 * WINDOW)
    sg2 = {"cfg": "auto"} if fp16_res is None else {"cfg": "auto", "num_fp16_res": fp16_res}
    models = [("dcgan", 64, BATCH, {"nz": NZ, "ngf": NGF, "ndf": NDF})]
    models += [("stylegan2", r, batch, sg2) for r in resolutions]
    plan = []
    for model, res, b, family in models:
        for c in compiles:
            plan.append(
                {
                    "kind": "ganforge",
                    "name": f"ganforge {model} {res}px{' compile' if c else ''}",
                    "model": model,
                    "resolution": res,
                    "batch": b,
                    "family": family,
                    "precision": "auto",
                    "compile": c,
                    "warmup": warmup,
                    "steps": steps,
                }
            )
    return plan


def step_flops_per_image(
    model: str, resolution: int, batch: int, family: dict[str, Any], device: str = "cpu"
) -> tuple[float, int]:
    """(FLOPs per image of an average training step, trainable parameters) for a ganforge family, counted
    with torch.utils.flop_counter on random images: a plain step (loop step index 1), plus, for a family
    with lazy path-length regularisation (stylegan2), that step's extra FLOPs divided by its interval.
    Lazy R1 is left out (the counter cannot follow its autograd.grad on the input), so the count is a
    lower bound for stylegan2 (R1 runs on 1 step in 16)."""
    from torch.utils.flop_counter import FlopCounterMode

    from ganforge.families.build import build_model
    from ganforge.spec import DataSpec
    from ganforge.training.engine import Engine

    dev = torch.device(device)
    cfg = TrainConfig(model=model, resolution=resolution, batch=batch, family=dict(family))
    spec = DataSpec(resolution=resolution, channels=3)
    torch.manual_seed(0)
    fam, fam_cfg, nets = build_model(cfg, spec, dev)
    fam.setup_training(nets, dev)
    opts = fam.optimizers(nets, fam_cfg)
    x = torch.rand(batch, 3, resolution, resolution, device=dev) * 2 - 1
    ctx = Engine(dev)

    def count(step: int) -> int:
        with FlopCounterMode(display=False) as counter:
            fam.train_step(nets, opts, {"image": x}, step, ctx)
        return counter.get_total_flops()

    flops = plain = count(1)
    pl_every = int(getattr(fam_cfg, "pl_interval", 0)) if getattr(fam_cfg, "pl_weight", 0) > 0 else 0
    r1_every = int(getattr(fam_cfg, "r1_interval", 0))
    if pl_every > 1 and (r1_every <= 0 or pl_every % r1_every):  # a path-length step without R1
        flops = plain + (count(pl_every) - plain) / pl_every
    trained = [name for name in nets if name not in set(fam.ema.values())]
    params = sum(p.numel() for name in trained for p in nets[name].parameters())
    return flops / batch, params


def measure_ganforge(spec: dict[str, Any]) -> dict[str, Any]:
    """In a child process: train one ganforge row (on CUDA unless the spec names another device); img/s,
    peak GPU memory of the run (0 off CUDA), FLOPs per image and trainable parameters."""
    device = spec.get("device", "cuda")
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as tmp:
        img_s = ganforge_img_s(
            spec["steps"],
            spec["warmup"],
            Path(tmp),
            "row",
            model=spec["model"],
            resolution=spec["resolution"],
            batch=spec["batch"],
            family=spec["family"],
            device=device,
            precision=spec["precision"],
            compile=spec["compile"],
            window=spec.get("window", WINDOW),
        )
    mem = torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0
    if cuda:
        torch.cuda.empty_cache()
    flops, params = step_flops_per_image(spec["model"], spec["resolution"], spec["batch"], spec["family"], device)
    prec = precision_name(select_precision(spec["precision"], torch.device(device)))
    return {**spec, "precision": prec, "img_s": img_s, "gpu_mem_gib": mem, "flops_per_img": flops, "params": params}


def write_image_folder(resolution: int, folder: Path) -> int:
    """The emoji images at `resolution` (ganforge's own loading and resizing) as PNG files in `folder`, for
    libraries that read an image folder. Returns how many."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    images = load_dataset("emoji", resolution=resolution).images.permute(0, 2, 3, 1).numpy()  # (N, H, W, C) uint8
    for i, img in enumerate(images):
        Image.fromarray(img if img.shape[2] == 3 else img[..., 0]).save(folder / f"{i:05d}.png", compress_level=1)
    return len(images)


def lucidrains_trainer(library: str, resolution: int, batch: int, workdir: Path) -> tuple[Any, str]:
    """A lucidrains Trainer (its own defaults, augmentation off as in ganforge's rows, no periodic saving or
    sampling) and the precision it trains in."""
    common = dict(
        name="train_speed",
        results_dir="results",
        models_dir="models",
        base_dir=str(workdir),
        image_size=resolution,
        batch_size=batch,
        aug_prob=0.0,
        save_every=10**9,
        evaluate_every=10**9,
    )
    if library == "stylegan2-pytorch":
        from stylegan2_pytorch import Trainer

        return Trainer(**common, network_capacity=16, fp16=False), "fp32"  # its fp16 needs NVIDIA apex
    if library == "lightweight-gan":
        from lightweight_gan import Trainer

        return Trainer(**common, amp=True, use_aim=False), "fp16 amp"
    raise ValueError(f"unknown library {library!r}")


def package_version(dist: str) -> str:
    """The installed version of a pip package ("unknown" when its metadata cannot be read)."""
    from importlib import metadata

    for name in (dist, dist.replace("-", "_")):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


def measure_lucidrains(spec: dict[str, Any]) -> dict[str, Any]:
    """In a child process: a lucidrains library's own training step, timed after a warm-up. Both libraries
    write samples and a checkpoint at their step 0 and sample at step 100: warm-up + timed steps stay below
    100, and the warm-up holds step 0."""
    trainer, precision = lucidrains_trainer(spec["library"], spec["resolution"], spec["batch"], Path(spec["workdir"]))
    trainer.set_data_src(spec["folder"])
    for _ in range(spec["warmup"]):
        trainer.train()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(spec["steps"]):
        trainer.train()
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    nets = [m for m in (getattr(trainer.GAN, k, None) for k in ("S", "G", "D")) if isinstance(m, nn.Module)]
    return {
        **spec,
        "version": package_version(spec["library"]),
        "precision": precision,
        "img_s": spec["steps"] * spec["batch"] / dt,
        "gpu_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
        "params": sum(p.numel() for m in nets for p in m.parameters()),
    }


def measure_row(spec: dict[str, Any]) -> dict[str, Any]:
    """A child process's work: one row, ganforge or a comparison library."""
    return measure_ganforge(spec) if spec["kind"] == "ganforge" else measure_lucidrains(spec)


def run_row(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Measure one row in its own process (its own peak memory, compilation caches and library state).
    A failure comes back as the spec with an `error`."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--row", json.dumps(spec)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"timed out after {timeout:.0f} s"}
    results = [line[len(ROW_TAG) :] for line in out.stdout.splitlines() if line.startswith(ROW_TAG)]
    if out.returncode != 0 or not results:
        print(f"row {spec['name']} failed (exit {out.returncode}):\n{out.stderr[-3000:]}", file=sys.stderr)
        last = (out.stderr.strip() or out.stdout.strip() or "no output").splitlines()[-1]
        return {**spec, "error": f"exit {out.returncode}: {last[:300]}"}
    return json.loads(results[-1])


def summarize_row(m: dict[str, Any], peak_tflops: float) -> dict[str, Any]:
    """The report row of a ganforge measurement: ROW_KEYS plus gflop_per_img and params_m. TFLOP/s is
    FLOPs per image x img/s; peak_fraction divides it by the measured bf16 matmul peak."""
    row = {k: m.get(k) for k in ROW_KEYS[:6]}
    if m.get("error"):
        return {**row, "error": m["error"]}
    tflops = m["flops_per_img"] * m["img_s"] / 1e12
    return {
        **row,
        "img_s": round(m["img_s"], 1),
        "gpu_mem_gib": round(m["gpu_mem_gib"], 2),
        "tflops": round(tflops, 3),
        "peak_fraction": round(tflops / peak_tflops, 4) if peak_tflops > 0 else None,
        "gflop_per_img": round(m["flops_per_img"] / 1e9, 3),
        "params_m": round(m["params"] / 1e6, 2),
    }


def summarize_comparison(m: dict[str, Any]) -> dict[str, Any]:
    """The report row of a comparison library's measurement."""
    row = {k: m.get(k) for k in ("name", "library", "resolution", "batch")}
    if m.get("error"):
        return {**row, "error": m["error"]}
    return {
        **row,
        "version": m["version"],
        "precision": m["precision"],
        "img_s": round(m["img_s"], 1),
        "gpu_mem_gib": round(m["gpu_mem_gib"], 2),
        "params_m": round(m["params"] / 1e6, 2),
        "steps": m["steps"],
        "images": m["images"],
    }


def table_header() -> str:
    return (
        f"{'row':<34}{'prec':>6}{'img/s':>10}{'GPU GiB':>9}{'params M':>10}{'GFLOP/img':>11}{'TFLOP/s':>9}"
        f"{'of peak':>9}"
    )


def format_row(row: dict[str, Any]) -> str:
    """One table line for a ganforge row or a comparison row (no FLOPs for those)."""
    if row.get("error"):
        return f"{row['name']:<34}failed: {row['error']}"
    line = (
        f"{row['name']:<34}{row['precision']:>6}{row['img_s']:>10.1f}{row['gpu_mem_gib']:>9.2f}{row['params_m']:>10.1f}"
    )
    if "tflops" not in row:
        return line + f"{'-':>11}{'-':>9}{'-':>9}"
    frac = f"{100 * row['peak_fraction']:.1f} %" if row["peak_fraction"] is not None else "-"
    return line + f"{row['gflop_per_img']:>11.2f}{row['tflops']:>9.2f}{frac:>9}"


def ratios_vs_stylegan2_pytorch(
    rows: list[dict[str, Any]], comparison: list[dict[str, Any]], *, compiled: bool
) -> dict[str, float]:
    """ganforge stylegan2 img/s / stylegan2-pytorch img/s per resolution (str keys), for the ganforge rows
    with --compile on (`compiled`) or off."""
    theirs = {
        c["resolution"]: c["img_s"]
        for c in comparison
        if c.get("library") == "stylegan2-pytorch" and not c.get("error")
    }
    return {
        str(r["resolution"]): round(r["img_s"] / theirs[r["resolution"]], 3)
        for r in rows
        if r["model"] == "stylegan2" and r["compile"] == compiled and not r.get("error") and theirs.get(r["resolution"])
    }


def run_comparison(
    resolutions: list[int], batch: int, *, quick: bool, timeout: float
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """lucidrains' libraries at each resolution, on the emoji images written as PNGs; (rows, skipped
    libraries with the reason). A library that is not installed is skipped with one line."""
    skipped = {}
    for lib, module in LIBRARIES.items():
        if importlib.util.find_spec(module) is None:  # found without importing (both assert CUDA on import)
            print(f"{lib} not installed (pip install {lib}): comparison skipped")
            skipped[lib] = "not installed"
    libs = [lib for lib in LIBRARIES if lib not in skipped]
    rows: list[dict[str, Any]] = []
    if not libs:
        return rows, skipped
    warmup, steps = (4, 12) if quick else (8, 40)  # both libraries sample at their step 100: stay below
    with tempfile.TemporaryDirectory() as tmp:
        for res in resolutions:
            folder = Path(tmp) / f"emoji-{res}"
            n = write_image_folder(res, folder)
            for lib in libs:
                spec = {
                    "kind": "library",
                    "name": f"{lib} {res}px",
                    "library": lib,
                    "resolution": res,
                    "batch": batch,
                    "warmup": warmup,
                    "steps": steps,
                    "folder": str(folder),
                    "workdir": str(Path(tmp) / f"{lib}-{res}"),
                    "images": n,
                }
                rows.append(summarize_comparison(run_row(spec, timeout)))
                print(format_row(rows[-1]), flush=True)
    return rows, skipped


def goal_met(ratios: dict[str, float]) -> bool | None:
    """Whether ganforge reaches GOAL_RATIO x stylegan2-pytorch's img/s at every compared resolution (None:
    nothing compared)."""
    return min(ratios.values()) >= GOAL_RATIO if ratios else None


def print_ratios(eager: dict[str, float], compiled: dict[str, float]) -> None:
    """One line: the ratio per resolution (with --compile in brackets) and whether the goal is met."""
    if not eager and not compiled:
        return
    parts = []
    for res in sorted(set(eager) | set(compiled), key=int):
        text = f"{res}px {eager[res]:.2f}x" if res in eager else f"{res}px -"
        parts.append(text + (f" (compile {compiled[res]:.2f}x)" if res in compiled else ""))
    status = {None: "-", True: "met", False: "not met"}
    print(
        f"ratio ganforge stylegan2 / stylegan2-pytorch img/s: {', '.join(parts)}   (goal >= {GOAL_RATIO}x at each "
        f"resolution: {status[goal_met(eager)]} without --compile, {status[goal_met(compiled)]} with it)"
    )


def cuda_main(args: argparse.Namespace, argv: list[str] | None) -> None:
    resolutions = [64] if args.quick else args.resolutions
    gpu = torch.cuda.get_device_name(0)
    peak = bf16_matmul_peak_tflops()
    print(
        f"GPU {gpu}; torch {torch.__version__}; bf16 matmul peak {peak:.1f} TFLOP/s ({PEAK_N}^3, best of {PEAK_REPS})"
    )
    print(FLOPS_NOTE)
    print(
        "img/s: steady state (warm-up windows left out); GPU GiB: peak allocated (ganforge: the whole run, data included)"
    )
    print(table_header())
    rows = []
    for spec in ganforge_plan(
        resolutions, args.compile_rows, quick=args.quick, batch=args.batch, fp16_res=args.fp16_res
    ):
        rows.append(summarize_row(run_row(spec, args.row_timeout), peak))
        print(format_row(rows[-1]), flush=True)
    comparison: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    if args.no_comparison:
        print("comparison skipped (--no-comparison)")
    else:
        comparison, skipped = run_comparison(resolutions, args.batch, quick=args.quick, timeout=args.row_timeout)
    ratio = ratios_vs_stylegan2_pytorch(rows, comparison, compiled=False)
    ratio_compiled = ratios_vs_stylegan2_pytorch(rows, comparison, compiled=True)
    print_ratios(ratio, ratio_compiled)
    out = {
        "benchmark": "train_speed",
        "device": "cuda",
        "gpu": gpu,
        "bf16_matmul_peak_tflops": round(peak, 1),
        "rows": rows,
        "comparison": comparison,
        "comparison_skipped": skipped,
        "ratio_vs_stylegan2_pytorch": ratio,
        "ratio_vs_stylegan2_pytorch_compile": ratio_compiled,
        "goal_ratio": GOAL_RATIO,
        "goal_met": {"eager": goal_met(ratio), "compile": goal_met(ratio_compiled)},
        "flops_method": FLOPS_NOTE,
        "torch": torch.__version__,
    }
    _common.write_json(args.json, out, argv)


# ---- entry point ---------------------------------------------------------------------------------------


def _resolutions(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated pixel sizes such as 64,128,256, got {text!r}"
        ) from None
    if not values or any(v < 8 or v > 1024 or v & (v - 1) for v in values):
        raise argparse.ArgumentTypeError(f"resolutions must be powers of two from 8 to 1024, got {text!r}")
    return values


# ---- sharing mode -----------------------------------------------------------------------------------------


def _train_procs(folder: Path, names: list[str], seconds: float, extra: list[str]) -> list[float]:
    """Start one `ganforge train` per name at once (default options plus `extra`), each for `seconds`; the
    median img/s of each run's log windows in the second half of its training time."""
    procs = []
    for name in names:
        cmd = [sys.executable, "-m", "ganforge", "train", "--runs-dir", str(folder), "--run", name, "--steps", "1000000",
               "--max-minutes", f"{seconds / 60:.4f}", "--sample-every", "1000000", "--ckpt-every", "1000000", *extra]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate(timeout=seconds + 600)[0] for p in procs]
    rates = []
    for name, p, out in zip(names, procs, outs):
        if p.returncode != 0:
            raise SystemExit(f"error: the training {name} failed:\n{out[-2000:]}")
        recs = [json.loads(x) for x in (folder / name / "metrics.jsonl").read_text().splitlines() if x.strip()]
        recs = [r for r in recs if "img_s" in r and "time_s" in r]
        late = [r["img_s"] for r in recs if r["time_s"] >= seconds / 2] or [r["img_s"] for r in recs[-3:]]
        rates.append(statistics.median(late))
        threads = [line for line in out.splitlines() if "threads" in line]
        if threads:
            print(f"  {name}: " + " | ".join(t.strip() for t in threads[:4]))
    return rates


def _studio_beside_training(folder: Path, seconds: float) -> dict[str, Any]:
    """`ganforge serve` on `folder` (its run "solo"): generate.png latency alone, then beside a default training."""
    import socket
    import threading
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "ganforge", "serve", str(folder), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/api/runs/solo/generate.png?seed="

    def ask(seed: int) -> float:
        t0 = time.perf_counter()
        with urllib.request.urlopen(url + str(seed), timeout=60) as r:
            r.read()
        return (time.perf_counter() - t0) * 1000

    try:
        for _ in range(300):  # the server starts
            try:
                ask(0)
                break
            except OSError:
                time.sleep(0.1)
        alone = [ask(s) for s in range(1, 41)]
        under: list[float] = []
        stop = threading.Event()

        def client() -> None:
            time.sleep(seconds / 2)  # the training's second half, as its img/s is measured
            s = 100
            while not stop.is_set():
                under.append(ask(s))
                s += 1
                time.sleep(0.2)

        th = threading.Thread(target=client, daemon=True)
        th.start()
        beside = _train_procs(folder, ["e"], seconds, [])[0]
        stop.set()
        th.join(60)
    finally:
        server.terminate()
        server.wait(30)
    under.sort()
    return {
        "studio_p50_ms_alone": statistics.median(alone), "studio_p50_ms_under_training": statistics.median(under),
        "studio_p90_ms_under_training": under[int(0.9 * (len(under) - 1))], "studio_requests_under_training": len(under),
        "beside_img_s": beside,
    }


def sharing_main(args: argparse.Namespace, argv: list[str] | None) -> None:
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    t = args.seconds
    print(f"sharing: {cores} cores ({_common.cpu_features()}), {t:.0f} s per run, default `ganforge train`")
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        solo = _train_procs(folder, ["solo"], t, [])[0]
        print(f"solo, default threads (governor)            {solo:8.1f} img/s")
        two = _train_procs(folder, ["a", "b"], t, [])
        print(f"two at once, default threads (governor)     {two[0]:8.1f} / {two[1]:.1f} img/s  ({min(two) / solo:.2f} of solo)")
        fixed = _train_procs(folder, ["c", "d"], t, ["--threads", str(cores)])
        print(f"two at once, --threads {cores} each (before)      {fixed[0]:8.1f} / {fixed[1]:.1f} img/s  ({min(fixed) / solo:.2f} of solo)")
        studio = _studio_beside_training(folder, t)
        rows = {
            **studio,
            "solo_img_s": solo, "concurrent_img_s": two, "concurrent_fraction": min(two) / solo,
            "concurrent_fixed_threads_img_s": fixed, "concurrent_fixed_threads_fraction": min(fixed) / solo,
        }
    rows["beside_studio_fraction"] = rows.pop("beside_img_s") / solo
    print(f"studio alone: generate.png p50 {rows['studio_p50_ms_alone']:.1f} ms; beside a training: p50 "
          f"{rows['studio_p50_ms_under_training']:.1f} ms (goal <= 100), p90 {rows['studio_p90_ms_under_training']:.1f} ms; "
          f"the training kept {rows['beside_studio_fraction']:.2f} of solo (goal >= 0.70)")
    print(f"concurrent_fraction {rows['concurrent_fraction']:.2f} (goal >= 0.45); with every core each: "
          f"{rows['concurrent_fixed_threads_fraction']:.2f}")
    _common.write_json(args.json, {"mode": "sharing", "cores": cores, "cpu_features": _common.cpu_features(),
                                   "seconds": t, **rows}, argv)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = _common.parser(
        __doc__, quick="fewer steps and repeats (about a minute); with --device cuda: fewer steps, 64 px only"
    )
    ap.add_argument(
        "--device",
        choices=["cpu", "cuda", "auto"],
        default="cpu",
        help="cpu (default), cuda, or auto (cuda when visible)",
    )
    ap.add_argument("--repeats", type=int, default=None, help="CPU mode: alternating runs per side")
    ap.add_argument(
        "--resolutions",
        type=_resolutions,
        default=[64, 128, 256],
        help="CUDA mode: stylegan2 and comparison resolutions",
    )
    ap.add_argument(
        "--compile-rows",
        choices=["both", "off", "on"],
        default="both",
        help="CUDA mode: ganforge rows with --compile off and/or on",
    )
    ap.add_argument(
        "--batch", type=int, default=SG2_BATCH, help="CUDA mode: stylegan2 and comparison batch (dcgan: 64)"
    )
    ap.add_argument(
        "--fp16-res", type=int, default=None, help="CUDA mode: stylegan2 num_fp16_res (default: the family's)"
    )
    ap.add_argument("--no-comparison", action="store_true", help="CUDA mode: skip lucidrains' libraries")
    ap.add_argument("--row-timeout", type=float, default=1800.0, help="CUDA mode: seconds allowed per row")
    ap.add_argument("--row", default=None, help=argparse.SUPPRESS)  # a child process: measure this row
    ap.add_argument("--sharing", action="store_true", help="two default trainings at once vs one alone (CPU)")
    ap.add_argument("--seconds", type=float, default=60.0, help="sharing mode: seconds each training runs")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.row:
        print(ROW_TAG + json.dumps(measure_row(json.loads(args.row))), flush=True)
        return
    if args.sharing:
        sharing_main(args, argv)
        return
    if resolve_device(args.device) == "cuda":
        cuda_main(args, argv)
    else:
        cpu_main(args, argv)


if __name__ == "__main__":
    main()
