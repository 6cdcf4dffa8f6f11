"""The FID Inception extractor agrees with torch-fidelity: offline with random weights (features, FID, KID,
IS on the same two folders), and with the real weights when they are present. DINOv2's offline errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.errors import DataError
from ganforge.metrics import evaluate
from ganforge.metrics import weights as W
from ganforge.metrics.extractors import DinoV2Extractor, InceptionExtractor

tf = pytest.importorskip("torch_fidelity")


def _folders(tmp_path, n=6, res=48):
    """Two folders of PNGs: emoji-like blobs at an odd size, so the resize to 299 is exercised."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:res, 0:res]
    out = []
    for name in ("a", "b"):
        d = tmp_path / name
        d.mkdir()
        for i in range(n):
            img = np.full((res, res, 3), 255, np.uint8)
            cx, cy, r = rng.uniform(12, 36), rng.uniform(12, 36), rng.uniform(6, 18) * (1.5 if name == "b" else 1)
            img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.integers(0, 256, 3)
            Image.fromarray(img).save(d / f"{i:03d}.png")
        out.append(d)
    return out


def _tf_features(folder, weights):
    from torch_fidelity.datasets import ImagesPathDataset
    from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset, glob_samples_paths

    fe = create_feature_extractor(
        "inception-v3-compat",
        ["2048", "logits_unbiased"],
        cuda=False,
        feature_extractor_weights_path=str(weights),
        verbose=False,
    )
    files = glob_samples_paths(str(folder), False, "png", verbose=False)
    return get_featuresdict_from_dataset(ImagesPathDataset(files), fe, 64, False, True, False)


def test_features_and_metrics_equal_torch_fidelity_offline(tmp_path, random_weights):
    a, b = _folders(tmp_path)
    ext = InceptionExtractor(random_weights)
    assert ext.name.startswith("inception-custom-")  # not the FID weights: the name says so
    from ganforge.data import load_dataset

    ours = ext(load_dataset(str(a)).images)
    theirs = _tf_features(a, random_weights)
    torch.testing.assert_close(ours["features"], theirs["2048"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours["logits"], theirs["logits_unbiased"], rtol=1e-4, atol=1e-5)

    res = evaluate(str(a), str(b), metrics="fid,kid,is", inception_weights=random_weights, use_cache=False, is_splits=3)
    ref = tf.calculate_metrics(
        input1=str(a),
        input2=str(b),
        cuda=False,
        fid=True,
        kid=True,
        isc=True,
        kid_subset_size=6,
        isc_splits=3,
        feature_extractor_weights_path=str(random_weights),
        cache=False,
        verbose=False,
        save_cpu_ram=True,
    )
    assert res["fid"] == pytest.approx(ref["frechet_inception_distance"], rel=1e-4)
    # torch-fidelity sums the kernels in float32; near-constant random features make KID a small difference
    # of large sums, so allow its rounding here (real weights: 1e-3, test below).
    assert res["kid_mean"] == pytest.approx(ref["kernel_inception_distance_mean"], rel=2e-3)
    assert res["is_mean"] == pytest.approx(ref["inception_score_mean"], rel=1e-6)
    assert res["resize"] == "tf1-bilinear-299" and res["extractor"] == ext.name
    assert res["weights_sha256"] == W.sha256_file(random_weights)


def test_standard_weights_are_named_by_checksum(random_weights, monkeypatch):
    monkeypatch.setattr(W, "INCEPTION_SHA256_PREFIX", W.sha256_file(random_weights)[:8])
    assert InceptionExtractor(random_weights).name == "inception-2015-12-05"


class _Payload:
    def __reduce__(self):
        return (print, ("code ran while loading weights",))


def test_weights_files_that_execute_code_are_refused(tmp_path):
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        pickle.dump({"x": _Payload()}, f, protocol=2)
    with pytest.raises(DataError, match="not a plain PyTorch weights file"):
        InceptionExtractor(evil)


def _real_weights():
    try:
        return W.inception_weights(allow_download=False)
    except DataError:
        return None


@pytest.mark.skipif(
    _real_weights() is None,
    reason=f"the FID Inception weights are not present: put {W.INCEPTION_FILE} in ~/.cache/ganforge/weights/ "
    "(or set GANFORGE_INCEPTION_WEIGHTS) to run the agreement test with the real network",
)
def test_fid_kid_equal_torch_fidelity_with_real_weights(tmp_path):
    weights = _real_weights()
    a, b = _folders(tmp_path, n=24)
    res = evaluate(str(a), str(b), metrics="fid,kid", inception_weights=weights, use_cache=False)
    ref = tf.calculate_metrics(
        input1=str(a),
        input2=str(b),
        cuda=False,
        fid=True,
        kid=True,
        kid_subset_size=24,
        feature_extractor_weights_path=str(weights),
        cache=False,
        verbose=False,
        save_cpu_ram=True,
    )
    assert res["extractor"] == "inception-2015-12-05"
    assert res["fid"] == pytest.approx(ref["frechet_inception_distance"], rel=1e-3)
    assert res["kid_mean"] == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-3)


def test_dinov2_offline_error_says_what_to_do(tmp_path):
    with pytest.raises(DataError) as exc:
        DinoV2Extractor(cache=tmp_path)
    msg = str(exc.value)
    assert (
        "offline" in msg
        and str(tmp_path / "hub" / "facebookresearch_dinov2_main") in msg
        and "dinov2_vitl14_pretrain.pth" in msg
    )


def test_dinov2_network_failure_is_a_clear_error_and_restores_hub_dir(tmp_path, monkeypatch):
    import urllib.error

    monkeypatch.delenv("GANFORGE_OFFLINE")
    before = torch.hub.get_dir()

    def fail(*args, **kwargs):
        assert torch.hub.get_dir() == str(tmp_path / "hub")  # loads into ganforge's cache
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load", fail)
    with pytest.raises(DataError, match="could not load DINOv2"):
        DinoV2Extractor(cache=tmp_path)
    assert torch.hub.get_dir() == before
