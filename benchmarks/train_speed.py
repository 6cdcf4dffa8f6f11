"""DCGAN training throughput: ganforge's loop against a plain fp32 reference loop, in one run.

The reference is written the way the PyTorch DCGAN tutorial writes it (64x64, nz=100, ngf=ndf=64,
BCELoss on a sigmoid D, Adam(2e-4, 0.5, 0.999), one G forward reused for the G update), fed from
in-memory float tensors so that data loading costs it nothing. ganforge runs its real `train()` with
its defaults for the device (precision "auto": bf16 autocast where the CPU computes bf16 natively,
channels_last, EMA, logging). Runs alternate (reference, ganforge, ...) and the medians are compared,
because this machine is shared and noisy.

    python benchmarks/train_speed.py [--quick] [--json PATH]
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _common
import torch
from torch import nn

from ganforge.config import TrainConfig
from ganforge.data import load_dataset
from ganforge.data.dataset import BatchSampler
from ganforge.device import cpu_has_native_bf16, precision_name, select_device, select_precision
from ganforge.training.loop import train

NZ, NGF, NDF, NC, RES, BATCH = 100, 64, 64, 3, 64, 64


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


def ganforge_img_s(steps: int, warmup: int, workdir: Path, tag: str) -> float:
    """Images/s of ganforge's train() after `warmup` steps (from its own per-window timings)."""
    cfg = TrainConfig(
        data="emoji", resolution=RES, model="dcgan", batch=BATCH, steps=warmup + steps, log_every=warmup,
        sample_every=10**9, ckpt_every=10**9, runs_dir=str(workdir), run=tag,
        family={"nz": NZ, "ngf": NGF, "ndf": NDF},
    )
    t0 = time.perf_counter()
    train(cfg, progress=False)
    wall = time.perf_counter() - t0
    recs = [json.loads(x) for x in (workdir / tag / "metrics.jsonl").read_text().splitlines()]
    # The first record covers the warm-up window; the rest are steady-state windows.
    steady = recs[1:]
    if not steady:
        return (warmup + steps) * BATCH / wall
    n_img = sum((r["step"] - p["step"]) * BATCH for p, r in zip(recs, steady))
    t_img = sum((r["step"] - p["step"]) * BATCH / r["img_s"] for p, r in zip(recs, steady))
    return n_img / t_img


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


def main(argv: list[str] | None = None) -> None:
    ap = _common.parser(__doc__, quick="fewer steps and repeats (about a minute)")
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args(argv)
    steps, warmup, repeats = (8, 3, 1) if args.quick else (30, 5, 3)
    repeats = args.repeats or repeats
    dev = select_device("auto")
    prec = precision_name(select_precision("auto", dev))
    images = load_dataset("emoji", resolution=RES).images
    refs, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            refs.append(reference_img_s(images, steps, warmup))
            ours.append(ganforge_img_s(steps, warmup * 2, Path(tmp), f"r{r}"))
            print(f"repeat {r + 1}/{repeats}: reference {refs[-1]:.1f} img/s, ganforge {ours[-1]:.1f} img/s", file=sys.stderr)
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


if __name__ == "__main__":
    main()
