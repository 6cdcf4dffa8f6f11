"""Curation and training-time constraints on the built-in `emoji` set (ganforge.curate).

A DCGAN trains through ganforge's real loop for a fixed step budget (fp32, fixed seed), is reloaded from its run
folder, and generates `--num` images from seeds 0..num-1, which every scorer scores (`ganforge.curate.curate`).
Then, for each scorer alone and for the default combination (sharpness,realism: mean of the per-scorer ranks),
the best `--keep` images are kept, and compared with plain sampling of as many images (seeds 0..keep-1):

- the scorer's mean before (every generated image) and after (the kept ones);
- classifier FD (the shipped emoji classifier's features, `--extractor classifier`) and classes covered (a
  class counts when its share is at least 10 % of its share in the data) of the kept images against the
  plain sample of the same size: curation must not buy its scores by collapsing diversity.

Discriminator rejection sampling (`--by drs`, Azadi et al. 2019) is compared with plain sampling of as many
images as it accepted. A second run trains with `--constraint sharpness:W` at the same budget; its
sharpness, FD and coverage (on `--num` images) are set beside the plain run's. Side-by-side grids (plain |
kept by sharpness,realism | DRS | constrained run) go to benchmarks/results/curation/.

    python benchmarks/curation.py [--quick] [--json PATH] [--steps N] [--num N] [--keep N] [--weight W]

Numbers are comparable between runs of this script, not with papers (the classifier is ganforge's own); the
papers' numbers are printed beside for the direction of the change.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common

SCORERS = ("sharpness", "iqa", "realness", "realism")
COMBINED = "sharpness,realism"
# ANCHORS.md, "Curation and quality constraints".
PAPERS = {
    "drs_sagan_imagenet": {
        "is_before": 62.36,
        "is_after": 76.08,
        "fid_before": 14.79,
        "fid_after": 13.75,
        "source": "Azadi et al., ICLR 2019, SAGAN on ImageNet",
    },
    "topk_cifar10_cond": {"fid_before": 9.21, "fid_after": 8.57, "source": "Sinha et al., NeurIPS 2020"},
}
GRID_DIR = Path(__file__).resolve().parent / "results" / "curation"


def train_run(name: str, steps: int, runs_dir: Path, threads: int, constraint: str = "") -> Path:
    from ganforge.config import TrainConfig
    from ganforge.training.loop import train

    cfg = TrainConfig(
        data="emoji",
        model="dcgan",
        steps=steps,
        seed=0,
        runs_dir=str(runs_dir),
        run=name,
        precision="fp32",
        log_every=max(steps // 10, 1),
        sample_every=10**9,
        ckpt_every=10**9,
        threads=threads,
        constraint=constraint,
    )
    return train(cfg, progress=False).run_dir


def quality(evaluator: Any, images: Any) -> dict[str, Any]:
    r = evaluator(images)
    return {
        "fd": round(float(r["fid"]), 4),
        "classes": int(r["classes_covered"]),
        "class_kl": round(float(r["class_kl"]), 4),
    }


def main(argv: list[str] | None = None) -> int:
    ap = _common.parser(__doc__, quick="200 training steps, 600 images, keep 150 (a smoke run, not a result)")
    ap.add_argument("--steps", type=int, default=None, help="training steps of each run [default: 1000, quick 200]")
    ap.add_argument("--num", type=int, default=None, help="images generated and scored [default: 4000, quick 600]")
    ap.add_argument("--keep", type=int, default=None, help="images kept [default: 1000, quick 150]")
    ap.add_argument("--weight", type=float, default=1.0, help="weight of the sharpness constraint")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads")
    ap.add_argument("--no-grids", action="store_true", help="do not write the side-by-side grids")
    args = ap.parse_args(argv)
    steps = args.steps or (200 if args.quick else 1000)
    num = args.num or (600 if args.quick else 4000)
    keep = args.keep or (150 if args.quick else 1000)

    import torch

    import ganforge
    from ganforge.curate import curate, rank_select
    from ganforge.metrics.evaluate import Evaluator

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    out: dict[str, Any] = {
        "benchmark": "curation",
        "quick": args.quick,
        "data": "emoji",
        "model": "dcgan",
        "steps": steps,
        "num": num,
        "keep": keep,
        "papers": PAPERS,
    }
    with tempfile.TemporaryDirectory(prefix="ganforge-curation-") as tmp:
        runs = Path(tmp)
        plain_dir = train_run("plain", steps, runs, args.threads)
        t_train = time.perf_counter() - t0
        ev = Evaluator("emoji", metrics=("fid", "coverage"), extractor="classifier", batch=256)
        model = ganforge.load(plain_dir, nets="all")
        x = model.generate(list(range(num)), output="tensor")  # (N, C, H, W) in [-1, 1]
        res = curate(model, num=num, keep=keep, by=",".join(SCORERS), histograms=False, batch=256)
        plain_k = quality(ev, x[:keep])
        out["plain_sample"] = {"images": keep, **plain_k}
        scorers: dict[str, Any] = {}
        selections = {s: [s] for s in SCORERS}
        selections[COMBINED] = COMBINED.split(",")
        kept_masks = {}
        for label, names in selections.items():
            kept = rank_select(res.scores, names, keep)
            kept_masks[label] = kept
            q = quality(ev, x[kept])
            row: dict[str, Any] = {
                "fd_before": plain_k["fd"],
                "fd_after": q["fd"],
                "classes_before": plain_k["classes"],
                "classes_after": q["classes"],
                "class_kl_before": plain_k["class_kl"],
                "class_kl_after": q["class_kl"],
            }
            for s in SCORERS:  # every scorer's mean before and after this selection
                row[f"{s}_before_mean"] = round(float(res.scores[s].mean()), 6)
                row[f"{s}_after_mean"] = round(float(res.scores[s][kept].mean()), 6)
            if label in SCORERS:
                row["before_mean"], row["after_mean"] = row[f"{label}_before_mean"], row[f"{label}_after_mean"]
            scorers[label] = row
            print(
                f"keep {keep}/{num} by {label:<18} FD {plain_k['fd']:.3f} -> {q['fd']:.3f}, classes "
                f"{plain_k['classes']} -> {q['classes']}"
                + (f", {label} {row['before_mean']:.4g} -> {row['after_mean']:.4g}" if label in SCORERS else ""),
                flush=True,
            )
        out["scorers"] = scorers

        drs = curate(model, num=num, keep=num, by="drs", histograms=False, batch=256)
        acc = drs.kept
        n_acc = int(acc.sum())
        plain_a = quality(ev, x[:n_acc]) if n_acc >= 2 else {"fd": None, "classes": None, "class_kl": None}
        drs_q = quality(ev, x[acc]) if n_acc >= 2 else plain_a
        out["drs"] = {
            "accepted_fraction": round(drs.accepted_fraction or 0.0, 4),
            "accepted": n_acc,
            "fd_before": plain_a["fd"],
            "fd_after": drs_q["fd"],
            "classes_before": plain_a["classes"],
            "classes_after": drs_q["classes"],
            "gamma": drs.drs["gamma"],
            "calibration": [drs.drs["a"], drs.drs["b"]],
            "realness_before_mean": round(float(res.scores["realness"].mean()), 4),
            "realness_after_mean": round(float(res.scores["realness"][acc].mean()), 4),
        }
        print(
            f"DRS accepted {n_acc}/{num} ({100 * n_acc / num:.1f} %): FD {plain_a['fd']} -> {drs_q['fd']}, classes "
            f"{plain_a['classes']} -> {drs_q['classes']}   [paper, SAGAN/ImageNet: FID 14.79 -> 13.75, IS 62.36 -> 76.08]",
            flush=True,
        )

        t1 = time.perf_counter()
        con_dir = train_run("constrained", steps, runs, args.threads, constraint=f"sharpness:{args.weight:g}")
        t_train += time.perf_counter() - t1
        con = ganforge.load(con_dir)
        xc = con.generate(list(range(num)), output="tensor")
        from ganforge.curate.scorers import get_scorer

        sharp = get_scorer("sharpness")
        s_plain = float(sharp((x + 1) / 2).mean())
        s_con = float(sharp((xc + 1) / 2).mean())
        q_plain, q_con = quality(ev, x), quality(ev, xc)
        out["constraint"] = {
            "constraint": f"sharpness:{args.weight:g}",
            "images": num,
            "sharpness_without": round(s_plain, 6),
            "sharpness_with": round(s_con, 6),
            "fd_without": q_plain["fd"],
            "fd_with": q_con["fd"],
            "classes_without": q_plain["classes"],
            "classes_with": q_con["classes"],
        }
        print(
            f"constraint sharpness:{args.weight:g} at {steps} steps: sharpness {s_plain:.4g} -> {s_con:.4g}, FD "
            f"{q_plain['fd']:.3f} -> {q_con['fd']:.3f}, classes {q_plain['classes']} -> {q_con['classes']}",
            flush=True,
        )

        if not args.no_grids:
            from ganforge.sample.grid import make_grid, save_png

            GRID_DIR.mkdir(parents=True, exist_ok=True)
            panels = {
                "plain": x[:64],
                "kept-sharpness-realism": x[kept_masks[COMBINED]][:64],
                "drs": x[acc][:64],
                "constrained": xc[:64],
            }
            ims = [make_grid(p, nrow=8) for p in panels.values() if len(p)]
            from PIL import Image

            w = sum(im.width for im in ims) + 8 * (len(ims) - 1)
            canvas = Image.new("RGB", (w, max(im.height for im in ims)), "white")
            pos = 0
            for im in ims:
                canvas.paste(im.convert("RGB"), (pos, 0))
                pos += im.width + 8
            name = "side-by-side-quick.png" if args.quick else "side-by-side.png"
            save_png(canvas, GRID_DIR / name)
            out["grid"] = f"benchmarks/results/curation/{name} ({' | '.join(panels)})"
            print(f"grids: {GRID_DIR / name} ({' | '.join(panels)})")
    out["train_wall_s"] = round(t_train, 1)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    print(
        "papers: DRS (SAGAN, ImageNet) FID 14.79 -> 13.75, IS 62.36 -> 76.08; top-k (CIFAR-10 cond.) FID 9.21 -> 8.57"
    )
    _common.write_json(args.json, out, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
