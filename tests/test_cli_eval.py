"""`ganforge eval` in-process: two sources, a trained run (metrics.jsonl), --json, the classifier verb, and
one-line errors. Uses the classifier extractor, so no Inception weights and no network are needed."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ganforge.cli import main

TINY = ["--set", "ngf=8", "--set", "ndf=8", "--set", "nz=8", "--batch", "8", "--precision", "fp32", "--quiet"]
KEYS = {
    "fid",
    "kid_mean",
    "kid_std",
    "precision",
    "recall",
    "density",
    "coverage",
    "is_mean",
    "is_std",
    "classes_covered",
    "class_kl",
    "extractor",
    "num_real",
    "num_fake",
}


def run(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private cache holding a quickly trained digits classifier (the verb would train one on first use)."""
    from ganforge.data import load_dataset
    from ganforge.metrics.classifier import classifier_path, save_classifier, train_classifier

    root = tmp_path_factory.mktemp("cache")
    ds = load_dataset("digits")
    clf = train_classifier(ds, steps=100)
    save_classifier(classifier_path(clf.meta["dataset_sha256"], root, ds.name), clf)
    return root


@pytest.fixture(autouse=True)
def _env(cache, monkeypatch):
    monkeypatch.setenv("GANFORGE_CACHE", str(cache))
    monkeypatch.setenv("GANFORGE_OFFLINE", "1")
    monkeypatch.delenv("GANFORGE_INCEPTION_WEIGHTS", raising=False)


def test_eval_two_sources_table_and_json(tmp_path):
    out = tmp_path / "res.json"
    r = run(
        [
            "eval",
            "--real",
            "digits",
            "--fake",
            "digits16",
            "--metrics",
            "fid,kid,pr,dc,is,coverage",
            "--extractor",
            "classifier",
            "--json",
            str(out),
            "--quiet",
        ]
    )
    assert r.exit_code == 0, r.output
    assert (
        "fd1797[classifier-v1-" in r.output
        and "10/10 classes" in r.output
        and "not the standard FID network" in r.output
    )
    res = json.loads(out.read_text())
    assert KEYS <= set(res) and res["num_real"] == res["num_fake"] == 1797
    assert all(not isinstance(v, (dict, list)) for v in res.values())


def test_eval_run_appends_to_metrics_jsonl(tmp_path):
    runs = tmp_path / "runs"
    r = run(["train", "--data", "digits", "--steps", "2", "--run", "d", "--runs-dir", str(runs), *TINY])
    assert r.exit_code == 0, r.output
    run_dir = runs / "d"
    r = run(
        [
            "eval",
            str(run_dir),
            "--extractor",
            "classifier",
            "--metrics",
            "fid,coverage",
            "--num",
            "64",
            "--quiet",
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    assert r.exit_code == 0, r.output
    assert "fd64[classifier-v1-" in r.output
    last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "eval" and last["step"] == 2 and last["num_fake"] == 64 and last["ref"] == "digits"
    assert last["fid"] == json.loads((tmp_path / "r.json").read_text())["fid"]
    r = run(["eval", str(run_dir), "--checkpoint", "best", "--extractor", "classifier"])
    assert r.exit_code == 2 and "no best checkpoint" in r.output


def test_train_classifier_verb():
    r = run(["eval", "--train-classifier", "digits"])
    assert r.exit_code == 0, r.output
    assert "held-out accuracy" in r.output and "already cached" in r.output and ".safetensors" in r.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give a RUN folder, or both --real A and --fake B"),
        (["runs/x", "--real", "digits", "--fake", "digits"], "not both"),
        (["--real", "digits", "--fake", "digits", "--metrics", "fid,psnr"], "unknown metric 'psnr'"),
        (["--real", "digits", "--fake", "digits", "--ref", "emoji"], "--ref is for a RUN"),
        (["--real", "no/such/folder", "--fake", "digits"], "no such file or folder"),
        (["--real", "digits", "--fake", "digits16", "--metrics", "fid"], "weights-inception-2015-12-05-6726825d.pth"),
        (["--real", "digits", "--fake", "digits", "--extractor", "dinov2", "--metrics", "is"], "IS needs class logits"),
    ],
)
def test_eval_errors_are_one_line(args, message):
    r = run(["eval", *args])
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output
