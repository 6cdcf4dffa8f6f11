"""The classifier extractor: accurate on digits, deterministic, cached as safetensors + JSON, the
class-coverage signal that shows a GAN generating "just one digit", and one score on every machine: the
built-in labelled sets use shipped, checksummed weights, and scoring runs in float64 so that the features
do not depend on the CPU's kernels or thread count."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import ganforge.metrics.classifier as C
from ganforge.data import load_dataset
from ganforge.data.dataset import ImageDataset
from ganforge.errors import DataError
from ganforge.metrics import Evaluator
from ganforge.metrics.cache import dataset_sha256
from ganforge.metrics.classifier import (
    CLASSIFIER_VERSION,
    SHIPPED_CLASSIFIERS,
    SHIPPED_DATASETS,
    ClassifierExtractor,
    classifier_path,
    get_classifier,
    load_shipped_classifier,
    shipped_dir,
    shipped_path,
    train_classifier,
)
from ganforge.metrics.frechet import feature_statistics, frechet_distance


@pytest.fixture(scope="module")
def emoji():
    return load_dataset("emoji")


@pytest.fixture
def no_training(monkeypatch):
    """Any attempt to train a classifier fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a classifier was trained")

    monkeypatch.setattr(C, "train_classifier", refuse)


@pytest.fixture
def fast_training(monkeypatch):
    """On-demand training with a few steps, for tests of what gets trained rather than how well."""
    monkeypatch.setattr(C, "train_classifier", functools.partial(train_classifier, steps=5, head_steps=5))


def test_digits_classifier_is_accurate(digits_classifier):
    assert digits_classifier.meta["heldout_accuracy"] > 0.95
    assert digits_classifier.meta["heldout_images"] >= 150


def test_training_is_deterministic(digits):
    small = ImageDataset(digits.images[:300], digits.labels[:300], digits.class_names, "digits300")
    a = train_classifier(small, steps=5).net.state_dict()
    b = train_classifier(small, steps=5).net.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_head_refit_leaves_the_features_alone(digits):
    small = ImageDataset(digits.images[:300], digits.labels[:300], digits.class_names, "digits300")
    a = train_classifier(small, steps=5, head_steps=0).net.state_dict()
    b = train_classifier(small, steps=5, head_steps=20).net.state_dict()
    body = [k for k in a if not k.startswith("head.")]
    assert all(torch.equal(a[k], b[k]) for k in body) and not torch.equal(a["head.weight"], b["head.weight"])


def test_emoji_classifier_predicts_every_class_of_the_real_data(emoji, no_training):
    """The coverage metric's ceiling: the real data must cover every class, with the shipped weights.
    Version 1's head, short of convergence, predicted none of emoji's 5 `Component` images (of 3,786) as Component."""
    from ganforge.metrics.classes import class_coverage

    clf, _, trained = get_classifier(emoji)
    assert not trained
    pred = ClassifierExtractor(clf)(emoji.images)["logits"].argmax(1).numpy()
    hist = np.bincount(pred, minlength=emoji.num_classes) / len(pred)
    assert class_coverage(pred, hist)[0] == emoji.num_classes == 10
    component = emoji.class_names.index("Component")
    assert (pred[emoji.labels.numpy() == component] == component).mean() >= 0.8


def test_cached_as_safetensors_and_json(digits, metrics_cache, no_training):
    """Labelled data of one's own (here a subset of digits: not the built-in set) gets a classifier trained on
    first use and cached."""
    own = ImageDataset(digits.images[:400], digits.labels[:400], digits.class_names, "mydigits")
    h = dataset_sha256(own.images, own.labels)
    C.save_classifier(classifier_path(h, metrics_cache, own.name), train_classifier(own, steps=5, head_steps=5))
    clf, path, trained = get_classifier(own, cache=metrics_cache)
    assert not trained and path == classifier_path(h, metrics_cache, "mydigits")
    assert path.suffix == ".safetensors" and path.read_bytes()[:8] != b"\x80\x02\x8a\x0a"  # not a pickle
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["num_classes"] == 10 and meta["version"] == CLASSIFIER_VERSION == 2
    ext = ClassifierExtractor(clf)
    out = ext(digits.images[:7])
    assert out["features"].shape == (7, 128) and out["logits"].shape == (7, 10)
    assert out["features"].dtype == torch.float32
    # The name carries the weights' checksum: that of the cached file.
    assert ext.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ext.name == f"classifier-v2-{ext.weights_sha256[:8]}"


# ---------------------------------------------------------------------------------- shipped weights


def test_shipped_weights_match_their_recorded_checksums():
    assert set(SHIPPED_CLASSIFIERS) == set(SHIPPED_DATASETS) == {"emoji", "digits", "digits16"}
    for name, entry in SHIPPED_CLASSIFIERS.items():
        path = shipped_path(name)
        assert path.parent == shipped_dir() and path.name == f"{name}-v{CLASSIFIER_VERSION}.safetensors"
        assert path.stat().st_size < 700_000  # ~156k float32 parameters
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["weights"]
        assert hashlib.sha256(path.with_suffix(".json").read_bytes()).hexdigest() == entry["meta"]
        clf, loaded_from = load_shipped_classifier(name)
        assert loaded_from == path
        assert clf.meta["dataset_sha256"] == entry["dataset"] and clf.meta["version"] == CLASSIFIER_VERSION
        assert clf.meta["heldout_accuracy"] > (0.75 if name == "emoji" else 0.95)
        ext = ClassifierExtractor(clf)
        assert ext.weights_sha256 == entry["weights"]  # the extractor's checksum is the file's
        assert ext.name == f"classifier-v{CLASSIFIER_VERSION}-{entry['weights'][:8]}"


@pytest.mark.parametrize("name", SHIPPED_DATASETS)
def test_builtin_sets_get_the_shipped_weights_and_never_train(name, digits, emoji, metrics_cache, no_training):
    ds = {"digits": digits, "emoji": emoji}.get(name) or load_dataset(name)
    entry = SHIPPED_CLASSIFIERS[name]
    # If this fails, the built-in data changed: retrain with scripts/train_classifiers.py and a new CLASSIFIER_VERSION.
    assert dataset_sha256(ds.images, ds.labels) == entry["dataset"]
    for retrain in (False, True):
        clf, path, trained = get_classifier(ds, cache=metrics_cache, retrain=retrain)
        assert not trained and path == shipped_path(name)
        assert ClassifierExtractor(clf).weights_sha256 == entry["weights"]
    ev = Evaluator(ds, metrics="fid,coverage", extractor="classifier", cache=metrics_cache)
    assert ev.extractor.weights_sha256 == entry["weights"] and ev.classifier is ev.extractor


def test_a_modified_copy_of_a_builtin_set_trains_its_own(emoji, metrics_cache, fast_training):
    """A folder named `emoji` whose content differs gets no shipped weights: they are for the exact data."""
    images = emoji.images.clone()
    images[0, 0, 0, 0] ^= 1
    mine = ImageDataset(images, emoji.labels, emoji.class_names, "emoji")
    clf, path, trained = get_classifier(mine, cache=metrics_cache)
    assert trained and path.parent == metrics_cache / "classifiers"
    assert ClassifierExtractor(clf).weights_sha256 != SHIPPED_CLASSIFIERS["emoji"]["weights"]


def test_a_damaged_shipped_file_is_refused_in_one_line(tmp_path, emoji, monkeypatch, no_training):
    for f in shipped_dir().glob("emoji-*"):
        shutil.copy(f, tmp_path / f.name)
    path = shipped_path("emoji", tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one weight
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="fails its checksum") as err:
        load_shipped_classifier("emoji", tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "reinstall" in msg and str(path) in msg
    # get_classifier refuses too, rather than training or using the damaged weights.
    monkeypatch.setattr(C, "shipped_dir", lambda: tmp_path)
    with pytest.raises(DataError, match="reinstall"):
        get_classifier(emoji)
    path.unlink()
    with pytest.raises(DataError, match="missing") as err:
        get_classifier(emoji)
    assert "\n" not in str(err.value) and "reinstall" in str(err.value)


# ---------------------------------------------------------------------------------- deterministic scoring


def _fd(a: torch.Tensor, b: torch.Tensor) -> float:
    return frechet_distance(*feature_statistics(a), *feature_statistics(b))


def test_scoring_does_not_depend_on_threads_or_batches(emoji):
    clf, _ = load_shipped_classifier("emoji")
    ext = ClassifierExtractor(clf)
    real, fake = emoji.images[:600], emoji.images[600:1200]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        a = ext(fake)["features"]
        fd2 = _fd(ext(real)["features"], a)
        torch.set_num_threads(1)
        b = ext(fake)["features"]
        fd1 = _fd(ext(real)["features"], b)
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert fd1 == pytest.approx(fd2, abs=1e-6) and fd1 > 1
    torch.testing.assert_close(ext(fake)["features"], a, rtol=0, atol=0)  # twice: the same
    torch.testing.assert_close(ext(fake[:7])["features"], a[:7], rtol=0, atol=1e-6)  # batching does not matter
    # No op in the scoring path lacks a deterministic implementation.
    was = torch.are_deterministic_algorithms_enabled()
    try:
        torch.use_deterministic_algorithms(True)
        torch.testing.assert_close(ext(fake[:64])["features"], a[:64], rtol=0, atol=1e-6)
    finally:
        torch.use_deterministic_algorithms(was)


def _score_builtin_samples() -> dict[str, np.ndarray]:
    """Features of a few images of emoji and digits16 (upsampled to 32 px by `preprocess`), at their own size
    and resized to 44 px (so `preprocess` downsamples with its antialiased filter)."""
    out = {}
    for name, n in (("emoji", 400), ("digits16", 200)):
        ext = ClassifierExtractor(load_shipped_classifier(name)[0])
        x = load_dataset(name).images[:n]
        out[name] = ext(x)["features"].numpy()
        bigger = torch.nn.functional.interpolate(x.float(), size=(44, 44)).to(torch.uint8)
        out[name + "-resized"] = ext(bigger)["features"].numpy()
    return out


_SCORE_SCRIPT = """
import sys, numpy as np
sys.path.insert(0, sys.argv[2])
from test_classifier import _score_builtin_samples
np.savez(sys.argv[1], **_score_builtin_samples())
"""


def test_scoring_does_not_depend_on_the_cpu_kernels(tmp_path):
    """The same images scored here (this machine's AVX2 / AVX-512 kernels and threads) and in a process whose
    ATen, MKL and oneDNN kernels are capped at SSE4 on one thread give the same features and FD. In float32,
    ~20 % of the features differ in their last bits between those two on an AVX-512 CPU."""
    sse = {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41"}
    out = tmp_path / "sse.npz"
    cmd = [sys.executable, "-c", _SCORE_SCRIPT, str(out), os.path.dirname(__file__)]
    subprocess.run(cmd, env={**os.environ, **sse, "OMP_NUM_THREADS": "1"}, check=True, timeout=300)
    a, b = _score_builtin_samples(), np.load(out)
    assert sorted(a) == sorted(b.files)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-6, err_msg=k)
    fd_a = _fd(torch.from_numpy(a["emoji"][:200]), torch.from_numpy(a["emoji"][200:]))
    fd_b = _fd(torch.from_numpy(b["emoji"][:200]), torch.from_numpy(b["emoji"][200:]))
    assert fd_a == pytest.approx(fd_b, abs=1e-6)


def test_unlabelled_data_is_a_clear_error():
    ds = ImageDataset(torch.zeros(30, 1, 8, 8, dtype=torch.uint8), None, [], "blank")
    with pytest.raises(DataError, match="needs labelled data"):
        train_classifier(ds)
    with pytest.raises(DataError, match="labelled real data"):
        Evaluator(ds, metrics="coverage")


def test_one_digit_generator_covers_one_class(digits):
    """The classic failure: every generated image is the same digit -> 1 class covered, KL ~ log 10."""
    ev = Evaluator(digits, metrics="fid,coverage", extractor="classifier")
    same = ev(digits, num=None)
    assert same["classes_covered"] == 10 and same["class_kl"] < 1e-6 and same["fid"] == pytest.approx(0, abs=1e-6)
    three = digits.images[digits.labels == 3][0:1].float() / 127.5 - 1  # one image, repeated

    def collapsed(start: int, n: int) -> torch.Tensor:
        return three.expand(n, -1, -1, -1)

    res = ev(collapsed, num=200)
    assert res["classes_covered"] == 1 and res["num_classes"] == 10
    assert res["class_kl"] == pytest.approx(math.log(10), abs=0.05)
    assert res["fid"] > 50 * max(same["fid"], 1e-3)
    assert res["real_stats"] == "memory"
    w = SHIPPED_CLASSIFIERS["digits"]["weights"]  # built-in digits: the shipped weights, named by their checksum
    assert res["extractor"] == f"classifier-v2-{w[:8]}" and res["weights_sha256"] == w


def test_shipped_files_are_package_data():
    """pyproject's package-data takes the shipped files into the wheel (and so into every installation)."""
    import fnmatch
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    src = Path(__file__).resolve().parents[2] / "src" / "ganforge"
    if not pyproject.is_file() or shipped_dir().resolve() != (src / "builtin" / "classifiers").resolve():
        pytest.skip("not a source checkout")
    patterns = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]["ganforge"]
    for name in SHIPPED_DATASETS:
        for f in (shipped_path(name), shipped_path(name).with_suffix(".json")):
            rel = f.resolve().relative_to(src.resolve()).as_posix()
            assert any(fnmatch.fnmatch(rel, p) for p in patterns), rel
