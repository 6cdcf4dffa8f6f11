"""A text-conditioned family with a frozen feature network, defined only in the tests (toy_text.py), trains,
checkpoints (frozen network absent, its checksum recorded), resumes bit-identically and generates from prompts
through `Model.generate(prompt=...)`, the CLI and the studio's API: adding it needed no edit to training/,
sample/ or serve/ (issue 25). Parameters a model does not have are refused the same way everywhere."""

from __future__ import annotations

import json

import pytest
import torch
from contract import NoiseFamilyContract

from ganforge import checkpoint as ckpt
from ganforge import registry
from ganforge.data.archive import read_archive
from ganforge.data.dataset import load_dataset
from ganforge.errors import ConfigError, DataError
from ganforge.sample.model import Model
from ganforge.spec import TEXT_BYTES, decode_text, encode_text
from ganforge.training.loop import train
from helpers import make_archive, make_captioned_archive, tiny_config


@pytest.fixture(autouse=True)
def _toy_text(monkeypatch):
    monkeypatch.setitem(registry._FAMILY_PATHS, "toy-text", "toy_text:ToyText")


@pytest.fixture
def captioned_data(tmp_path):
    return str(make_captioned_archive(tmp_path / "shapes.zip"))


class TestToyTextContract(NoiseFamilyContract):
    model = "toy-text"
    data = "captioned_data"

    def test_explicit_latents_match_seeds(self, tmp_path, request):
        from ganforge.sample.latents import latents_for_seeds

        _, model = self.trained(tmp_path, request)
        z = latents_for_seeds([3, 4], model.latent_shape)
        a = model.sample_latents(z, prompt="red disc")
        assert torch.equal(a, model.generate([3, 4], prompt="red disc", output="tensor"))


def _trained(tmp_path, data, steps=3, **kw):
    res = train(tiny_config(tmp_path, data, model="toy-text", family={}, steps=steps, **kw), progress=False)
    return res, Model.load(res.run_dir)


def test_text_round_trips_through_the_contract_bytes():
    texts = ["red heart", "flag: Japan", "woman: medium-dark skin tone", "é" * 64]
    t = encode_text(texts)
    assert t.dtype == torch.uint8 and t.shape == (4, TEXT_BYTES)
    assert decode_text(t) == texts
    with pytest.raises(ValueError, match="at most 128"):
        encode_text(["x" * 129])


def test_captions_travel_from_dataset_json_to_the_batch(captioned_data):
    arc = read_archive(captioned_data)
    assert arc.captions[:4] == ["red disc", "green disc", "blue disc", "red square"]
    ds = load_dataset(captioned_data)
    b = ds.batch(torch.tensor([0, 3]))
    assert decode_text(b["text"]) == ["red disc", "red square"]
    spec = ds.spec()
    assert spec.captioned and spec.captions[:2] == ["red disc", "green disc"]
    assert ds.resized(8).captions == ds.captions  # resizing keeps the captions


def test_bad_captions_are_named(tmp_path):
    path = make_captioned_archive(tmp_path / "bad")
    meta = json.loads((path / "dataset.json").read_text())
    meta["captions"][1][1] = ""
    (path / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="caption for '00000/img00000001.png'.*empty"):
        read_archive(path)
    meta["captions"][1][1] = "green disc"
    meta["captions"] = meta["captions"][:3]
    (path / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="no caption for 00000/img00000003.png"):
        read_archive(path)


def test_frozen_network_is_neither_trained_nor_checkpointed(tmp_path, captioned_data):
    from toy_text import frozen_features

    res, _ = _trained(tmp_path, captioned_data)
    tensors = ckpt.load_tensors(ckpt.resolve_checkpoint(res.run_dir))
    assert not [k for k in tensors if "features" in k]
    d_keys = {k.split("/", 2)[2] for k in tensors if k.startswith("net/D/")}
    assert d_keys == {"text.embed.weight", "fc.weight", "fc.bias", "out.weight", "out.bias"}
    meta = ckpt.read_meta(ckpt.resolve_checkpoint(res.run_dir))
    from ganforge.families.base import Networks

    probe = Networks({})
    probe.frozen["features"] = frozen_features(3)
    assert meta["frozen_networks"] == probe.frozen_checksums()
    config = json.loads((res.run_dir / "config.json").read_text())
    assert "features" in config["notes"]


def test_prompts_decide_the_image(tmp_path, captioned_data):
    _, model = _trained(tmp_path, captioned_data)
    assert model.capabilities.conditioning == "text"
    a = model.generate([0, 1], prompt="red disc", output="tensor")
    b = model.generate([0, 1], prompt="blue square", output="tensor")
    assert (a - b).abs().max() > 1e-4, "the prompt must change the image"
    assert torch.equal(a, model.generate([0, 1], prompt="red disc", output="tensor"))
    # Without a prompt, seed s draws the data's example caption s % n (as previews and evaluation do).
    assert torch.equal(model.generate([0], output="tensor"), model.generate([0], prompt="red disc", output="tensor"))
    assert model.example_prompts[:3] == ["red disc", "green disc", "blue disc"]
    for bad, match in (("", "empty"), ("x" * 200, "at most 128"), ("a\0b", "NUL")):
        with pytest.raises(ConfigError, match=match):
            model.generate([0], prompt=bad)


def test_text_family_refuses_uncaptioned_data(tmp_path):
    data = str(make_archive(tmp_path / "plain.zip"))
    with pytest.raises(ConfigError, match="captioned data"):
        train(tiny_config(tmp_path, data, model="toy-text", family={}, steps=1), progress=False)


def test_unsupported_parameters_are_refused_everywhere(tmp_path, captioned_data):
    """One policy for parameters a model does not have: Python, CLI and web refuse with one line."""
    res = train(tiny_config(tmp_path, captioned_data, steps=1, run="dc"), progress=False)
    model = Model.load(res.run_dir)
    with pytest.raises(ConfigError, match="not conditioned on text"):
        model.generate([0], prompt="red disc")
    with pytest.raises(ConfigError, match="truncation"):
        model.generate([0], trunc=0.5)

    from fastapi.testclient import TestClient

    from ganforge.serve.app import create_app

    client = TestClient(create_app(runs_dir=tmp_path / "runs"))
    for query, word in (("prompt=red%20disc", "text"), ("psi=0.5", "truncation"), ("noise=random", "noise")):
        r = client.get(f"/api/runs/dc/generate.png?seed=0&{query}")
        assert r.status_code == 422, (query, r.status_code)
        assert word in r.json()["detail"]


def test_studio_generates_from_prompts(tmp_path, captioned_data):
    from fastapi.testclient import TestClient

    from ganforge.serve.app import create_app

    _trained(tmp_path, captioned_data, run="txt")
    client = TestClient(create_app(runs_dir=tmp_path / "runs"))
    info = client.get("/api/runs/txt").json()
    assert info["capabilities"]["text"] is True
    assert info["example_prompts"][:2] == ["red disc", "green disc"]
    red = client.get("/api/runs/txt/generate.png?seed=3&prompt=red%20disc")
    blue = client.get("/api/runs/txt/generate.png?seed=3&prompt=blue%20square")
    assert red.status_code == blue.status_code == 200
    assert red.content[:4] == b"\x89PNG" and red.content != blue.content
    assert client.get("/api/runs/txt/generate.png?seed=3").status_code == 200  # an example caption
    r = client.get("/api/runs/txt/generate.png?seed=3&prompt=" + "x" * 200)
    assert r.status_code == 422 and "at most 128" in r.json()["detail"]
    gif = client.get("/api/runs/txt/interpolate.gif?from=0&to=1&frames=4&prompt=green%20disc")
    assert gif.status_code == 200 and gif.content[:3] == b"GIF"


def test_cli_generates_from_a_prompt(tmp_path, captioned_data):
    from click.testing import CliRunner
    from PIL import Image

    from ganforge.cli import main

    res, _ = _trained(tmp_path, captioned_data, run="txt")
    out = tmp_path / "g.png"
    r = CliRunner().invoke(main, ["generate", str(res.run_dir), "--seeds", "0-3", "--grid", "--prompt", "red disc", "--out", str(out)])
    assert r.exit_code == 0, r.output
    with Image.open(out) as im:
        assert im.size == (2 * 17 + 1, 2 * 17 + 1)  # a 2x2 grid of 16 px images, 1 px gutters
    dc = train(tiny_config(tmp_path, captioned_data, steps=1, run="dc"), progress=False)
    r = CliRunner().invoke(main, ["generate", str(dc.run_dir), "--seeds", "0", "--prompt", "red disc"])
    assert r.exit_code == 2 and "not conditioned on text" in r.output
    assert len(r.output.strip().splitlines()) == 1
