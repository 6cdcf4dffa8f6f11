"""pix2pix and CycleGAN on the built-in procedural demo sets, epoch by epoch, on held-out images.

- pix2pix on `edges2shapes` (1,000 outline -> filled-shape pairs, 32 px): mean absolute error (L1) of the
  translation against the ground truth of 200 held-out pairs drawn from another seed, on the 0..1 scale,
  beside two references: the input itself (outline vs shape) and the mean training target.
- CycleGAN on `day2night` (500 + 500 unpaired scenes): cycle-consistency error |G_BA(G_AB(a)) - a| on 200
  held-out day scenes (and night -> day -> night on 200 night scenes), on the 0..1 scale.

Each epoch is one pass over the training data at the family's default batch (pix2pix 16, CycleGAN 4);
the models are the families' defaults, trained with `ganforge train` settings, on the CPU.

    python benchmarks/i2i_quality.py [--epochs 3] [--quick] [--json PATH] [--threads 2]
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import parser, write_json

HELD_OUT = 200
HELD_OUT_SEED = 99  # not the demo sets' seed (2017): scenes and pairs the models never saw


def _to_float(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)  # (N, H, W, C) uint8 -> [-1, 1]


def _mae01(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().mean() / 2)  # [-1, 1] -> 0..1 scale


def run(model: str, data: str, epochs: int, n_train: int, batch: int, tmp: Path, threads: int, evaluate) -> list[dict]:
    from ganforge.config import TrainConfig
    from ganforge.sample.model import Model
    from ganforge.training.loop import train

    per_epoch = math.ceil(n_train / batch)
    rows = []
    t0 = time.perf_counter()
    for e in range(1, epochs + 1):
        cfg = TrainConfig(model=model, data=data, steps=e * per_epoch, batch=batch, xflip=True, seed=0, run=model,
                          runs_dir=str(tmp), log_every=per_epoch, sample_every=10**9, ckpt_every=per_epoch,
                          threads=threads, device="cpu")
        train(cfg, resume=e > 1, explicit={"steps"}, progress=False)
        m = Model.load(tmp / model)
        row = {"epoch": e, "steps": e * per_epoch, "minutes": round((time.perf_counter() - t0) / 60, 2), **evaluate(m)}
        rows.append(row)
        print(f"{model:9s} epoch {e}: " + ", ".join(f"{k}={v}" for k, v in row.items() if k != "epoch"), flush=True)
    return rows


def main() -> None:
    ap = parser(__doc__, quick="1 epoch each, 50 held-out images")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    epochs = 1 if args.quick else args.epochs
    k = 50 if args.quick else HELD_OUT

    from ganforge.data.builtin import day2night_arrays, edges2shapes_arrays

    edges, shapes = (_to_float(a) for a in edges2shapes_arrays(n=k, seed=HELD_OUT_SEED))
    _, train_shapes = edges2shapes_arrays()
    mean_target = _to_float(train_shapes).mean(0, keepdim=True)
    day, night = (_to_float(a) for a in day2night_arrays(n=k, seed=HELD_OUT_SEED))

    def eval_pix2pix(m) -> dict:
        with torch.inference_mode():
            out = m.translate(edges, output="tensor")
        return {"l1": round(_mae01(out, shapes), 4)}

    def eval_cyclegan(m) -> dict:
        with torch.inference_mode():
            a2 = m.translate(m.translate(day, direction="AtoB", output="tensor"), direction="BtoA", output="tensor")
            b2 = m.translate(m.translate(night, direction="BtoA", output="tensor"), direction="AtoB", output="tensor")
        return {"cycle_day": round(_mae01(a2, day), 4), "cycle_night": round(_mae01(b2, night), 4)}

    refs = {"l1_input_as_output": round(_mae01(edges, shapes), 4),
            "l1_mean_target": round(_mae01(mean_target.expand_as(shapes), shapes), 4)}
    print(f"references (held-out edges2shapes): input as output L1={refs['l1_input_as_output']}, "
          f"mean training target L1={refs['l1_mean_target']}")
    with tempfile.TemporaryDirectory(prefix="ganforge-i2i-") as tmp:
        p2p = run("pix2pix", "edges2shapes", epochs, 1000, 16, Path(tmp), args.threads, eval_pix2pix)
        cyc = run("cyclegan", "day2night", epochs, 500, 4, Path(tmp), args.threads, eval_cyclegan)
    result = {"benchmark": "i2i_quality", "quick": args.quick, "held_out": k, "held_out_seed": HELD_OUT_SEED,
              "scale": "mean absolute error on 0..1 pixel values", "references": refs,
              "pix2pix_edges2shapes": p2p, "cyclegan_day2night": cyc}
    write_json(args.json, result)


if __name__ == "__main__":
    main()
