"""ONNX export: the exported graph reproduces PyTorch on new seeds, batch sizes and image sizes."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ganforge.cli import main
from ganforge.errors import GanforgeError, MissingDependencyError
from ganforge.sample.latents import noise_request
from ganforge.sample.model import Model

ort = pytest.importorskip("onnxruntime", reason="pip install 'ganforge[onnx]'")
pytest.importorskip("onnxscript", reason="pip install 'ganforge[onnx]'")


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_dcgan_dynamic_batch_matches_generate(runs, tmp_path):
    from ganforge.share.onnx_export import export_onnx

    model = Model.load(runs["dcgan"])
    res = export_onnx(model, tmp_path / "g.onnx")
    assert res.opset == 18 and res.max_abs_diff < 1e-4
    assert list(res.inputs) == ["z"] and res.inputs["z"].startswith("float32 [batch")
    # Independently of the exporter's own check: 7 seeds (a batch size never seen) against generate().
    seeds = list(range(100, 107))
    z = noise_request(seeds, model.latent_shape).z.numpy()
    out = _session(res.path).run(None, {"z": z})[0]
    ref = model.generate(seeds, output="tensor").numpy()
    assert out.shape == ref.shape == (7, 3, 16, 16)
    assert np.abs(out - ref).max() < 1e-4


def test_stylegan2_psi_and_labels_are_inputs(runs, tmp_path):
    from ganforge.share.onnx_export import export_onnx

    model = Model.load(runs["stylegan2-cond"])
    res = export_onnx(model, tmp_path / "sg.onnx")
    assert list(res.inputs) == ["z", "labels", "psi"]
    sess = _session(res.path)
    seeds = [3, 4, 5]
    for psi, label in ((1.0, 0), (0.5, 2)):
        req = noise_request(seeds, model.latent_shape, 3, label)
        feed = {"z": req.z.numpy(), "labels": req.labels.numpy(), "psi": np.array([psi], np.float32)}
        ref = model.generate(seeds, label=label, trunc=psi, output="tensor").numpy()
        assert np.abs(sess.run(None, feed)[0] - ref).max() < 1e-4
    # psi changes the images (the input is wired, not constant-folded away)
    a = sess.run(None, {**feed, "psi": np.array([1.0], np.float32)})[0]
    assert np.abs(a - sess.run(None, feed)[0]).max() > 1e-3
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(res.path)).metadata_props}
    assert meta["family"] == "stylegan2" and "psi" in meta["notes"]


def test_pix2pix_takes_other_image_sizes(runs, tmp_path):
    from ganforge.share.onnx_export import export_onnx

    model = Model.load(runs["pix2pix"])
    res = export_onnx(model, tmp_path / "p2p.onnx")
    assert "dynamic" in " ".join(res.notes)
    mult = model.family.capabilities_for(model.nets).size_multiple
    x = torch.rand(2, 3, 2 * mult, 3 * mult, generator=torch.Generator().manual_seed(5)) * 2 - 1
    out = _session(res.path).run(None, {"source": x.numpy()})[0]
    ref = model.translate(x, output="tensor").numpy()
    assert out.shape == (2, 3, 2 * mult, 3 * mult)
    assert np.abs(out - ref).max() < 1e-4


def test_a_mismatch_fails_and_removes_the_file(runs, tmp_path, monkeypatch):
    from ganforge.share import onnx_export

    monkeypatch.setattr(onnx_export, "_check", lambda *a, **k: 0.5)
    path = tmp_path / "bad.onnx"
    with pytest.raises(GanforgeError, match=r"differs from PyTorch by 0\.5"):
        onnx_export.export_onnx(Model.load(runs["dcgan"]), path)
    assert not path.exists()


def test_cli_reports_opset_inputs_and_diff(runs, tmp_path):
    out = tmp_path / "c.onnx"
    r = CliRunner().invoke(main, ["export", str(runs["dcgan-cond"]), "--format", "onnx", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.exists()
    assert "opset 18" in r.output and "input  labels: int64 [batch]" in r.output
    assert "max abs diff" in r.output
    r = CliRunner().invoke(main, ["export", str(runs["dcgan"]), "--format", "onnx", "--out", str(tmp_path / "x.txt")])
    assert r.exit_code == 2 and "give a .onnx file" in r.output


def test_missing_extra_is_named(runs, tmp_path, monkeypatch):
    from ganforge.share.onnx_export import export_onnx

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(MissingDependencyError, match=r"ganforge\[onnx\]"):
        export_onnx(Model.load(runs["dcgan"]), tmp_path / "m.onnx")
