"""The exported safetensors folder: self-contained, loads like a run, and the model card says what it is."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors import safe_open

import ganforge
from ganforge.cli import main
from ganforge.errors import ConfigError
from ganforge.sample.model import Model
from ganforge.share.folder import export_folder


def test_folder_generates_what_the_run_generates(runs, tmp_path):
    out = export_folder(runs["dcgan-cond"], tmp_path / "shared")
    a = Model.load(runs["dcgan-cond"]).generate(range(6), output="tensor")
    b = ganforge.load(str(out)).generate(range(6), output="tensor")
    assert torch.equal(a, b)
    # Only the EMA generator travels: no discriminator, optimizer state, RNG or training-only tensors.
    with safe_open(str(next((out / "checkpoints").glob("*.safetensors"))), "pt") as f:
        keys = list(f.keys())
    assert keys and all(k.startswith("net/G_ema/") for k in keys)
    meta = json.loads(next((out / "checkpoints").glob("step-*.json")).read_text())
    assert "optimizers" not in meta and "rng" not in meta and meta["exported"]["ema"] is True
    # Local paths are reduced to file names, so publishing the folder does not publish them.
    assert json.loads((out / "config.json").read_text())["data"] == "tiny-labelled.zip"
    assert str(tmp_path.parent) not in (out / "config.json").read_text()


def test_model_card(runs, tmp_path):
    out = export_folder(runs["dcgan-cond"], tmp_path / "card", license="mit")
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlicense: mit\nlibrary_name: ganforge\n")
    assert "pipeline_tag: unconditional-image-generation" in card
    assert "**dcgan**" in card and "| data | `tiny-labelled.zip` |" in card and "| steps | 4 " in card
    assert "| classes | 3: c0, c1, c2 |" in card
    assert "| loss_D |" in card  # metrics from metrics.jsonl
    grid = card.split("](", 1)[1].split(")", 1)[0]
    assert grid.startswith("samples/") and Image.open(out / grid).size[0] > 16  # the embedded grid exists
    assert 'ganforge.load("path/to/card")' in card


def test_image_to_image_folder_translates(runs, tmp_path):
    out = export_folder(runs["pix2pix"], tmp_path / "p2p")
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert torch.equal(
        Model.load(runs["pix2pix"]).translate(x, output="tensor"), ganforge.load(str(out)).translate(x, output="tensor")
    )
    assert "pipeline_tag: image-to-image" in (out / "README.md").read_text()


def test_cli_export_then_generate_from_the_folder(runs, tmp_path):
    out = tmp_path / "exported"
    r = CliRunner().invoke(main, ["export", str(runs["dcgan"]), "--format", "safetensors", "--out", str(out)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["generate", str(out), "--seeds", "0-3", "--grid", "--out", str(tmp_path / "g.png")])
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "g.png").size == (16 * 2 + 3, 16 * 2 + 3)
    r = CliRunner().invoke(main, ["info", str(out)])
    assert r.exit_code == 0 and "dcgan" in r.output


def test_refuses_to_clobber_and_replaces_its_own(runs, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not empty"):
        export_folder(runs["dcgan"], mine)
    assert (mine / "notes.txt").read_text() == "keep me"
    out = export_folder(runs["dcgan"], tmp_path / "again")
    with pytest.raises(ConfigError, match="--overwrite"):
        export_folder(runs["dcgan"], out)
    export_folder(runs["dcgan"], out, overwrite=True)
    assert not list(tmp_path.glob(".again.*"))  # no temporary folder left behind


def test_generator_only_is_said_plainly(runs, tmp_path):
    out = export_folder(runs["dcgan"], tmp_path / "e")
    with pytest.raises(ConfigError, match="drop --no-ema"):
        Model.load(out, ema=False)
    with pytest.raises(ConfigError, match="generator only"):
        Model.load(out, nets="all")
