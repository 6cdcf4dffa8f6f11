"""Memorisation (issue 26): a generator that hands back its training images scores as copying, one that
draws new images from the same distribution scores like the real set against itself, noise scores far;
duplicates in the real set; the evaluator and `ganforge eval --metrics memorization`."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ganforge.data.dataset import ImageDataset
from ganforge.errors import DataError
from ganforge.metrics import LOWER_IS_BETTER, RESULT_KEYS, Evaluator, evaluate, is_better, parse_metrics, primary_key
from ganforge.metrics.extractors import FeatureExtractor
from ganforge.metrics.memorization import (
    COPY_RATIO,
    image_groups,
    memorization,
    memorization_ratios,
    nearest,
    real_self_memorization,
    reference_nn,
)

memo_mod = sys.modules["ganforge.metrics.memorization"]
KEYS = RESULT_KEYS["memorization"]


@pytest.fixture(scope="module")
def split(digits):
    """Digits split at random into a 1,200-image training set and 597 held-out images (uint8)."""
    perm = torch.randperm(len(digits), generator=torch.Generator().manual_seed(0))
    return digits.images[perm[:1200]], digits.images[perm[1200:]]


def _float(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 127.5 - 1


def test_training_images_score_as_copies(split):
    train, _ = split
    nn_dist = reference_nn(train)
    exact = memorization(train[:300], train, reference_nn_dist=nn_dist)
    assert exact == {"median": 0.0, "p10": 0.0, "copies": 1.0}  # exactly: the chosen pair is recomputed directly
    # Float images in [-1, 1]: the same up to float32 rounding.
    assert memorization(_float(train[:300]), train, reference_nn_dist=nn_dist)["median"] < 1e-6
    noisy = _float(train[:300]) + 0.01 * torch.randn(
        (300, *train.shape[1:]), generator=torch.Generator().manual_seed(1)
    )
    got = memorization(noisy.clamp(-1, 1), train, reference_nn_dist=nn_dist)
    assert got["median"] < 0.1 and got["copies"] >= 0.99


def test_held_out_images_score_like_the_real_set_itself(split):
    train, held = split
    got = memorization(held, train)
    ceiling = real_self_memorization(train, seed=0)
    assert 0.8 < got["median"] < 1.25 and got["copies"] < 0.05
    assert 0.8 < ceiling["median"] < 1.25 and ceiling["copies"] < 0.05
    assert got["median"] == pytest.approx(ceiling["median"], rel=0.15)
    assert got["median"] > 10 * memorization(train[:300], train)["median"] + COPY_RATIO  # far from copies
    assert ceiling["num_samples"] == 600 and ceiling["num_reference"] == 600
    # Seeded: the same halves every time, other halves with another seed.
    assert real_self_memorization(train, seed=0) == ceiling
    assert real_self_memorization(train, seed=1)["median"] != ceiling["median"]


def test_noise_scores_far_from_the_training_images(split):
    train, _ = split
    noise = torch.rand((200, *train.shape[1:]), generator=torch.Generator().manual_seed(2)) * 2 - 1
    got = memorization(noise, train)
    assert got["median"] > 1.5 and got["p10"] > 1.0 and got["copies"] == 0.0


def test_blocked_distances_equal_the_direct_ones(monkeypatch):
    """Blocks of a few rows (so every loop runs many times) give the brute-force answer, in float64."""
    g = torch.Generator().manual_seed(3)
    real, fake = torch.randn(37, 9, generator=g), torch.randn(23, 9, generator=g)
    full = torch.cdist(fake.double(), real.double())
    self_d = torch.cdist(real.double(), real.double()).fill_diagonal_(float("inf"))
    for block in (memo_mod.BLOCK_BYTES, 8 * 9 * 4):
        monkeypatch.setattr(memo_mod, "BLOCK_BYTES", block)
        d, idx = nearest(fake, real)
        assert torch.equal(idx, full.argmin(1)) and torch.allclose(d, full.min(1).values, rtol=1e-12)
        nn_dist = reference_nn(real)
        assert nn_dist.dtype == torch.float64 and torch.allclose(nn_dist, self_d.min(1).values, rtol=1e-12)
        ratios = memorization_ratios(fake, real)
        assert torch.allclose(ratios, full.min(1).values / self_d.min(1).values[full.argmin(1)], rtol=1e-12)


def test_duplicates_in_the_real_set(split):
    train, _ = split
    base = train[:200]
    doubled = torch.cat([base, base[:50], base[:10]])  # 50 images twice, 10 of them three times
    groups = image_groups(doubled)
    assert torch.equal(groups[200:250], torch.arange(50)) and torch.equal(groups[250:], torch.arange(10))
    nn_dist = reference_nn(doubled)
    # A duplicate's nn is its nearest *different* image, as if it were there once.
    assert torch.isfinite(nn_dist).all() and (nn_dist > 0).all()
    assert torch.allclose(nn_dist[:200], reference_nn(base), rtol=1e-12)
    assert torch.allclose(nn_dist[200:250], nn_dist[:50], rtol=1e-12)
    got = memorization(base[:50], doubled, reference_nn_dist=nn_dist)
    assert got["median"] == 0.0 and got["copies"] == 1.0
    # Features of identical images may differ in the last bits: `groups` says which rows are duplicates.
    feats = torch.randn(200, 16, generator=torch.Generator().manual_seed(4)).double()
    feats_doubled = torch.cat([feats, feats[:50] + 1e-9])
    with_groups = reference_nn(feats_doubled, groups=torch.cat([torch.arange(200), torch.arange(50)]))
    assert torch.allclose(with_groups[:200], reference_nn(feats), rtol=1e-12)
    # All images the same: nothing to measure against.
    with pytest.raises(DataError, match="all 5 real images are the same image"):
        reference_nn(base[:1].repeat(5, 1, 1, 1))
    with pytest.raises(DataError, match="at least 2"):
        reference_nn(base[:1])


def test_real_self_memorization_counts_split_duplicates_as_copies(split):
    train, _ = split
    twice = torch.cat([train[:300], train[:300]])  # every image twice: about half the pairs split
    got = real_self_memorization(twice, seed=0)
    assert 0.3 < got["copies"] < 0.95 and got["p10"] == 0.0


# ---- the evaluator and the CLI -------------------------------------------------------------------------


def _copies(images: torch.Tensor):
    def fn(start: int, n: int) -> torch.Tensor:
        return _float(images[torch.arange(start, start + n) % len(images)])

    return fn


def _noise(start: int, n: int) -> torch.Tensor:
    return torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(start)) * 2 - 1


def test_metric_names_and_directions():
    assert parse_metrics("memorisation,fid,mem") == ["memorization", "fid"]
    assert primary_key("memorization") == "memorization_px"
    assert set(KEYS) <= set(LOWER_IS_BETTER)
    assert is_better("memorization_px", 0.9, 0.2) and is_better("memorization_feat_p10", 0.5, 0.1)
    assert is_better("copies_px", 0.01, 0.5) and not is_better("copies_feat", 0.5, 0.01)


def test_evaluator_scores_copies_held_out_and_noise(digits, split):
    train, held = split
    real = ImageDataset(train, None, [], "digits1200")
    ext = _Counting(_digits_classifier(digits))  # any extractor: unlabelled real data is fine
    ev = Evaluator(real, metrics="memorization", extractor=ext, batch=100, use_cache=False)
    copies = ev(_copies(train), num=300)
    assert all(isinstance(copies[k], float) for k in KEYS)
    assert copies["memorization_px"] == copies["memorization_px_p10"] == 0.0 and copies["copies_px"] == 1.0
    assert copies["memorization_feat"] < 1e-3 and copies["copies_feat"] == 1.0
    assert copies["label"] == f"memorization300[{copies['extractor']}]" and copies["num_real"] == 1200
    new = ev(ImageDataset(held, None, [], "held"))
    ceiling = ev.real_memorization()
    assert 0.8 < new["memorization_px"] < 1.25 and new["copies_px"] < 0.05
    assert new["memorization_px"] == pytest.approx(ceiling["memorization_px"], rel=0.15)
    assert new["memorization_feat"] == pytest.approx(ceiling["memorization_feat"], rel=0.25)
    assert ceiling["copies_feat"] < 0.1 and ceiling["num_samples"] == 600
    noise = ev(_noise, num=200)
    assert noise["memorization_px"] > 1.5 and noise["copies_px"] == 0.0
    # The real images went through the extractor once, for all four calls (their features are reused).
    assert ext.seen == 1200 + 300 + len(held) + 200
    json.dumps(copies)


def test_memorization_shares_the_real_features_with_kid(digits):
    ext = _Counting(_digits_classifier(digits))
    res = evaluate(_copies(digits.images), digits, metrics="kid,memorization", num=200, extractor=ext, use_cache=False)
    assert ext.seen == len(digits) + 200  # each image extracted once, for both metrics
    assert res["memorization_px"] == 0.0 and np.isfinite(res["kid_mean"])


def test_pixel_sizes_must_match(digits):
    ev = Evaluator(digits, metrics="memorization", extractor="classifier")
    with pytest.raises(DataError, match="differ in size"):
        ev(lambda start, n: torch.zeros(n, 1, 16, 16), num=4)


def test_cli_eval_memorization(tmp_path):
    from ganforge.cli import main

    out = tmp_path / "res.json"
    args = ["eval", "--real", "digits", "--fake", "digits", "--num", "64", "--metrics", "memorization"]
    r = CliRunner().invoke(
        main, [*args, "--extractor", "classifier", "--quiet", "--json", str(out)], catch_exceptions=False
    )
    assert r.exit_code == 0, r.output
    assert "memorization64[classifier-v2-" in r.output and "pixels 0.0000 (p10 0.0000, copies 100.0%)" in r.output
    assert "~1 for new images, near 0 for copies" in r.output
    res = json.loads(out.read_text())
    assert res["memorization_px"] == 0.0 and res["copies_feat"] == 1.0 and set(KEYS) <= set(res)
    r = CliRunner().invoke(
        main,
        [
            "eval",
            "--real",
            "digits",
            "--fake",
            "digits16",
            "--metrics",
            "memorization",
            "--extractor",
            "classifier",
            "--quiet",
        ],
    )
    assert r.exit_code != 0 and "differ in size" in r.output


def _digits_classifier(digits):
    from ganforge.metrics.classifier import ClassifierExtractor

    return ClassifierExtractor.for_dataset(digits)  # the shipped weights: nothing trained


class _Counting(FeatureExtractor):
    """An extractor that counts the images it was given."""

    def __init__(self, inner: FeatureExtractor) -> None:
        self.inner = inner
        self.name, self.weights_sha256, self.resize = inner.name, inner.weights_sha256, inner.resize
        self.dim, self.has_logits, self.num_classes = inner.dim, inner.has_logits, inner.num_classes
        self.seen = 0

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        self.seen += images.shape[0]
        return self.inner(images)


def test_too_long_real_distances_are_refused_with_an_estimate(digits, monkeypatch):
    from ganforge.errors import ConfigError

    monkeypatch.setattr(memo_mod, "BLOCK_BYTES", 8 * 1024 * 64)  # 64 real images per block: an estimate after the first
    ev = Evaluator(digits, metrics="memorization", extractor="classifier", max_seconds=1e-6)
    with pytest.raises(ConfigError, match="every pair of the 1,797 real images in pixels.*--num-real"):
        ev(_noise, num=4)
