"""Small data at an equal wall-clock budget: stylegan2 + ADA against DCGAN on the Twemoji set (32x32),
ADA against no augmentation on a 500-image subset (the limited-data claim of Karras et al. 2020, in
small), and the candidates for the no-argument `ganforge train` at 5 minutes.

Every row trains with the real loop for the same number of wall-clock minutes on this CPU (the loop's
`--max-minutes`), then generates 2,000 images from seeds and scores them with ganforge's emoji classifier
(offline): the Fréchet distance of classifier features to the full real set (lower is better) and the
number of the 10 categories the samples cover. A grid of each model's samples is saved beside the JSON.
The `real-data` row scores 2,000 real emoji the same way: the ceiling of both numbers.

Memorisation (`ganforge.metrics.memorization`): each row's 2,000 samples are also scored against the images
that row trained on (full emoji, or the 500-image subset) for how close they come to them: the median over
samples of the distance to the nearest training image divided by that image's own nearest-neighbour
distance (~1 for new images, 0 for copies), and the share of "copies" (ratio < 0.5), in pixels and in the
emoji classifier's features. Its ceiling, `real_memorization`, is the real set scored against itself (a
seeded random half against the other half), for the full set and for the 500-image subset; the real-data
row carries the full set's. Nothing is trained for these. Conditional rows
(`--cond`, `--class-balance`) need labels, so they are options for labelled data, not candidates for
the no-argument default.
Rows run one after another on a quiet machine (never two at once).

    python benchmarks/small_data.py [--minutes 20] [--subset-minutes M] [--default-minutes 5] [--quick] [--rows a,b] [--json PATH]

JSON keys: stylegan2_fid, dcgan_fid, stylegan2_classes, dcgan_classes, ada_subset_fid, noaug_subset_fid,
minutes, subset_minutes, default_minutes, default_fid, default_classes, default_model, fewshot_best_fid_500,
fewshot_best_row_500, dcgan_fid_500, fewshot_memorization_500, fewshot_best_fid_full20, dcgan_fid_full20, real_memorization
({"full": ..., "subset500": ...}); each row has `memorization` ({"reference", "pixels", "features" (the
medians), "copies_pixels", "copies_features", "pixels_p10", "features_p10", and "pixels_vs_real" /
"features_vs_real": the medians over the real set's own on the same reference}).
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common

NUM_SAMPLES = 2000
SUBSET = 500


@dataclass
class Row:
    name: str
    model: str
    budget: str  # "main" (--minutes), "subset" (--subset-minutes) or "default" (--default-minutes)
    family: dict[str, Any] = field(default_factory=dict)
    loop: dict[str, Any] = field(default_factory=dict)
    subset: bool = False  # train on the first 500 images only
    note: str = ""


PROJECTED = {"d": "projected", "proj_size": 64, "proj_width": 0.25}
PROJECTED_32 = {"d": "projected", "proj_size": 32, "proj_width": 0.25}  # the feature network at the image's own side
FEWSHOT = ("fastgan", "fastgan-narrow", "fastgan-projected", "dcgan-projected", "dcgan-diffaug")  # row-name stems of the few-shot (data-efficient) rows: DiffAugment (Zhao et al. 2020) is one

ROWS = [
    # The real images themselves, scored like a generator: the ceiling of both numbers on this data.
    Row("real-data", "", "none", note="2,000 real emoji scored as samples: the best a generator can do"),
    Row("default:dcgan", "dcgan", "default", note="dcgan defaults"),
    Row("default:dcgan-diffaug", "dcgan", "default", {}, {"aug": "diffaugment"}, note="dcgan + DiffAugment"),
    Row("default:dcgan-ada", "dcgan", "default", {}, {"aug": "ada"}, note="dcgan + ADA"),
    Row("default:stylegan2-ada", "stylegan2", "default", {"cfg": "small"}, {"aug": "ada", "batch": 32}, note="stylegan2 small + ADA"),
    # Conditional rows need labels, so they are options for labelled data, not candidates for the default.
    Row("dcgan-cond", "dcgan", "default", {}, {"cond": True}, note="--cond (classes drawn at the real frequencies)"),
    Row("dcgan-cond-balanced", "dcgan", "default", {}, {"cond": True, "class_balance": 0.5},
        note="--cond --class-balance 0.5 (rare classes drawn more often in training)"),
    Row("stylegan2-ada-500", "stylegan2", "subset", {"cfg": "small"}, {"aug": "ada", "batch": 32}, subset=True, note="500 images, ADA"),
    Row("stylegan2-noaug-500", "stylegan2", "subset", {"cfg": "small"}, {"batch": 32}, subset=True, note="500 images, no augmentation"),
    # Few-shot families (issue 26): FastGAN, its narrow CPU width, and FastGAN with the projected discriminator
    # (feature network input 64 px, heads at a quarter of the paper's widths: the CPU setting measured fastest).
    Row("default:fastgan", "fastgan", "default", {}, {"aug": "diffaugment"}, note="fastgan (ngf 16) + DiffAugment"),
    Row("default:fastgan-narrow", "fastgan", "default", {"ngf": 8}, {"aug": "diffaugment"}, note="fastgan ngf 8 + DiffAugment"),
    Row("default:fastgan-projected", "fastgan", "default", PROJECTED, {"aug": "diffaugment"},
        note="fastgan + projected D (64 px features, width 0.25) + DiffAugment"),
    Row("dcgan-500", "dcgan", "subset", subset=True, note="500 images, dcgan defaults"),
    Row("fastgan-500", "fastgan", "subset", {}, {"aug": "diffaugment"}, subset=True, note="500 images, fastgan + DiffAugment"),
    Row("fastgan-narrow-500", "fastgan", "subset", {"ngf": 8}, {"aug": "diffaugment"}, subset=True,
        note="500 images, fastgan ngf 8 + DiffAugment"),
    Row("fastgan-projected-500", "fastgan", "subset", PROJECTED, {"aug": "diffaugment"}, subset=True,
        note="500 images, fastgan + projected D + DiffAugment"),
    Row("dcgan-projected-500", "dcgan", "subset", PROJECTED_32, {"aug": "diffaugment"}, subset=True,
        note="500 images, dcgan G + projected D (32 px features, width 0.25) + DiffAugment"),
    Row("dcgan-diffaug-500", "dcgan", "subset", {}, {"aug": "diffaugment"}, subset=True,
        note="500 images, dcgan + DiffAugment (a data-efficient baseline, not a few-shot family)"),
    Row("dcgan", "dcgan", "main", note="ganforge defaults"),
    Row("dcgan-diffaug", "dcgan", "main", {}, {"aug": "diffaugment"}, note="dcgan + DiffAugment"),
    Row("fastgan", "fastgan", "main", {}, {"aug": "diffaugment"}, note="fastgan + DiffAugment"),
    Row("fastgan-projected", "fastgan", "main", PROJECTED, {"aug": "diffaugment"}, note="fastgan + projected D + DiffAugment"),
    Row("stylegan2-ada", "stylegan2", "main", {"cfg": "small"}, {"aug": "ada", "batch": 32}, note="small config, ADA (bgc)"),
    Row("stylegan2-ada-lean", "stylegan2", "main", {"cfg": "small", "pl_weight": 0, "style_mixing": 0}, {"aug": "ada", "batch": 32},
        note="small config without path length and style mixing (as the paper's cifar config), ADA"),
]


def subset_archive(tmp: Path) -> str:
    """The first 500 emoji (a fixed, class-balanced-by-chance prefix of the shuffled set) as an archive."""
    import numpy as np

    from ganforge.data.archive import ArchiveData, write_archive
    from ganforge.data.dataset import load_dataset

    ds = load_dataset("emoji")
    idx = np.random.default_rng(0).permutation(len(ds))[:SUBSET]
    images = ds.images[idx].permute(0, 2, 3, 1).numpy()
    labels = ds.labels[idx].numpy() if ds.labels is not None else None
    path = tmp / "emoji-500.zip"
    if path.exists():  # made for an earlier row of this run
        return str(path)
    write_archive(ArchiveData(images, labels, ds.class_names), path)
    return str(path)


_MEMO: dict[str, Any] = {}  # reference data -> its memorisation Evaluator (real-image distances computed once)


def memo_evaluator(data: str) -> Any:
    """An evaluator of memorisation against `data` ("emoji" or the subset archive) in pixels and in the full
    emoji classifier's features (the same feature space for every reference)."""
    if data not in _MEMO:
        from ganforge.data.dataset import load_dataset
        from ganforge.metrics import Evaluator
        from ganforge.metrics.classifier import ClassifierExtractor

        if "classifier" not in _MEMO:
            _MEMO["classifier"] = ClassifierExtractor.for_dataset(load_dataset("emoji"))
        _MEMO[data] = Evaluator(load_dataset(data), metrics="memorization", extractor=_MEMO["classifier"], progress=False)
    return _MEMO[data]


_REAL_MEMO: dict[str, dict[str, Any]] = {}


def real_memorization(data: str) -> dict[str, Any]:
    """The real set `data` scored against itself, half against half (seed 0): the ceiling of memorisation."""
    if data not in _REAL_MEMO:
        _REAL_MEMO[data] = {"reference": Path(data).stem, **memo_evaluator(data).real_memorization(seed=0)}
    return _REAL_MEMO[data]


def memorization(x: Any, data: str) -> dict[str, Any]:
    """How close samples `x` (float, [-1, 1]) come to the training images `data`, next to the real set's own."""
    res, real = memo_evaluator(data)(x), real_memorization(data)
    out: dict[str, Any] = {"reference": Path(data).stem}
    for space, key in (("pixels", "px"), ("features", "feat")):
        out[space] = round(res[f"memorization_{key}"], 4)
        out[f"copies_{space}"] = round(res[f"copies_{key}"], 4)
        out[f"{space}_p10"] = round(res[f"memorization_{key}_p10"], 4)
        out[f"{space}_vs_real"] = round(res[f"memorization_{key}"] / real[f"memorization_{key}"], 4)
    return out


def _real_memo_summary(real: dict[str, Any]) -> dict[str, Any]:
    """A real set's own numbers in the row format (its ratio to itself is 1)."""
    out: dict[str, Any] = {"reference": f"{real['reference']} (half against half)"}
    for space, key in (("pixels", "px"), ("features", "feat")):
        out[space] = round(real[f"memorization_{key}"], 4)
        out[f"copies_{space}"] = round(real[f"copies_{key}"], 4)
        out[f"{space}_p10"] = round(real[f"memorization_{key}_p10"], 4)
        out[f"{space}_vs_real"] = 1.0
    return out


def score(x: Any) -> dict[str, Any]:
    """Classifier FD against the full real set and class coverage of samples `x` (float, [-1, 1])."""
    from ganforge.metrics import evaluate

    scores = evaluate(x, "emoji", metrics="fid,coverage", extractor="classifier", progress=False)
    fid = next(v for k, v in scores.items() if k.startswith(("fid", "fd")) and isinstance(v, float))
    return {
        "fid": round(float(fid), 3), "classes": int(scores["classes_covered"]), "class_kl": round(float(scores["class_kl"]), 4),
        "scores": {k: v for k, v in scores.items() if isinstance(v, (int, float, str))},
    }


def real_row(row: Row, grids: Path | None) -> dict[str, Any]:
    import numpy as np

    from ganforge.data.dataset import load_dataset
    from ganforge.sample.grid import make_grid, save_png

    ds = load_dataset("emoji")
    idx = np.random.default_rng(1).permutation(len(ds))[:NUM_SAMPLES]
    x = ds.images[idx].float() / 127.5 - 1
    if grids is not None:
        grids.mkdir(parents=True, exist_ok=True)
        save_png(make_grid(x[:64]), grids / "real-data.png")
    return {
        "name": row.name, "model": "", "note": row.note, "minutes": 0.0, "steps": 0, "kimg": 0.0, **score(x),
        # Real images scored against a set that holds them would be copies: the row carries the real set's own
        # numbers instead (a held-out half against the other half).
        "memorization": _real_memo_summary(real_memorization("emoji")),
    }


def run_row(row: Row, minutes: float, tmp: Path, grids: Path | None) -> dict[str, Any]:
    import ganforge
    from ganforge.config import TrainConfig
    from ganforge.sample.grid import make_grid, save_png
    from ganforge.training.loop import train

    data = subset_archive(tmp) if row.subset else "emoji"
    run = "".join(c if c.isalnum() else "-" for c in row.name)
    cfg = TrainConfig(
        data=data, model=row.model, steps=10**7, seed=0, runs_dir=str(tmp / "runs"), run=run, log_every=100,
        sample_every=10**9, ckpt_every=10**9, family=dict(row.family), max_minutes=minutes, **row.loop,
    )
    t = time.perf_counter()
    res = train(cfg, progress=False)
    wall = time.perf_counter() - t
    model = ganforge.load(res.run_dir)
    counts = None
    if model.spec.num_classes:  # conditional rows: classes drawn at the real frequencies (as `ganforge eval` does)
        from ganforge.data.dataset import load_dataset

        counts = load_dataset(data).labels.bincount(minlength=model.spec.num_classes).tolist()
    x = model.generate(list(range(NUM_SAMPLES)), output="tensor", label_counts=counts)
    if grids is not None:
        grids.mkdir(parents=True, exist_ok=True)
        save_png(make_grid(x[:64]), grids / f"{run}.png")
    # Scored against the full real set in every row (the subset rows too): the question is how well the
    # model learned the whole distribution from what it saw.
    return {
        "name": row.name, "model": row.model, "family": row.family, "loop": row.loop, "subset": row.subset, "note": row.note,
        "minutes": minutes, "train_wall_s": round(wall, 1), "steps": res.step, "kimg": round(res.step * cfg.batch / 1000, 1),
        "aug_p": res.last.get("aug_p"), **score(x), "memorization": memorization(x, data),
    }


def main(argv: list[str] | None = None) -> int:
    ap = _common.parser(__doc__, quick="1-minute budgets (a smoke run, not a result)")
    ap.add_argument("--minutes", type=float, default=20.0, help="budget of the main rows (stylegan2 vs dcgan)")
    ap.add_argument("--subset-minutes", type=float, default=0.0, help="budget of the 500-image rows [default: --minutes]")
    ap.add_argument("--default-minutes", type=float, default=5.0, help="budget of the no-argument-default candidates")
    ap.add_argument("--rows", default="", help="comma-separated row names (default: all)")
    ap.add_argument("--grids", type=Path, default=None, help="save a grid of each model's samples here [default: beside --json]")
    args = ap.parse_args(argv)
    from ganforge.device import cpu_has_native_bf16

    rows = _common.select(ROWS, args.rows, "row")
    grids = args.grids or (args.json.with_suffix("") if args.json else None)
    budgets = {"main": args.minutes, "subset": args.subset_minutes or args.minutes, "default": args.default_minutes}
    print(f"CPU native bf16: {cpu_has_native_bf16()}; budgets: main {budgets['main']} min, 500-image rows "
          f"{budgets['subset']} min, default candidates {budgets['default']} min")
    results = []
    done: dict[str, dict[str, Any]] = {}  # identical runs (same settings and budget) are trained once
    with tempfile.TemporaryDirectory(prefix="ganforge-small-data-") as tmp:
        # The ceiling of memorisation on both training sets, before any training (seconds).
        real_memo = {"full": real_memorization("emoji"), "subset500": real_memorization(subset_archive(Path(tmp)))}
        for key, got in real_memo.items():
            print(f"real {key:<9} half vs half: memorization pixels {got['memorization_px']:.3f} (copies "
                  f"{got['copies_px']:.1%}), features {got['memorization_feat']:.3f} (copies {got['copies_feat']:.1%})")
        for row in rows:
            minutes = 1.0 if args.quick else budgets.get(row.budget, 0.0)
            key = repr((row.model, sorted(row.family.items()), sorted(row.loop.items()), row.subset, minutes))
            if not row.model:
                r = real_row(row, grids)
            elif key in done:
                r = {**done[key], "name": row.name, "note": row.note + " (same run as " + done[key]["name"] + ")"}
            else:
                r = done[key] = run_row(row, minutes, Path(tmp), grids)
            results.append(r)
            # Written after every row, so a long run that stops early keeps what it measured.
            _common.write_json(
                args.json, {"benchmark": "small_data", "partial": True, "rows": results, "real_memorization": real_memo}, argv
            )
            m = r["memorization"]
            print(f"{r['name']:<24} {r['minutes']:>4.0f} min {r['kimg']:>6.1f} kimg  FD {r['fid']:7.3f}  classes {r['classes']}/10  "
                  f"memorization px {m['pixels']:.3f} feat {m['features']:.3f}  ({r['note']})", flush=True)
    by = {r["name"]: r for r in results}
    payload: dict[str, Any] = {"benchmark": "small_data", "quick": args.quick, "rows": results, "minutes": budgets["main"],
                              "subset_minutes": budgets["subset"], "default_minutes": budgets["default"],
                              "real_memorization": real_memo}
    for key, name in (("stylegan2", "stylegan2-ada"), ("dcgan", "dcgan")):
        if name in by:
            payload[f"{key}_fid"], payload[f"{key}_classes"] = by[name]["fid"], by[name]["classes"]
    if "stylegan2-ada-500" in by:
        payload["ada_subset_fid"] = by["stylegan2-ada-500"]["fid"]
    if "stylegan2-noaug-500" in by:
        payload["noaug_subset_fid"] = by["stylegan2-noaug-500"]["fid"]
    # Issue 26's summary keys: the best few-shot row against dcgan at the same budget and data.
    for suffix, key in (("-500", "500"), ("", "full20")):
        few = [by[f + suffix] for f in FEWSHOT if f + suffix in by]
        if few:
            best = min(few, key=lambda r: (-r["classes"], r["fid"]))
            payload[f"fewshot_best_fid_{key}"], payload[f"fewshot_best_row_{key}"] = best["fid"], best["name"]
            if suffix == "-500":
                payload["fewshot_memorization_500"] = best["memorization"]
        if "dcgan" + suffix in by:
            payload[f"dcgan_fid_{key}"] = by["dcgan" + suffix]["fid"]
    defaults = [r for r in results if r["name"].startswith("default:")]
    if defaults:
        best = min(defaults, key=lambda r: (-r["classes"], r["fid"]))
        payload.update(default_fid=best["fid"], default_classes=best["classes"], default_model=best["name"].split(":", 1)[1])
        print(f"best 5-minute default: {payload['default_model']} (FD {best['fid']}, {best['classes']}/10 classes)")
    print("| row | budget | kimg | classifier FD | classes | memorization px / feat (copies) | note |\n"
          "| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in results:
        m = r["memorization"]
        print(f"| {r['name']} | {r['minutes']:.0f} min | {r['kimg']} | {r['fid']:.3f} | {r['classes']}/10 | "
              f"{m['pixels']:.2f} / {m['features']:.2f} ({m['copies_pixels']:.0%} / {m['copies_features']:.0%}) | {r['note']} |")
    _common.write_json(args.json, payload, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
