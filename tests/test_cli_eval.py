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
    clf = train_classifier(ds, steps=30)  # 30 steps: ~98% held-out accuracy, enough for these checks
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
        "fd1797[classifier-v2-" in r.output
        and "10/10 classes" in r.output
        and "not the standard FID network" in r.output
    )
    assert "caution: FD from 1797 generated / 1797 real images is strongly biased" in r.output
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
    assert "fd64[classifier-v2-" in r.output
    assert "caution: FD from 64 generated / 1797 real images is strongly biased at this size" in r.output
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
        # Issue 24: absurd counts are refused before anything is loaded (here: a run that does not exist).
        (["runs/x", "--num", "100000000"], "--num 100,000,000 is more than 1,000,000 generated images"),
        (["--real", "digits", "--fake", "digits", "--metrics", "kid", "--num", "300000"], "or --metrics fid alone"),
    ],
)
def test_eval_errors_are_one_line(args, message):
    r = run(["eval", *args])
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output


def test_eval_notes_files_left_out_of_a_folder(tmp_path):
    """A raw folder with unreadable files: the numbers come with a note saying how many were left out."""
    import numpy as np
    from PIL import Image

    fake = tmp_path / "fake"
    fake.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(fake / f"{i}.png")
    (fake / "broken.png").write_bytes(b"\x89PNG truncated")
    (fake / "zeros.jpg").write_bytes(bytes(64))
    args = ["eval", "--real", "digits", "--fake", str(fake), "--extractor", "classifier", "--metrics", "fid", "--quiet"]
    r = run(args)
    assert r.exit_code == 0, r.output
    assert "fd10[classifier-v2-" in r.output
    note = next(line for line in r.output.splitlines() if line.startswith("note: 2 file(s)"))
    assert str(fake) in note and "broken.png" in note and "per-file report" in note
    (fake / "broken.png").unlink()
    (fake / "zeros.jpg").unlink()
    r = run(args)
    assert r.exit_code == 0 and "left out" not in r.output


def test_small_sample_caution():
    from ganforge.cli.eval import small_sample_caution

    res = {"num_fake": 500, "num_real": 50000, "extractor": "inception-2015-12-05"}
    assert "caution: FID from 500 generated / 50000 real images is strongly biased" in small_sample_caution(
        res, ["fid", "pr"]
    )
    assert "KID from 500" in small_sample_caution(res, ["kid"])
    assert small_sample_caution(res, ["pr", "is"]) is None
    assert small_sample_caution({**res, "num_fake": 2000, "num_real": 2000}, ["fid"]) is None
    assert "FD from" in small_sample_caution({**res, "extractor": "dinov2-vitl14"}, ["fid"])


def test_eval_that_would_take_too_long_is_refused_with_an_estimate():
    """Issue 24: the first batches are timed; past --max-hours the evaluation stops with one line."""
    args = ["eval", "--real", "digits", "--fake", "digits16", "--extractor", "classifier", "--metrics", "fid"]
    r = run([*args, "--batch", "8", "--max-hours", "0.0000001", "--quiet"])
    assert r.exit_code == 2, r.output
    line = r.stderr.strip()
    assert "\n" not in line and line.startswith("error: 1,797 generated images would take about ")
    assert "images/s measured on the first batches" in line and "raise --max-hours" in line
    assert run([*args, "--quiet", "--max-hours", "0"]).exit_code == 0  # 0: no limit
