"""Generating one image on a CPU with full-size StyleGAN2 networks (random weights of the published
architectures, so no download is needed): time and peak memory at 256 px (the `auto` config of a
256 px network) and 1024 px (FFHQ's config F: channel base 32768, 8 mapping layers), fp32, one image,
noise mode const. Each size runs in its own process, so the peak memory is that size's.

    python benchmarks/generate_cpu.py [--json PATH] [--quick]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import _common

CONFIGS = {
    256: {"cfg": "auto", "z_dim": 512, "map_layers": 2, "channel_base": 16384, "channel_max": 512, "num_fp16_res": 0},
    1024: {"cfg": "auto", "z_dim": 512, "map_layers": 8, "channel_base": 32768, "channel_max": 512, "num_fp16_res": 0},
}


def one(res: int, reps: int) -> dict:
    import resource

    import torch

    from ganforge.families.stylegan2 import StyleGAN2, StyleGAN2Config
    from ganforge.spec import DataSpec, NoiseRequest

    fam = StyleGAN2()
    cfg = StyleGAN2Config(**CONFIGS[res])
    spec = DataSpec(resolution=res, channels=3)
    fam.resolve_config(cfg, spec, 4)
    nets = torch.nn.ModuleDict({"G": fam.build(cfg, spec)["G"]}).eval().requires_grad_(False)
    params = sum(p.numel() for p in nets.parameters())
    times = []
    with torch.no_grad():
        for i in range(reps + 1):
            t = time.perf_counter()
            x = fam.generate(nets, NoiseRequest(torch.randn(1, 512, generator=torch.Generator().manual_seed(i))))
            times.append(time.perf_counter() - t)
    assert x.shape == (1, 3, res, res)
    return {"resolution": res, "params_G_M": round(params / 1e6, 1), "first_s": round(times[0], 3),
            "median_s": round(sorted(times[1:])[len(times[1:]) // 2], 3),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    ap = _common.parser(__doc__, quick="one repetition")
    ap.add_argument("--one", type=int, default=0, help=argparse_suppress())
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.reps)))
        return
    rows = []
    for res in CONFIGS:
        reps = 1 if args.quick else args.reps
        out = subprocess.run([sys.executable, __file__, "--one", str(res), "--reps", str(reps)], capture_output=True, text=True, check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{res:>5} px: G {row['params_G_M']} M parameters; one image {row['median_s']} s (first {row['first_s']} s), "
              f"peak memory {row['peak_rss_mib']} MiB", flush=True)
    _common.write_json(args.json, {"rows": rows})


def argparse_suppress() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
