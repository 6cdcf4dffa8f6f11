"""`ganforge eval`: quality numbers for a trained run, or for any two image sources."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from .. import vocab
from ..errors import ConfigError

DEFAULT_NUM = 50000  # generated images for a RUN, as papers report (fid50k)
MAX_HOURS = 12.0  # --max-hours: longer than this is a mistyped --num, or a job for a GPU

_METRIC_HELP = (
    "Comma-separated: fid, kid, pr (precision/recall, k=3), dc (density/coverage, k=5), is (Inception Score), "
    "coverage (classes covered + class-histogram KL, for labelled data; uses the classifier), "
    "memorization (how close samples are to the training images, in pixels and features: copies show as ~0)."
)
MEMORIZATION_NOTE = (
    "memorization: median distance to the nearest training image over that image's own nearest-neighbour "
    "distance: ~1 for new images, near 0 for copies (copies: the share of samples below 0.5)"
)
_EXTRACTORS = vocab.EXTRACTORS


@click.command("eval", context_settings={"show_default": True})
@click.argument("run", required=False)
@click.option(
    "--real",
    "real_src",
    default=None,
    help="Real images (folder, zip, prepared dataset or built-in name); with --fake.",
)
@click.option(
    "--fake", "fake_src", default=None, help="Generated images (folder, zip or prepared dataset); with --real."
)
@click.option("--metrics", default="fid,kid", help=_METRIC_HELP)
@click.option(
    "--num", type=click.IntRange(2), default=None, help="Generated images, at most 1,000,000 (200,000 with kid, pr, dc, is or memorization) [default: 50000 for a RUN, all of --fake]."
)
@click.option(
    "--num-real",
    type=click.IntRange(2),
    default=None,
    help="Use a fixed random subset of the real images [default: all].",
)
@click.option("--ref", default=None, help="Reference data for a RUN [default: the run's training data].")
@click.option("--checkpoint", default="latest", help="Checkpoint of a RUN: latest, best or a step number.")
@click.option(
    "--extractor",
    type=click.Choice(_EXTRACTORS),
    default="inception",
    help="inception: the FID network, numbers comparable with papers; classifier: a small CNN trained on the "
    "labelled real data (offline, fast, comparable between runs on the same data); dinov2: FD_DINOv2.",
)
@click.option(
    "--inception-weights",
    type=click.Path(dir_okay=False),
    default=None,
    help="Local file of the FID Inception weights (weights-inception-2015-12-05-6726825d.pth); "
    "also $GANFORGE_INCEPTION_WEIGHTS. Works offline.",
)
@click.option("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--batch", type=click.IntRange(1), default=64, help="Images per batch through the feature extractor.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the result here as one flat JSON object.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Cache for weights, classifiers and real statistics [default: $GANFORGE_CACHE or ~/.cache/ganforge].",
)
@click.option(
    "--no-cache", is_flag=True, help="Recompute the real-data statistics instead of reading/writing the cache."
)
@click.option(
    "--train-classifier",
    "train_data",
    default=None,
    help="Only train the classifier extractor on this labelled data (unless cached; --no-cache retrains), cache it and exit.",
)
@click.option(
    "--max-hours",
    type=click.FloatRange(0),
    default=MAX_HOURS,
    help="Refuse an evaluation that would take longer, as estimated from its first batches (0: no limit).",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def eval_cmd(
    run: str | None,
    real_src: str | None,
    fake_src: str | None,
    metrics: str,
    num: int | None,
    num_real: int | None,
    ref: str | None,
    checkpoint: str,
    extractor: str,
    inception_weights: str | None,
    device: str,
    batch: int,
    json_path: str | None,
    cache_dir: str | None,
    no_cache: bool,
    train_data: str | None,
    max_hours: float,
    quiet: bool,
) -> None:
    """Measure generated images against real ones: `ganforge eval RUN` or `ganforge eval --real A --fake B`.

    The result is printed as a table, appended to the run's metrics.jsonl (for a RUN) and written with --json.
    Every number is labelled with what it was computed with, e.g. fid50k[inception-2015-12-05].
    """
    from ..device import select_device
    from ..metrics import Evaluator, generator_from_model, parse_metrics
    from ..metrics.evaluate import check_num

    if train_data is not None:
        if run or real_src or fake_src:
            raise ConfigError("--train-classifier DATA works alone; drop RUN / --real / --fake")
        _train_classifier(train_data, cache_dir, select_device(device), retrain=no_cache)
        return
    if run and (real_src or fake_src):
        raise ConfigError("give either RUN or --real A --fake B, not both")
    if not run and not (real_src and fake_src):
        raise ConfigError("nothing to evaluate: give a RUN folder, or both --real A and --fake B")
    if not run and ref:
        raise ConfigError("--ref is for a RUN; with --fake, the reference is --real")
    names = parse_metrics(metrics)
    check_num(names, num if num is not None or not run else DEFAULT_NUM)  # before loading anything
    dev = select_device(device)
    common: dict[str, Any] = dict(
        metrics=names,
        extractor=extractor,
        num_real=num_real,
        device=dev,
        batch=batch,
        inception_weights=inception_weights,
        cache=cache_dir,
        use_cache=not no_cache,
        progress=not quiet,
        max_seconds=max_hours * 3600 if max_hours else None,
    )
    notes: list[str] = []
    if run:
        import ganforge

        model = ganforge.load(run, checkpoint=checkpoint, device=str(dev))
        if model.spec.kind != "image":
            raise ConfigError(f"{model.run_dir} generates {model.spec.kind}, not images; image metrics do not apply")
        data = ref or _run_data(model)
        real = _load_noting_skips(data, notes, resolution=model.spec.resolution, progress=not quiet)
        ev = Evaluator(real, resolution=model.spec.resolution, channels=model.spec.channels, **common)
        # Conditional models: classes drawn with the real data's frequencies (StyleGAN2-ADA's protocol).
        result = ev(generator_from_model(model, batch=batch, label_counts=ev.label_counts(model.spec)), num=num or DEFAULT_NUM)
        record = {"step": model.step, "event": "eval", "checkpoint": str(checkpoint), "ref": str(data), **result}
        with open(Path(model.run_dir) / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        where = f"{model.run_dir} at step {model.step} ({checkpoint})"
    else:
        real = _load_noting_skips(real_src, notes, progress=not quiet)  # type: ignore[arg-type]
        ev = Evaluator(real, **common)
        fake = _load_noting_skips(fake_src, notes, progress=not quiet)  # type: ignore[arg-type]
        result = ev(fake, num=num)
        where = f"{fake_src} against {real_src}"
    click.echo(format_result(result, names, where))
    caution = small_sample_caution(result, names)
    for note in notes + ([caution] if caution else []):
        click.echo(note, err=True)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(result, indent=1) + "\n")


# Fewer images than this make FID/FD and KID unreliable (FID's bias grows as N shrinks; papers use 10k or 50k).
SMALL_SAMPLE = 2000


def small_sample_caution(res: dict[str, Any], metrics: list[str]) -> str | None:
    """One line of caution when a distance between feature distributions was estimated from few images."""
    n = min(int(res["num_fake"]), int(res["num_real"]))
    if n >= SMALL_SAMPLE or not ({"fid", "kid"} & set(metrics)):
        return None
    counts = f"{res['num_fake']} generated / {res['num_real']} real images"
    if "fid" in metrics:
        name = "FID" if str(res["extractor"]).startswith("inception") else "FD"
        return (
            f"caution: {name} from {counts} is strongly biased at this size (upward, more so the fewer images; "
            "papers use 10k or 50k): compare it only with numbers computed from the same counts"
        )
    return (
        f"caution: KID from {counts} is unbiased but very noisy at this size (papers use 10k or 50k images): "
        "mind its ± before comparing"
    )


def _load_noting_skips(source: str, notes: list[str], *, resolution: int | None = None, progress: bool = False) -> Any:
    """`source` loaded as training would load it (`ganforge.data.load_dataset`: a raw folder or zip is
    prepared in memory with the `ganforge prepare` defaults), with a note on the files it left out."""
    from ..data import load_dataset

    ds = load_dataset(source, resolution=resolution, progress=progress)
    if ds.left_out:
        first, why = ds.left_out[0]
        notes.append(
            f"note: {len(ds.left_out)} file(s) in {source} were left out, e.g. {first} ({why}); "
            f"`ganforge prepare {source} OUT.zip` writes a per-file report (OUT-report.csv)"
        )
    return ds


def _run_data(model: Any) -> str:
    """The training data a run names in its config.json (the reference for its metrics)."""
    cfg_path = Path(model.run_dir) / "config.json"
    try:
        saved = json.loads(cfg_path.read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError):  # missing or damaged: the checkpoint's copy of the config
        saved = None
    data = saved.get("data") if isinstance(saved, dict) and isinstance(saved.get("data"), str) else None
    data = data or model.config.data  # a loaded Model's TrainConfig
    if not data:
        raise ConfigError(f"{cfg_path} does not name the training data; give the reference with --ref DATASET")
    return str(data)


def _train_classifier(data: str, cache_dir: str | None, device: Any, retrain: bool) -> None:
    from ..metrics.classifier import get_classifier
    from ..metrics.evaluate import as_dataset

    ds = as_dataset(data)
    clf, path, trained = get_classifier(ds, cache=cache_dir, retrain=retrain, device=device)
    m = clf.meta
    how = f"trained in {m['train_seconds']:.1f} s" if trained else "already cached; --no-cache retrains it"
    click.echo(
        f"classifier for {data}: {m['num_classes']} classes, held-out accuracy {m['heldout_accuracy']:.3f} "
        f"({m['heldout_images']} images), {how}\n{path}"
    )


def _fmt(v: float) -> str:
    if isinstance(v, int):
        return str(v)
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        return f"{v:.4e}"
    return f"{v:.4f}"


def format_result(res: dict[str, Any], metrics: list[str], where: str = "") -> str:
    """The terminal table: one row per metric, labelled with its protocol, then what it was computed with."""
    from ..metrics import metric_label

    rows: list[tuple[str, str]] = []
    n = int(res["num_fake"])
    for m in metrics:
        ext = res.get("classifier", res["extractor"]) if m == "coverage" else res["extractor"]
        label = metric_label(m, ext, n)
        if m == "fid":
            rows.append((label, _fmt(res["fid"])))
        elif m == "kid":
            rows.append((label, f"{_fmt(res['kid_mean'])} ± {_fmt(res['kid_std'])}"))
        elif m == "pr":
            rows.append((label, f"precision {_fmt(res['precision'])}  recall {_fmt(res['recall'])}"))
        elif m == "dc":
            rows.append((label, f"density {_fmt(res['density'])}  coverage {_fmt(res['coverage'])}"))
        elif m == "is":
            rows.append((label, f"{_fmt(res['is_mean'])} ± {_fmt(res['is_std'])}"))
        elif m == "coverage":
            kl = res["class_kl"]
            rows.append(
                (
                    label,
                    f"{res['classes_covered']}/{res['num_classes']} classes  KL {_fmt(kl) if math.isfinite(kl) else kl}",
                )
            )
        elif m == "memorization":
            rows.append(
                (
                    label,
                    "  ".join(
                        f"{space} {_fmt(res[f'memorization_{key}'])} (p10 {_fmt(res[f'memorization_{key}_p10'])}, "
                        f"copies {res[f'copies_{key}']:.1%})"
                        for space, key in (("pixels", "px"), ("features", "feat"))
                    ),
                )
            )
    width = max(len(r[0]) for r in rows)
    lines = [f"{where}:" if where else ""] if where else []
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    sha = str(res.get("weights_sha256", ""))
    lines.append(
        f"  extractor {res['extractor']} (weights sha256 {sha[:8]}), resize {res['resize']}, "
        f"{res['num_real']} real / {res['num_fake']} generated images, {res.get('seconds', 0):.1f} s"
    )
    if "memorization" in metrics:
        lines.append(f"  {MEMORIZATION_NOTE}")
    if not str(res["extractor"]).startswith("inception-2015-12-05"):
        lines.append(
            "  note: not the standard FID network, so these numbers compare only with numbers from the same extractor"
        )
    return "\n".join(lines)
