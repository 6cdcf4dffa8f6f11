"""3-D shapes benchmark: gan3d on the procedural `shapes3d` voxels, measured against held-out shapes.

One configuration trains through ganforge's real loop (`ganforge.training.loop.train`, fp32, a fixed step budget,
so the load on the machine does not change the numbers), is reloaded from its run folder and generates shapes
from seeds 0..N-1 (conditional: seed s asks for class s % 8). They are compared with N held-out shapes: the same
procedural classes drawn from another seed (`shapes3d_arrays(seed=SHAPES3D_SEED + 1)`), never trained on.

Distances are 1 - IoU of occupancy (occupied: > 0), as 3D-GAN-era voxel work compares shapes. Following
Achlioptas et al. 2018 (sec. 4) and Yang et al. 2019 (PointFlow, sec. 5.2):

- `mmd`: minimum matching distance, the mean over held-out shapes of the distance to the nearest generated one
  (lower is better);
- `cov`: coverage, the fraction of held-out shapes that are the nearest held-out shape of some generated one;
- `cov_self`: the same coverage for N *training* shapes in place of generated ones, the ceiling a model that
  reproduced its training data would reach (floor: `cov` >= 0.5 x `cov_self`);
- `one_nna`: 1-nearest-neighbour accuracy of telling generated from held-out shapes (leave one out; 0.5 is ideal,
  1.0 when every shape's nearest neighbour is from its own set);
- `classes_covered` of `num_classes`: classes a small 3-D CNN (trained here on the training shapes, its held-out
  accuracy reported) assigns to at least 1 % of the generated shapes (floor: every class);
- `s_per_step_16`, `s_per_step_32`: seconds per training step (batch 32, D and G updated) of the default
  networks at 16^3 and 32^3, on this machine's threads (timings are taken again on a quiet machine).

    python benchmarks/shapes3d.py [--quick] [--json PATH] [--grid PNG] [--steps N] [--uncond]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common
import numpy as np
import torch
from torch import nn

RESOLUTION = 16
STEPS, QUICK_STEPS = 3000, 800
BATCH = 32
SAMPLES = 200  # generated and held-out shapes compared (25 per class)
FAMILY = {"ngf": 16, "ndf": 16}  # the family's defaults otherwise (lr_g 2.5e-3, lr_d 1e-3, mode seeking with --cond)


def iou_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - IoU between every shape of a (N, ...) and of b (M, ...) (bool occupancy): (N, M)."""
    fa = torch.from_numpy(a.reshape(len(a), -1).astype(np.float32))
    fb = torch.from_numpy(b.reshape(len(b), -1).astype(np.float32))
    inter = fa @ fb.T
    union = fa.sum(1, keepdim=True) + fb.sum(1)[None] - inter
    iou = torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))  # two empty shapes: equal
    return (1 - iou).numpy()


def mmd_cov(gen: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(MMD, COV) of generated shapes against reference shapes (Achlioptas et al. 2018)."""
    d = iou_distances(gen, ref)  # (G, R)
    mmd = float(d.min(0).mean())  # each reference: its nearest generated shape
    cov = float(len(np.unique(d.argmin(1))) / ref.shape[0])  # references that are some generated shape's nearest
    return mmd, cov


def one_nna(gen: np.ndarray, ref: np.ndarray) -> float:
    """Leave-one-out 1-NN accuracy of the two-sample classifier gen vs ref (Lopez-Paz & Oquab 2017; PointFlow)."""
    x = np.concatenate([gen, ref])
    y = np.r_[np.zeros(len(gen)), np.ones(len(ref))]
    d = iou_distances(x, x)
    np.fill_diagonal(d, np.inf)
    return float((y[d.argmin(1)] == y).mean())


class ShapeClassifier(nn.Module):
    """A small 3-D CNN: two stride-2 conv blocks, global average pooling, a linear head."""

    def __init__(self, classes: int, width: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv3d(1, width, 3, 1, 1),
            nn.ReLU(),
            nn.MaxPool3d(2),
            nn.Conv3d(width, 2 * width, 3, 1, 1),
            nn.ReLU(),
            nn.MaxPool3d(2),
            nn.Conv3d(2 * width, 4 * width, 3, 1, 1),
            nn.ReLU(),
            nn.AdaptiveAvgPool3d(1),
            nn.Flatten(),
            nn.Linear(4 * width, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def train_classifier(vox: np.ndarray, labels: np.ndarray, classes: int, epochs: int, seed: int = 0) -> ShapeClassifier:
    torch.manual_seed(seed)
    net = ShapeClassifier(classes)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    x = torch.from_numpy(vox).float()[:, None] * 2 - 1
    y = torch.from_numpy(labels)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(64):
            xb = x[idx]
            flip = torch.rand(len(idx), generator=g) < 0.5
            xb[flip] = xb[flip].flip(2)  # mirrored in x, as training does
            opt.zero_grad()
            nn.functional.cross_entropy(net(xb), y[idx]).backward()
            opt.step()
    return net.eval()


@torch.no_grad()
def classify(net: ShapeClassifier, vox: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(vox).float()[:, None] * 2 - 1
    return torch.cat([net(xb).argmax(1) for xb in x.split(128)]).numpy()


def seconds_per_step(resolution: int, steps: int) -> float:
    """Mean seconds of one train_step (D and G updated) of gan3d's default networks, batch 32."""
    from ganforge.data.voxels import shapes3d_arrays
    from ganforge.families.base import StepContext
    from ganforge.families.gan3d import GAN3D, GAN3DConfig
    from ganforge.spec import DataSpec

    torch.manual_seed(0)
    fam = GAN3D()
    cfg = GAN3DConfig(d_gate=1.0)
    nets = fam.build(cfg, DataSpec(kind="voxels", resolution=resolution, channels=1))
    opts = fam.optimizers(nets, cfg)
    vox, _ = shapes3d_arrays(per_class=4, resolution=resolution)
    real = torch.from_numpy(vox[:BATCH]).float()[:, None] * 2 - 1
    ctx = StepContext("cpu")
    for _ in range(2):  # warm-up
        fam.train_step(nets, opts, {"image": real}, 0, ctx)
    t0 = time.perf_counter()
    for i in range(steps):
        fam.train_step(nets, opts, {"image": real}, i, ctx)
    return (time.perf_counter() - t0) / steps


def run_benchmark(
    steps: int, *, cond: bool, grid: Path | None, timing_steps: int, family: dict[str, Any] | None = None
) -> dict[str, Any]:
    import ganforge
    from ganforge.config import TrainConfig
    from ganforge.data.voxels import SHAPES3D_CLASSES, SHAPES3D_SEED, shapes3d_arrays
    from ganforge.training.loop import train

    classes = len(SHAPES3D_CLASSES)
    train_vox, train_labels = shapes3d_arrays(resolution=RESOLUTION)
    held, held_labels = shapes3d_arrays(per_class=SAMPLES // classes, resolution=RESOLUTION, seed=SHAPES3D_SEED + 1)

    t0 = time.process_time()
    clf = train_classifier(train_vox, train_labels, classes, epochs=15)
    clf_acc = float((classify(clf, held) == held_labels).mean())
    clf_s = time.process_time() - t0

    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(
            data="shapes3d",
            model="gan3d",
            resolution=RESOLUTION,
            steps=steps,
            batch=BATCH,
            cond=cond,
            family={**FAMILY, **(family or {})},
            runs_dir=tmp,
            run="bench",
            sample_every=steps,
            ckpt_every=steps,
            log_every=100,
            grid_size=64,
            precision="fp32",
            channels_last=False,
            seed=0,
            threads=1,
        )
        t0 = time.process_time()
        res = train(cfg, progress=False)
        train_s = time.process_time() - t0
        model = ganforge.load(res.run_dir)
        gen = model.generate(list(range(SAMPLES)), output="tensor")[:, 0].numpy() > 0  # (N, R, R, R)
        if grid is not None:
            from ganforge.sample.grid import make_grid, save_png

            grid.parent.mkdir(parents=True, exist_ok=True)
            save_png(make_grid(model.generate(list(range(64)), output="tensor"), nrow=8), grid)
            save_png(
                make_grid(torch.from_numpy(held[:64]).float()[:, None] * 2 - 1, nrow=8),
                grid.with_name(grid.stem + "-heldout.png"),
            )

    rng = np.random.default_rng(0)
    train_pick = train_vox[rng.choice(len(train_vox), SAMPLES, replace=False)].astype(bool)
    mmd, cov = mmd_cov(gen, held.astype(bool))
    mmd_self, cov_self = mmd_cov(train_pick, held.astype(bool))
    nna = one_nna(gen, held.astype(bool))
    pred = classify(clf, gen.astype(np.uint8))
    counts = np.bincount(pred, minlength=classes)
    covered = int((counts >= max(1, round(0.01 * SAMPLES))).sum())
    cond_hits = float((pred == np.arange(SAMPLES) % classes).mean()) if cond else None
    result = {
        "mmd": mmd,
        "cov": cov,
        "cov_self": cov_self,
        "mmd_self": mmd_self,
        "one_nna": nna,
        "classes_covered": covered,
        "num_classes": classes,
        "class_counts": dict(zip(SHAPES3D_CLASSES, counts.tolist())),
        "cond_class_match": cond_hits,
        "classifier_heldout_accuracy": clf_acc,
        "classifier_cpu_s": clf_s,
        "floors": {"cov >= 0.5 cov_self": cov >= 0.5 * cov_self, "every class generated": covered == classes},
        "occupancy_generated": float(gen.mean()),
        "occupancy_heldout": float(held.mean()),
        "config": {
            "resolution": RESOLUTION,
            "steps": steps,
            "batch": BATCH,
            "cond": cond,
            "family": {**FAMILY, **(family or {})},
            "samples": SAMPLES,
        },
        "train_cpu_s": train_s,
        "last_logs": {k: round(v, 4) for k, v in res.last.items()},
    }
    if timing_steps:
        result["s_per_step_16"] = seconds_per_step(16, timing_steps)
        result["s_per_step_32"] = seconds_per_step(32, timing_steps)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = _common.parser(__doc__, quick=f"{QUICK_STEPS} training steps instead of {STEPS}, fewer timed steps")
    ap.add_argument("--steps", type=int, default=0, help="training steps (default: 3000, or 800 with --quick)")
    ap.add_argument("--uncond", action="store_true", help="train without the class labels")
    ap.add_argument(
        "--grid",
        type=Path,
        default=None,
        help="write a grid of 64 generated shapes' renderings here (and -heldout.png)",
    )
    ap.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="a gan3d setting, as train's --set"
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from ganforge.config import parse_value
    from ganforge.registry import get_family

    defaults = get_family("gan3d").default_config()
    family = {k: parse_value(v, getattr(defaults, k)) for k, v in (i.split("=", 1) for i in args.sets)}
    steps = args.steps or (QUICK_STEPS if args.quick else STEPS)
    result = run_benchmark(steps, cond=not args.uncond, grid=args.grid, timing_steps=3 if args.quick else 10, family=family)
    result["quick"] = bool(args.quick)
    for k in ("mmd", "cov", "cov_self", "one_nna", "classes_covered", "num_classes", "s_per_step_16", "s_per_step_32"):
        v = result.get(k)
        print(f"{k:16s} {v:.4f}" if isinstance(v, float) else f"{k:16s} {v}")
    print(f"floors: {result['floors']}; classifier held-out accuracy {result['classifier_heldout_accuracy']:.3f}")
    _common.write_json(args.json, result, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
