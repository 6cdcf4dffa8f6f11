"""Evaluation speed: feature extraction + FID for generated 64x64 images, ganforge against torch-fidelity.

Both tools get the same uint8 images in memory (torch-fidelity as a Dataset, its documented input; ganforge as
a tensor) and the same Inception weights: the real FID weights when they are in the cache, else random
weights written to a temporary file (the speed is the same; the FID values are then meaningless, but must
still agree). In one run:

1. torch-fidelity `calculate_metrics(fid=True)`, generated vs real, its defaults otherwise (batch 64);
2. ganforge `evaluate(..., metrics="fid")` with an empty cache (extracts both sets, caches the real statistics);
3. ganforge again, as a new Evaluator: the real statistics come from the disk cache, only the generated
   images are extracted.

Targets: (2) <= 1.0x the time of (1); (3) >= 2x faster than (2). With as many real as generated images the
second can approach but not quite reach 2x (both calls extract the generated images); use --num-real to
model the usual case of a larger reference set (fid10k against a 50k dataset: about 6x).

    python benchmarks/eval_speed.py [--quick] [--num 10000] [--num-real N] [--json PATH] [--threads N]
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common


def make_images(n: int, res: int, seed: int):
    """n deterministic RGB uint8 images (n, 3, res, res): emoji at `res` px with per-image noise and shifts,
    so that the content is image-like (random weights on constant images would be unrepresentative)."""
    import torch

    from ganforge.data import load_dataset

    base = load_dataset("emoji", resolution=res).images  # (3786, 3, res, res)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, base.shape[0], (n,), generator=g)
    x = base[idx].float()
    x = x + 12.0 * torch.randn(x.shape, generator=g)
    shifts = torch.randint(-4, 5, (n,), generator=g)
    x = torch.stack([xi.roll(int(s), dims=2) for xi, s in zip(x, shifts)])
    return x.round().clamp(0, 255).to(torch.uint8)


class _TensorDataset:
    """torch-fidelity's input: a Dataset returning uint8 (3, H, W) tensors."""

    def __init__(self, images) -> None:  # noqa: ANN001
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int):  # noqa: ANN204
        return self.images[i]


def run(num: int, num_real: int, batch: int, threads: int | None) -> dict[str, Any]:
    import torch

    if threads:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="ganforge-eval-speed-") as tmp:
        return _run(Path(tmp), num, num_real, batch)


def _run(tmp: Path, num: int, num_real: int, batch: int) -> dict[str, Any]:
    import torch
    import torch_fidelity
    from torch.utils.data import Dataset

    from ganforge.errors import DataError
    from ganforge.metrics import Evaluator
    from ganforge.metrics import weights as W
    from ganforge.metrics.extractors import save_random_inception_weights

    try:
        weights = W.inception_weights(allow_download=False)
        kind = "real FID weights"
    except DataError:
        weights = save_random_inception_weights(tmp / "random-inception.pth", seed=0)
        kind = "random weights (the real ones are not in the cache)"
    fake = make_images(num, 64, seed=1)
    real = make_images(num_real, 64, seed=2)

    class DS(_TensorDataset, Dataset):
        pass

    t = time.perf_counter()
    ref = torch_fidelity.calculate_metrics(
        input1=DS(fake),
        input2=DS(real),
        cuda=False,
        fid=True,
        batch_size=batch,
        cache=False,
        verbose=False,
        feature_extractor_weights_path=str(weights),
    )
    t_tf = time.perf_counter() - t

    cache = tmp / "cache"
    t = time.perf_counter()
    first = Evaluator(real, metrics="fid", inception_weights=weights, cache=cache, batch=batch)(fake)
    t_gf1 = time.perf_counter() - t
    t = time.perf_counter()
    second = Evaluator(real, metrics="fid", inception_weights=weights, cache=cache, batch=batch)(fake)
    t_gf2 = time.perf_counter() - t
    assert second["real_stats"] == "disk", second["real_stats"]

    fid_tf = float(ref["frechet_inception_distance"])
    return {
        "num_generated": num,
        "num_real": num_real,
        "resolution": 64,
        "batch": batch,
        "weights": kind,
        "weights_sha256": first["weights_sha256"],
        "extractor": first["extractor"],
        "torch_fidelity_s": round(t_tf, 2),
        "ganforge_first_s": round(t_gf1, 2),
        "ganforge_second_s": round(t_gf2, 2),
        "ratio_vs_torch_fidelity": round(t_gf1 / t_tf, 3),
        "cache_speedup": round(t_gf1 / t_gf2, 3),
        "fid_torch_fidelity": fid_tf,
        "fid_ganforge": first["fid"],
        "fid_rel_diff": abs(first["fid"] - fid_tf) / max(abs(fid_tf), 1e-12),
        "targets_met": {"ratio<=1.0": t_gf1 <= t_tf, "speedup>=2": t_gf1 >= 2 * t_gf2},
        "torch": torch.__version__,
        "torch_fidelity": torch_fidelity.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }


def format_table(r: dict[str, Any]) -> str:
    lines = [
        f"eval speed: FID of {r['num_generated']} generated vs {r['num_real']} real 64x64 images, "
        f"{r['threads']} threads, batch {r['batch']}, {r['weights']}",
        "| step | seconds | images extracted |",
        "| --- | ---: | ---: |",
        f"| torch-fidelity calculate_metrics | {r['torch_fidelity_s']:.1f} | {r['num_generated'] + r['num_real']} |",
        f"| ganforge, first call (empty cache) | {r['ganforge_first_s']:.1f} | {r['num_generated'] + r['num_real']} |",
        f"| ganforge, second call (real stats cached) | {r['ganforge_second_s']:.1f} | {r['num_generated']} |",
        f"ganforge / torch-fidelity: {r['ratio_vs_torch_fidelity']:.2f}x (target <= 1.0); "
        f"cache speed-up: {r['cache_speedup']:.2f}x (target >= 2)",
        f"FID ganforge {r['fid_ganforge']:.6g} vs torch-fidelity {r['fid_torch_fidelity']:.6g} "
        f"(relative difference {r['fid_rel_diff']:.1e})",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = _common.parser(__doc__, quick="256 images per set (a smoke run of a few minutes on 2 cores)")
    ap.add_argument("--num", type=int, default=10000, help="generated images")
    ap.add_argument("--num-real", type=int, default=None, help="real images [default: --num]")
    ap.add_argument("--batch", type=int, default=64, help="batch size for both tools")
    ap.add_argument("--threads", type=int, default=None, help="torch threads [default: torch's]")
    a = ap.parse_args(argv)
    num = 256 if a.quick else a.num
    num_real = a.num_real or num
    r = run(num, num_real, a.batch, a.threads)
    r["quick"] = bool(a.quick)
    print(format_table(r))
    _common.write_json(a.json, r, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
