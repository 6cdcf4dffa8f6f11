"""Train the classifier extractor's shipped weights for the built-in labelled sets, ONCE (run from the repo root).

    python scripts/train_classifiers.py            # train, write, print the entries to paste
    python scripts/train_classifiers.py --check    # verify the shipped files against the recorded checksums

Training is deterministic on one machine but not across machines (CPU kernels round float32 differently),
so these weights are trained once and shipped: every user scores `--extractor classifier` on emoji, digits
and digits16 with the same weights and gets the same numbers. Each set gets the library's own
`train_classifier` with its defaults, written by `save_classifier` to
src/ganforge/builtin/classifiers/<name>-v<CLASSIFIER_VERSION>.safetensors (+ .json with the metadata and
where it was trained). Paste the printed `SHIPPED_CLASSIFIERS` into src/ganforge/metrics/classifier.py.
Retrain only with a new CLASSIFIER_VERSION: new weights change every classifier score of the built-in sets.
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import sys
from pathlib import Path

import torch

from ganforge import __version__
from ganforge.data import load_dataset
from ganforge.metrics.cache import dataset_sha256
from ganforge.metrics.classifier import (
    CLASSIFIER_VERSION,
    SHIPPED_CLASSIFIERS,
    SHIPPED_DATASETS,
    load_shipped_classifier,
    save_classifier,
    shipped_path,
    train_classifier,
)

OUT = Path(__file__).resolve().parents[1] / "src" / "ganforge" / "builtin" / "classifiers"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check() -> int:
    bad = 0
    for name in SHIPPED_DATASETS:
        entry = SHIPPED_CLASSIFIERS.get(name)
        ds = load_dataset(name)
        if entry is None:
            print(f"{name}: no entry in SHIPPED_CLASSIFIERS")
            bad += 1
            continue
        if dataset_sha256(ds.images, ds.labels) != entry["dataset"]:
            print(
                f"{name}: the built-in data no longer has the recorded content hash; retrain with a new CLASSIFIER_VERSION"
            )
            bad += 1
            continue
        clf, path = load_shipped_classifier(name)  # raises on a checksum mismatch
        print(
            f"{name}: ok ({path.name}, {path.stat().st_size:,} bytes, held-out accuracy {clf.meta['heldout_accuracy']:.4f})"
        )
    return 1 if bad else 0


def train(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    (out / ".gitattributes").write_text("*.safetensors binary\n*.json -text\n")
    entries = {}
    for name in SHIPPED_DATASETS:
        ds = load_dataset(name)
        clf = train_classifier(ds)  # the library's defaults: the weights a user would have trained on first use
        clf.meta["trained_with"] = {
            "script": "scripts/train_classifiers.py",
            "ganforge": __version__,
            "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(),
            "machine": platform.machine(),
        }
        path = shipped_path(name, out)
        save_classifier(path, clf)
        for f in (path, path.with_suffix(".json")):
            f.chmod(0o644)  # package data: readable by everyone once installed (the cache writes 0600 files)
        m = clf.meta
        print(
            f"{name}: {m['num_classes']} classes, held-out accuracy {m['heldout_accuracy']:.4f} "
            f"({m['heldout_images']} images), {m['train_seconds']:.1f} s; {path} ({path.stat().st_size:,} bytes)",
            file=sys.stderr,
        )
        entries[name] = {
            "dataset": m["dataset_sha256"],
            "weights": sha256(path),
            "meta": sha256(path.with_suffix(".json")),
        }
    print("SHIPPED_CLASSIFIERS: dict[str, dict[str, str]] = {")
    for name, e in entries.items():
        print(f'    "{name}": {{')
        for k, v in e.items():
            print(f'        "{k}": "{v}",')
        print("    },")
    print("}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="verify the shipped files instead of training")
    ap.add_argument("--out", type=Path, default=OUT, help=f"where to write the files [default: {OUT}]")
    args = ap.parse_args()
    print(f"classifier version {CLASSIFIER_VERSION}", file=sys.stderr)
    return check() if args.check else train(args.out)


if __name__ == "__main__":
    sys.exit(main())
