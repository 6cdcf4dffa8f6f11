"""Class coverage on the built-in `digits` (scikit-learn's handwritten digits, 32x32, 1 channel).

Each family trains through ganforge's real loop for a fixed number of steps, is reloaded from its run
folder, and generates 1,000 images from seeds 0..999. A small CNN classifier trained on the real digits
(`ganforge.metrics.classifier.ClassifierExtractor`, cached) labels them; `ganforge.metrics.classes.
class_coverage` gives the classes covered (a class counts when its share among generated images is at
least 10 % of its share in the data) and KL(generated class histogram || real). A GAN that "generates
just one digit" covers 1 class with KL = log 10 = 2.30. For conditional models the seeds ask for class
seed % 10, and the table also gives how often the classifier agrees with the requested class.
Class coverage cannot see a generator that draws one prototype per class, so the table also gives
within-class diversity: the mean pairwise pixel distance between generated images of a class
(as the classifier labels them) over the same for real images of that class, averaged over classes
(1.0 = as varied as the data; a prototype per class gives a value near 0).

    python benchmarks/digits_quality.py [--quick] [--json PATH] [--models a,b] [--threads 2]

Numbers are comparable between runs of this script, not with papers (the classifier is ganforge's own).
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common

NUM_SAMPLES = 1000


@dataclass
class Row:
    name: str
    model: str
    steps: int
    cond: bool = False
    family: dict[str, Any] = field(default_factory=dict)
    batch: int = 64
    note: str = ""


ROWS: list[Row] = [
    Row("gan", "gan", 3000, family={"g_width": 512, "d_width": 256}, note="MLPs (Goodfellow et al. 2014), 512/256 units"),
    Row("gan --cond", "gan", 3000, cond=True, family={"g_width": 512, "d_width": 256},
        note="one-hot labels in G, projection D (default)"),
    Row("gan --cond concat", "gan", 3000, cond=True, family={"g_width": 512, "d_width": 256, "d_cond": "concat"},
        note="cGAN paper: one-hot labels at G's and D's inputs"),
    Row("dcgan", "dcgan", 1500, note="defaults"),
    Row("dcgan --cond", "dcgan", 1500, cond=True, note="projection D, mode-seeking 1 (default)"),
    Row("dcgan --cond ms0", "dcgan", 1500, cond=True, family={"mode_seeking": 0.0},
        note="projection D, mode-seeking off: G ignores z"),
    Row("wgan-gp", "wgan-gp", 600, batch=320, family={"ngf": 32, "ndf": 32}, note="n_critic 5, 5x64 reals/step"),
    Row("sngan", "sngan", 1500, family={"ngf": 32, "ndf": 32}, note="standard CNN, hinge"),
    Row("vae", "vae", 1500, note="beta 1, Bernoulli"),
    Row("vae --cond", "vae", 1500, cond=True, note="CVAE"),
]


def run_row(row: Row, *, steps: int, threads: int, runs_dir: Path, plot_dir: Path | None) -> dict[str, Any]:
    import numpy as np
    import torch

    import ganforge
    from ganforge.config import TrainConfig
    from ganforge.data.dataset import load_dataset
    from ganforge.metrics.classes import class_coverage, class_histogram
    from ganforge.metrics.classifier import ClassifierExtractor
    from ganforge.sample.grid import make_grid, save_png
    from ganforge.training.loop import train

    torch.set_num_threads(threads)
    t_cpu, t_wall = time.process_time(), time.perf_counter()
    run = "".join(c if c.isalnum() else "-" for c in row.name)
    cfg = TrainConfig(
        data="digits", model=row.model, steps=steps, batch=row.batch, cond=row.cond, seed=0, runs_dir=str(runs_dir), run=run,
        log_every=100, sample_every=10**9, ckpt_every=10**9, threads=threads, family=dict(row.family),
    )
    res = train(cfg, progress=False)
    train_cpu, train_wall = time.process_time() - t_cpu, time.perf_counter() - t_wall
    model = ganforge.load(res.run_dir)
    x = model.generate(list(range(NUM_SAMPLES)), output="tensor")  # (N, 1, 32, 32) in [-1, 1]
    if plot_dir is not None:
        plot_dir.mkdir(parents=True, exist_ok=True)
        save_png(make_grid(x[:100], nrow=10), plot_dir / f"{run}.png")
    ds = load_dataset("digits")
    extractor = ClassifierExtractor.for_dataset(ds)
    uint8 = x.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
    pred = torch.cat([extractor(uint8[i : i + 250])["logits"].argmax(1) for i in range(0, len(uint8), 250)]).numpy()
    real_hist = class_histogram(ds.labels.numpy(), ds.num_classes)
    covered, kl = class_coverage(pred, real_hist)
    real = ds.images.float().div(127.5).sub(1)
    diversity = within_class_diversity(x, torch.from_numpy(pred), real, ds.labels, ds.num_classes)
    out: dict[str, Any] = {
        "name": row.name, "model": row.model, "cond": row.cond, "steps": steps, "batch": row.batch, "family": row.family,
        "classes_covered": covered, "num_classes": ds.num_classes, "kl": round(kl, 4),
        "within_class_diversity": round(diversity, 4),
        "class_histogram": [round(float(v), 4) for v in class_histogram(pred, ds.num_classes)],
        "train_cpu_s": round(train_cpu, 1), "train_wall_s": round(train_wall, 1),
        "last": {k: v for k, v in res.last.items() if k.startswith(("loss", "D_", "score_"))},
        "warnings": list(res.warnings), "classifier": extractor.name,
        "classifier_heldout_accuracy": extractor.meta.get("heldout_accuracy"),
    }
    if row.cond:
        wanted = np.arange(NUM_SAMPLES) % ds.num_classes  # labels_for_seeds: seed % classes
        out["cond_accuracy"] = round(float((pred == wanted).mean()), 4)
    return out


def within_class_diversity(fake, fake_labels, real, real_labels, num_classes: int) -> float:
    """Mean over classes of (mean pairwise L2 distance among generated images of the class) / (the
    same among real images of the class). Classes with fewer than 2 generated images count as 0."""
    import torch

    def mean_pdist(x):
        x = x.flatten(1).float()
        n = len(x)
        d = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist")  # exact 0 for identical images
        return float(d.sum()) / (n * (n - 1)) if n > 1 else 0.0

    ratios = []
    for c in range(num_classes):
        ref = mean_pdist(real[real_labels == c])
        ratios.append(mean_pdist(fake[fake_labels == c]) / ref if ref > 0 else 0.0)
    return sum(ratios) / len(ratios)


def format_table(rows: list[dict[str, Any]]) -> str:
    head = "| model             | steps | classes covered | KL (nats) | within-class diversity | cond. accuracy | train CPU-s | notes"
    lines = [head, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---"]
    for r in rows:
        acc = f"{100 * r['cond_accuracy']:.1f} %" if "cond_accuracy" in r else "-"
        lines.append(
            f"| {r['name']:<17} | {r['steps']:>5} | {r['classes_covered']:>2}/{r['num_classes']:<2} | {r['kl']:.3f} | "
            f"{r['within_class_diversity']:.2f} | {acc} | "
            f"{r['train_cpu_s']:.0f} | {r.get('note', '')}"
        )
    lines.append(f"{NUM_SAMPLES} samples per model; classifier {rows[0]['classifier'] if rows else '-'} "
                 f"(held-out accuracy on real digits {rows[0].get('classifier_heldout_accuracy', float('nan')):.3f}); "
                 "KL of the predicted class histogram from the data's (0 = balanced; log 10 = 2.303 = one class); "
                 "within-class diversity: generated / real mean pairwise pixel distance (1 = as varied as the data)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = _common.parser(__doc__, quick="a quarter of the steps (a smoke run, not a result)")
    ap.add_argument("--models", default="", help="comma-separated row names (default: all)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads per run")
    ap.add_argument("--samples", type=Path, default=None, help="save a 10x10 grid of each model's samples here")
    args = ap.parse_args(argv)
    rows = _common.select(ROWS, args.models, "row")
    results = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ganforge-digits-") as tmp:
        for row in rows:
            steps = max(row.steps // 4, 1) if args.quick else row.steps
            r = run_row(row, steps=steps, threads=args.threads, runs_dir=Path(tmp), plot_dir=args.samples)
            r["note"] = row.note
            results.append(r)
            print(f"{r['name']:<14} {r['classes_covered']}/{r['num_classes']} classes, KL {r['kl']:.3f}, "
                  f"within-class diversity {r['within_class_diversity']:.2f}"
                  + (f", cond. accuracy {100 * r['cond_accuracy']:.1f} %" if "cond_accuracy" in r else "")
                  + f", {r['train_cpu_s']:.0f} CPU-s", flush=True)
    table = format_table(results)
    print(table)
    payload = {"benchmark": "digits_quality", "quick": args.quick, "rows": results, "table": table,
               "wall_s": round(time.perf_counter() - t0, 1)}
    _common.write_json(args.json, payload, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
