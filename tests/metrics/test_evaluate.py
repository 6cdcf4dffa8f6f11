"""The evaluator: one flat result naming its protocol, small datasets, the real-statistics cache (disk and
memory, invalidated when its description differs) and the rules for picking a best checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ganforge.data.dataset import ImageDataset
from ganforge.errors import ConfigError, DataError
from ganforge.metrics import (
    LOWER_IS_BETTER,
    RESULT_KEYS,
    Evaluator,
    evaluate,
    evaluate_generator,
    is_better,
    metric_label,
    parse_metrics,
    primary_key,
)

ALL = "fid,kid,pr,dc,is,coverage,memorization"


def _noisy(ds: ImageDataset, sigma: float, seed: int = 0):
    """A 'generator' that returns real digits plus noise: image i is digit i with fixed noise."""

    def fn(start: int, n: int) -> torch.Tensor:
        idx = torch.arange(start, start + n) % len(ds)
        g = torch.Generator().manual_seed(seed + start)
        x = ds.images[idx].float() / 127.5 - 1
        return (x + sigma * torch.randn(x.shape, generator=g)).clamp(-1, 1)

    return fn


def test_flat_result_with_all_metrics(digits, digits_classifier):
    res = evaluate(_noisy(digits, 0.3), digits, metrics=ALL, num=300, extractor="classifier")
    for keys in RESULT_KEYS.values():
        for k in keys:
            assert isinstance(res[k], (int, float)) and np.isfinite(res[k]), k
    assert res["num_real"] == 1797 and res["num_fake"] == 300
    assert res["resize"] and len(res["weights_sha256"]) == 64
    assert res["label"].split(",")[0] == f"fd300[{res['extractor']}]"
    json.dumps(res)  # plain JSON types only
    assert all(not isinstance(v, (dict, list)) for v in res.values())  # flat


def test_small_dataset_gets_kid_and_precision_recall(digits, digits_extractor):
    """A 700-image dataset: KID subsets shrink to 700, k-NN metrics work."""
    real = ImageDataset(digits.images[:700], digits.labels[:700], digits.class_names, "digits700")
    res = evaluate(_noisy(digits, 0.2, seed=5), real, metrics="kid,pr,dc", num=700, extractor=digits_extractor)
    assert res["num_real"] == 700 and np.isfinite(res["kid_mean"]) and 0 < res["precision"] <= 1


def test_more_noise_scores_worse(digits, digits_classifier):
    ev = Evaluator(digits, metrics="fid,kid,pr", extractor="classifier")
    a, b = ev(_noisy(digits, 0.1), num=400), ev(_noisy(digits, 0.8), num=400)
    assert a["fid"] < b["fid"] and a["kid_mean"] < b["kid_mean"] and a["precision"] > b["precision"]


def test_real_statistics_cache(digits, digits_extractor, metrics_cache):
    fake = _noisy(digits, 0.3)
    ext = digits_extractor  # trained on all digits; a classifier trained on these 500 would be another extractor
    real = ImageDataset(digits.images[:500], digits.labels[:500], digits.class_names, "digits500")
    first = Evaluator(real, metrics="fid,pr", extractor=ext)
    r1 = first(fake, num=100)
    assert r1["real_stats"] == "computed"
    assert first(fake, num=100)["real_stats"] == "memory"
    second = Evaluator(real, metrics="fid,pr", extractor=ext)  # a new process would do the same
    r2 = second(fake, num=100)
    assert r2["real_stats"] == "disk" and r2["fid"] == pytest.approx(r1["fid"], rel=1e-12)
    stats = sorted((metrics_cache / "stats").glob("digits500-*.npz"))
    assert stats and np.load(stats[0], allow_pickle=False)["mu"].shape == (128,)
    # Any difference in the description invalidates the entry: here the stored count.
    meta_file = stats[0].with_suffix(".json")
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({**meta, "count": 499}))
    assert Evaluator(real, metrics="fid,pr", extractor=ext)(fake, num=100)["real_stats"] == "computed"
    # Other data (same shape, one pixel changed) -> another entry, not a stale hit.
    changed = real.images.clone()
    changed[0, 0, 0, 0] ^= 1
    other = ImageDataset(changed, real.labels, real.class_names, "digits500")
    assert Evaluator(other, metrics="fid", extractor=ext)(fake, num=100)["real_stats"] == "computed"
    # A subset of the real images is its own entry.
    sub = Evaluator(real, metrics="fid", extractor=ext, num_real=200)(fake, num=100)
    assert sub["num_real"] == 200 and sub["real_stats"] == "computed"


def test_evaluate_generator_keeps_state_between_calls(digits, digits_classifier):
    fn = _noisy(digits, 0.3)
    a = evaluate_generator(fn, "digits", metrics="fid", num=64, extractor="classifier")
    b = evaluate_generator(fn, "digits", metrics="fid", num=64, extractor="classifier")
    assert b["real_stats"] == "memory" and a["fid"] == b["fid"]


def test_bad_generator_output_is_a_clear_error(digits, digits_classifier):
    ev = Evaluator(digits, metrics="fid", extractor="classifier")
    with pytest.raises(ConfigError, match="generator returned"):
        ev(lambda start, n: torch.zeros(n, 32, 32), num=10)
    with pytest.raises(ConfigError, match="number of images"):
        ev(lambda start, n: torch.zeros(n, 1, 32, 32))
    with pytest.raises(DataError, match="more than 3 images"):
        Evaluator(digits, metrics="pr", extractor="classifier")(digits.images[:3])


def test_metric_names_and_directions():
    assert parse_metrics("fid, KID,prc,fid") == ["fid", "kid", "pr"]
    with pytest.raises(ConfigError, match="choose from"):
        parse_metrics("fid,psnr")
    numeric = {k for keys in RESULT_KEYS.values() for k in keys if not k.endswith("_std")}
    assert numeric == set(LOWER_IS_BETTER)
    assert primary_key("kid") == "kid_mean" and primary_key("pr") == "recall"
    assert is_better("fid", 3.0, 4.0) and not is_better("recall", 0.3, 0.4) and is_better("fid", 5.0, None)
    assert metric_label("fid", "inception-2015-12-05", 50000) == "fid50k[inception-2015-12-05]"
    assert metric_label("pr", "inception-2015-12-05", 10000) == "pr10k3[inception-2015-12-05]"
    assert metric_label("fid", "dinov2-vitl14", 1797) == "fd1797[dinov2-vitl14]"


def test_a_trained_model_can_be_evaluated_directly(tmp_path, digits_extractor):
    import ganforge
    from ganforge.training.loop import train
    from helpers import tiny_config

    res = train(tiny_config(tmp_path, "digits", steps=2), progress=False)
    model = ganforge.load(res.run_dir)
    a = evaluate(model, "digits", metrics="fid,coverage", num=32, extractor=digits_extractor)
    assert a["num_fake"] == 32 and a["classes_covered"] >= 1
    b = evaluate(model, "digits", metrics="fid", num=32, extractor=digits_extractor)
    assert b["fid"] == a["fid"]  # image i is seed i: reproducible


# ---- issue 24: generated images are streamed, absurd counts refused ---------------------------------


@pytest.mark.parametrize("n,d,offset", [(3000, 64, 0.0), (700, 128, 5.0), (257, 256, 0.5), (40, 128, 1.0)])
def test_streamed_statistics_equal_the_in_memory_ones(n, d, offset):
    """Running mean/covariance, batch by batch (uneven batches), match the two-pass statistics, and the FD
    from them the FD of the old in-memory path on the same features, to ~1e-10."""
    from ganforge.metrics.frechet import (
        RunningStatistics,
        feature_statistics,
        frechet_distance,
        frechet_distance_to_features,
    )

    rng = np.random.default_rng(n)
    real = rng.gamma(2.0, 0.5, (4 * d, d)) + offset  # non-negative, Inception-like pool features
    fake = (rng.gamma(2.0, 0.55, (n, d)) + offset).astype(np.float32)
    mu1, s1 = feature_statistics(real)
    run = RunningStatistics()
    for lo, hi in zip([0, 1, 65, 100, 611], [1, 65, 100, 611, n]):
        run.add(torch.from_numpy(fake[lo:hi]))
    mu2, s2 = run.statistics()
    mu_ref, s_ref = feature_statistics(fake)
    assert run.n == n
    np.testing.assert_allclose(mu2, mu_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s2, s_ref, rtol=1e-10, atol=1e-12)
    if n > d:  # what the evaluator uses when the rows are not kept
        old = frechet_distance_to_features(mu1, s1, fake)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(old, rel=1e-10, abs=1e-10)


def test_fid_alone_streams_and_gives_the_same_number(digits, digits_extractor, monkeypatch):
    """Past FEATURE_BYTES of features (here: at once) FID alone keeps no features; with KID it keeps them
    and uses the in-memory path. The same FID, up to the conditioning of this extractor's covariances:
    40 of its 128 ReLU features are never active, so both covariances are singular and the trace of the
    square root is determined only to about sqrt(rounding), ~1e-8 relative (generic features: 1e-10, above)."""
    import sys

    evaluate_mod = sys.modules["ganforge.metrics.evaluate"]  # the package's `evaluate` is the function
    fn = _noisy(digits, 0.3, seed=2)
    usual = Evaluator(digits, metrics="fid", extractor=digits_extractor, batch=50)(fn, num=333)
    monkeypatch.setattr(evaluate_mod, "FEATURE_BYTES", 0)
    streamed = Evaluator(digits, metrics="fid", extractor=digits_extractor, batch=50)
    kept = Evaluator(digits, metrics="fid,kid", extractor=digits_extractor, batch=50)
    seen = {}
    original = streamed._extract_fake

    def spy(*a, **kw):
        seen.update(original(*a, **kw))
        return seen

    streamed._extract_fake = spy  # type: ignore[method-assign]
    a, b = streamed(fn, num=333), kept(fn, num=333)
    assert "features" not in seen["main"] and seen["main"]["moments"].n == 333
    assert a["fid"] == pytest.approx(b["fid"], rel=1e-6)
    assert usual["fid"] == b["fid"]  # usual counts keep their features: exactly the number of the in-memory path
    # N <= D (128): the exact small form, features kept, as before.
    small = Evaluator(digits, metrics="fid", extractor=digits_extractor)(fn, num=100)
    assert small["fid"] == pytest.approx(evaluate(fn, digits, metrics="fid,kid", num=100, extractor=digits_extractor)["fid"], rel=1e-12)


def test_absurd_counts_are_refused_before_any_work(digits, digits_extractor):
    from ganforge.metrics.evaluate import MAX_KEPT, MAX_NUM, check_num

    def never(start, n):
        raise AssertionError("nothing is generated")

    ev = Evaluator(digits, metrics="fid", extractor=digits_extractor)
    with pytest.raises(ConfigError, match=r"--num 100,000,000 is more than 1,000,000 .* use --num 50000"):
        ev(never, num=100_000_000)
    with pytest.raises(ConfigError, match=r"kid keep every generated image's features .* --metrics fid alone"):
        Evaluator(digits, metrics="fid,kid", extractor=digits_extractor)(never, num=MAX_KEPT + 1)
    check_num(["fid"], MAX_NUM)  # FID alone streams: the cap is MAX_NUM
    check_num(["kid", "pr", "dc", "is"], MAX_KEPT)


def test_an_evaluation_that_would_take_too_long_is_refused_with_an_estimate(digits, digits_extractor):
    import time

    calls = []

    def slow(start, n):
        calls.append(start)
        time.sleep(0.02)
        return _noisy(digits, 0.3)(start, n)

    ev = Evaluator(digits, metrics="fid", extractor=digits_extractor, batch=10, max_seconds=5.0)
    with pytest.raises(ConfigError, match=r"900,000 generated images would take about .* images/s .* use --num"):
        ev(slow, num=900_000)
    assert len(calls) == 2  # measured on two batches, then refused
    assert ev(slow, num=40)["num_fake"] == 40  # within the limit


def test_progress_is_shown_off_a_terminal(digits, digits_extractor, monkeypatch, capsys):
    from ganforge.sample import progress as progress_mod

    monkeypatch.setattr(progress_mod, "EVERY", 0.0)
    Evaluator(digits, metrics="fid", extractor=digits_extractor, batch=100, progress=True)(_noisy(digits, 0.3), num=300)
    err = capsys.readouterr().err
    assert "generated images: 100/300 img (33%), about" in err and "left" in err
