"""StyleGAN2 training throughput and memory, beside the machine's measured matmul peak.

For each resolution (32, 64, 128 px by default) and configuration, one process builds the stylegan2
family, runs warm-up steps and then timed `train_step`s (lazy R1 and path length included at their
usual intervals) on random images, and reports img/s, the FLOPs of a step (counted with
torch.utils.flop_counter on a step without the lazy regularisers, so the fraction is a lower bound), the
achieved fraction of the measured matmul peak, and the process's peak memory (RSS on a CPU, allocated
memory on CUDA). Each row runs in its own subprocess, so peak memory is that row's. On CUDA it also
runs with fp16 on the highest-resolution layers (the official setting) and with --compile.

    python benchmarks/stylegan_speed.py [--quick] [--device cpu|cuda] [--reference] [--json PATH]

--reference (issue 29) adds, for every row, the same row with the reference release's way of computing the
weight demodulation (the per-sample weights (N, O, I, k, k) multiplied out, squared and summed, even on the
training path that never convolves with them: `ganforge.nn.stylegan2.REFERENCE_PATH`), run in the same
process order on the same machine, and reports each row's `speedup_vs_reference`. Rows alternate
(reference, ours) per resolution and precision, so slow drift of a shared machine hits both.

The 256 px figure to compare with (official README, one V100, auto config): 21.6-24.2 s/kimg
(about 45 img/s).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import _common

PUBLISHED = (
    "NVlabs stylegan2-ada-pytorch, 1x V100, auto config, 256 px: 21.6-24.2 s/kimg (~45 img/s); 128 px: 12.8-13.7 s/kimg"
)


def matmul_peak(device: str, dtype: str, n: int = 2048, reps: int = 10) -> float:
    """Measured GFLOP/s of an n x n matmul (the best of `reps`)."""
    import torch

    dt = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    a = torch.randn(n, n, device=device, dtype=dt)
    b = torch.randn(n, n, device=device, dtype=dt)
    best = float("inf")
    for _ in range(reps):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def one_row(spec: dict) -> dict:
    """Run in a subprocess: build, warm up, time; returns the row."""
    import resource

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ganforge.device import select_precision
    from ganforge.families.stylegan2 import StyleGAN2, StyleGAN2Config
    from ganforge.nn import stylegan2 as S
    from ganforge.spec import DataSpec
    from ganforge.training.engine import Engine

    S.REFERENCE_PATH["demodulation"] = bool(spec.get("reference"))
    torch.manual_seed(0)
    device = torch.device(spec["device"])
    fam = StyleGAN2()
    cfg = StyleGAN2Config(cfg=spec["cfg"], num_fp16_res=spec.get("fp16_res", 0))
    dspec = DataSpec(resolution=spec["res"], channels=3)
    fam.resolve_config(cfg, dspec, spec["batch"])
    nets = fam.build(cfg, dspec).to(device)
    opts = fam.optimizers(nets, cfg)
    eng = Engine(device, select_precision(spec["precision"], device))
    step_fn = fam.train_step
    if spec.get("compile"):
        nets["G"].synthesis = torch.compile(nets["G"].synthesis)
        nets["D"] = torch.compile(nets["D"])
    x = torch.rand(spec["batch"], 3, spec["res"], spec["res"], device=device) * 2 - 1

    def run(step: int) -> None:
        with eng.autocast():
            step_fn(nets, opts, {"image": x}, step, eng)

    for s in range(1, spec["warmup"] + 1):
        run(s)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for s in range(1, spec["steps"] + 1):
        run(s)
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t
    # FLOPs of a step without the lazy regularisers (FlopCounterMode cannot follow the double backward
    # of R1 and path length); they add about (pl cost / 4 + r1 cost / 16), so the fraction of the peak
    # below is a lower bound.
    with FlopCounterMode(display=False) as fc:
        run(1)
    per_step = fc.get_total_flops()
    mem = (
        torch.cuda.max_memory_allocated() / 2**20
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    img_s = spec["batch"] * spec["steps"] / dt
    return {
        **spec,
        "img_s": img_s,
        "s_per_kimg": 1000 / img_s,
        "gflop_per_img": per_step / spec["batch"] / 1e9,
        "achieved_gflops": per_step * spec["steps"] / dt / 1e9,
        "peak_mem_mib": mem,
        "widths": {str(r): min(cfg.channel_base // r, cfg.channel_max) for r in (4, spec["res"])},
    }


def main() -> None:
    ap = _common.parser(__doc__, quick="32 and 64 px only, fewer steps")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--resolutions", default="32,64,128")
    ap.add_argument("--cfg", default="small", help="stylegan2 configuration (small, auto, ...)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--reference", action="store_true", help="also time the reference's demodulation path, row by row")
    ap.add_argument("--row", default=None, help=argparse_suppress())
    args = ap.parse_args()
    if args.row:  # child process: one row
        print(json.dumps(one_row(json.loads(args.row))))
        return
    import torch

    from ganforge.device import cpu_has_native_bf16

    torch.set_num_threads(torch.get_num_threads())
    res_list = [int(r) for r in args.resolutions.split(",")]
    if args.quick:
        res_list = [r for r in res_list if r <= 64]
    steps, warmup = (4, 2) if args.quick else (10, 3)
    precisions = ["fp32"]
    if args.device == "cuda" or cpu_has_native_bf16():
        precisions.append("bf16")
    # Both peaks are measured and printed on every machine (a CPU without native bf16 emulates it: that is
    # why its rows run in fp32 only); each row's fraction is of its own precision's peak.
    # (Emulated bf16 is so slow that its peak is measured on a smaller product.)
    peaks = {
        p: matmul_peak(args.device, p, *((512, 2) if p not in precisions else ()))
        for p in dict.fromkeys(["fp32", "bf16", *precisions])
    }
    print(
        f"device {args.device} ({_common.cpu_features()}); native bf16 on this CPU: {cpu_has_native_bf16()}; matmul peak "
        + ", ".join(f"{p} {g:.0f} GFLOP/s" for p, g in peaks.items())
    )
    rows = []
    variants = [dict(precision=p) for p in precisions]
    if args.reference:
        variants = [dict(v, reference=ref) for v in variants for ref in (True, False)]
    if args.device == "cuda":
        variants += [dict(precision="bf16", fp16_res=4), dict(precision="bf16", compile=True)]
    for res in res_list:
        for v in variants:
            spec = dict(device=args.device, cfg=args.cfg, res=res, batch=args.batch, steps=steps, warmup=warmup, **v)
            out = subprocess.run([sys.executable, __file__, "--row", json.dumps(spec)], capture_output=True, text=True)
            if out.returncode != 0:
                print(f"row {spec} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
                continue
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row["fraction_of_peak"] = row["achieved_gflops"] / peaks[row["precision"]]
            if not row.get("reference"):
                ref = next(
                    (r for r in rows if r.get("reference") and r["res"] == res and r["precision"] == row["precision"]),
                    None,
                )
                if ref is not None:
                    row["speedup_vs_reference"] = row["img_s"] / ref["img_s"]
            rows.append(row)
            print(
                f"{res:>4}px {row['precision']:<5}{' fp16-res' if row.get('fp16_res') else ''}{' compile' if row.get('compile') else ''}"
                f"{' reference' if row.get('reference') else ''} "
                f"batch {row['batch']}: {row['img_s']:7.1f} img/s ({row['s_per_kimg']:.0f} s/kimg), {row['gflop_per_img']:.2f} GFLOP/img, "
                f"{row['fraction_of_peak'] * 100:.1f} % of the {row['precision']} matmul peak, peak memory {row['peak_mem_mib']:.0f} MiB"
                + (f", {row['speedup_vs_reference']:.2f}x the reference path" if "speedup_vs_reference" in row else ""),
                flush=True,
            )
    print(f"published: {PUBLISHED}")
    _common.write_json(
        args.json,
        {
            "rows": rows,
            "matmul_peak_gflops": peaks,
            "native_bf16": cpu_has_native_bf16(),
            "published": PUBLISHED,
            "cpu_features": _common.cpu_features(),
            "fp32_peak_gflops": peaks.get("fp32"),
            "bf16_peak_gflops": peaks.get("bf16"),
        },
    )


def argparse_suppress() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
