"""DF-GAN (families/dfgan.py): the family contract on captioned data, prompts through Python and the CLI, the
words-never-seen warning, the matching-aware gradient penalty and the mismatched-caption negatives, and captions
from a Hugging Face dataset's text column (a local save_to_disk folder)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from contract import NoiseFamilyContract

from ganforge import checkpoint as ckpt
from ganforge.errors import ConfigError
from ganforge.families.base import DataSpec, StepContext
from ganforge.families.dfgan import DFGAN, DFGANConfig, ma_gp, mismatched, unit_sentence
from ganforge.nn.text_encoder import tokenize, unseen_words, words
from ganforge.sample.model import Model
from ganforge.spec import decode_text, encode_text
from ganforge.training.loop import train
from helpers import make_captioned_archive, tiny_config

TINY = {"nz": 8, "ngf": 4, "ndf": 4, "sent_dim": 8, "text_steps": 1, "text_buckets": 64}


@pytest.fixture
def captioned_data(tmp_path):
    return str(make_captioned_archive(tmp_path / "shapes.zip"))


class TestDFGANContract(NoiseFamilyContract):
    model = "dfgan"
    data = "captioned_data"
    settings = TINY

    def test_explicit_latents_match_seeds(self, tmp_path, request):
        from ganforge.sample.latents import latents_for_seeds

        _, model = self.trained(tmp_path, request)
        z = latents_for_seeds([3, 4], model.latent_shape)
        a = model.sample_latents(z, prompt="red disc")
        assert torch.equal(a, model.generate([3, 4], prompt="red disc", output="tensor"))


def _trained(tmp_path, data, steps=3, run="t", **family):
    cfg = tiny_config(tmp_path, data, model="dfgan", family={**TINY, **family}, steps=steps, run=run)
    res = train(cfg, progress=False)
    return res, Model.load(res.run_dir)


def test_prompts_through_python_and_the_run_folder_alone(tmp_path, captioned_data):
    # The fusion blocks start as the identity (gamma 1, beta 0, as in the authors' code): a few steps at a high
    # learning rate, read from the raw generator (the EMA copy has hardly moved yet), so that the text shows.
    res, _ = _trained(tmp_path, captioned_data, steps=4, lr=5e-3)
    model = Model.load(res.run_dir, ema=False)
    assert model.capabilities.conditioning == "text"
    assert set(model.nets) == {"G", "E"}  # the generator and the text encoder: all that generation needs
    a = model.generate([0, 1], prompt="red disc", output="tensor")
    b = model.generate([0, 1], prompt="blue square", output="tensor")
    assert a.shape == (2, 3, 16, 16)
    assert (a - b).abs().max() > 1e-4, "the prompt must change the image"
    assert torch.equal(a, Model.load(res.run_dir, ema=False).generate([0, 1], prompt="red disc", output="tensor"))
    # The words the encoder saw travel with the run (checkpoint JSON), as its weights do.
    assert {"red", "disc", "blue", "square"} <= set(model.family.state_dict(model.nets)["vocab"])
    config = json.loads((res.run_dir / "config.json").read_text())
    assert "text_encoder" in config["notes"]


def test_cli_generates_from_a_prompt(tmp_path, captioned_data):
    from click.testing import CliRunner
    from PIL import Image

    from ganforge.cli import main

    res, _ = _trained(tmp_path, captioned_data)
    out = tmp_path / "g.png"
    r = CliRunner().invoke(
        main, ["generate", str(res.run_dir), "--seeds", "0-3", "--grid", "--prompt", "red disc", "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    with Image.open(out) as im:
        assert im.size == (2 * 17 + 1, 2 * 17 + 1)  # a 2x2 grid of 16 px images, 1 px gutters


def test_unseen_words_are_named_in_a_warning(tmp_path, captioned_data):
    _, model = _trained(tmp_path, captioned_data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.generate([0], prompt="red disc", output="tensor")
    assert not [w for w in caught if "never saw" in str(w.message)], [str(w.message) for w in caught]
    with pytest.warns(UserWarning, match=r"never saw 'purple', 'hexagon'"):
        x = model.generate([0], prompt="purple hexagon", output="tensor")
    assert torch.isfinite(x).all(), "an unseen word is read from its n-grams, not dropped"
    assert unseen_words("Red disc, red DISC!", ["red", "disc"]) == ["!"]


def test_the_cli_prints_the_unseen_word_warning_as_one_line_and_training_previews_do_not_warn(
    tmp_path, captioned_data
):
    import subprocess
    import sys

    runs = tmp_path / "runs"
    args = ["--steps", "2", "--batch", "1", "--runs-dir", str(runs), "--run", "w", "--sample-every", "1", "--set", "text_steps=1"]
    tiny = [x for k, v in TINY.items() if k != "text_steps" for x in ("--set", f"{k}={v}")]
    cmd = [sys.executable, "-m", "ganforge", "train", "--model", "dfgan", "--data", str(captioned_data), *args, *tiny]
    train_run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert train_run.returncode == 0, train_run.stderr
    assert "never saw" not in train_run.stdout + train_run.stderr  # previews' captions while the vocabulary grows
    gen = subprocess.run(
        [sys.executable, "-m", "ganforge", "generate", str(runs / "w"), "--seeds", "0", "--prompt", "purple hexagon",
         "--out", str(tmp_path / "g")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert gen.returncode == 0, gen.stderr
    lines = [ln for ln in gen.stderr.splitlines() if "never saw" in ln]
    assert lines == ["warning: training never saw 'purple', 'hexagon' (in 'purple hexagon'); the text encoder reads "
                     "them from their character n-grams alone"], gen.stderr  # fmt: skip
    assert "UserWarning" not in gen.stderr and "dfgan.py" not in gen.stderr


def test_tokenizer_keeps_compounds_and_shares_ngrams():
    assert words("woman: medium-dark skin tone") == ["woman", "medium-dark", "skin", "tone"]
    assert words("A button (blood type)") == ["a", "button", "blood", "type"]
    assert words("flag Antigua & Barbuda") == ["flag", "antigua", "&", "barbuda"]
    ids, lengths = tokenize(["flag Japan", "flag Jamaica"], 4096)
    assert ids.shape == (2, 16, 24) and lengths.tolist() == [2, 2]
    japan, jamaica = set(ids[0, 1].tolist()) - {0}, set(ids[1, 1].tolist()) - {0}
    assert japan & jamaica, "words sharing a prefix share n-gram ids ('<ja')"
    assert torch.equal(tokenize(["flag Japan"], 4096)[0], ids[:1]), "ids do not depend on the process (crc32)"


def test_ma_gp_is_the_gradient_at_real_images_with_matching_sentences():
    """MA-GP = k * mean(||(dD/dx, dD/de)||^p): checked against D(x, e) = sum(a * x) + sum(b * e), whose gradient
    norm is known in closed form, and against the step: it is computed on (real, matching sentence) inputs."""
    a, b = torch.randn(3, 4, 4), torch.randn(5)
    x = torch.randn(6, 3, 4, 4, requires_grad=True)
    e = torch.randn(6, 5, requires_grad=True)
    out = (x * a).flatten(1).sum(1) + (e * b).sum(1)
    norm = torch.sqrt(a.pow(2).sum() + b.pow(2).sum())
    assert torch.allclose(ma_gp(out, x, e, 2.0, 6.0), 2.0 * norm**6, rtol=1e-4)


def _spy_step(seed=0):
    """One GAN step of a tiny DF-GAN with D wrapped to record its inputs, on four captioned images."""
    fam = DFGAN()
    cfg = DFGANConfig(**{**TINY, "text_steps": 0})
    spec = DataSpec(resolution=8, channels=3, captions=["red disc"])
    torch.manual_seed(seed)
    nets = fam.build(cfg, spec)
    opts = fam.optimizers(nets, cfg)
    calls = []
    d = nets["D"]
    real_forward = d.forward

    def spy(x, s):
        out = real_forward(x, s)
        calls.append((x.detach().clone(), s.detach().clone(), x.requires_grad, s.requires_grad, out.detach().clone()))
        return out

    d.forward = spy
    text = encode_text(["red disc", "blue square", "green disc", "red square"])
    real = torch.rand(4, 3, 8, 8) * 2 - 1
    logs = fam.train_step(nets, opts, {"image": real, "text": text}, 0, StepContext())
    with torch.no_grad():
        sent = unit_sentence(nets["E"](text))  # as G and D read it
    return calls, real, sent, logs


def test_mismatched_captions_are_negatives_and_ma_gp_sees_real_matching_pairs():
    calls, real, sent, logs = _spy_step()
    (x1, s1, gx1, gs1, _), (x2, s2, _, _, _), (_, s3, _, _, _) = calls
    n = len(real)
    # 1: real images with their own sentences, both differentiable: the MA-GP pass.
    assert torch.equal(x1, real) and torch.allclose(s1, sent) and gx1 and gs1
    # 2: the negatives: the same real images with another image's sentence (Reed et al. 2016), then fakes with
    # the matching sentences.
    assert torch.equal(x2[:n], real) and torch.allclose(s2[:n], sent.roll(1, 0))
    assert not torch.allclose(s2[:n], sent)
    assert not torch.equal(x2[n:], real) and torch.allclose(s2[n:], sent)
    # 3: G's pass, with the matching sentences.
    assert torch.allclose(s3, sent) and len(calls) == 3
    assert logs["ma_gp"] > 0 and np.isfinite(logs["loss_D"])
    idx, mask = mismatched(encode_text(["a", "b", "b", "c"]))
    assert idx.tolist() == [3, 0, 1, 2] and mask.tolist() == [True, True, False, True]  # "b" vs "b": not a negative


def test_hinge_terms_weigh_real_fake_and_mismatched():
    """loss_D = mean relu(1 - D(x, e)) + (mean relu(1 + D(G(z), e)) + mean relu(1 + D(x, e')))/2 (DF-GAN eq. 1)."""
    calls, _, _, logs = _spy_step(seed=1)
    d_real, d_neg = calls[0][4], calls[1][4]
    d_wrong, d_fake = d_neg[:4], d_neg[4:]
    expect = F.relu(1 - d_real).mean() + 0.5 * F.relu(1 + d_fake).mean() + 0.5 * F.relu(1 + d_wrong).mean()
    assert logs["loss_D"] == pytest.approx(expect.item(), rel=1e-5)
    assert logs["score_wrong"] == pytest.approx(d_wrong.mean().item(), rel=1e-5)


def test_refuses_uncaptioned_data(tmp_path):
    from ganforge.errors import ConfigError
    from helpers import make_archive

    data = str(make_archive(tmp_path / "plain.zip"))
    with pytest.raises(ConfigError, match="captioned data"):
        train(tiny_config(tmp_path, data, model="dfgan", family=dict(TINY), steps=1), progress=False)


def test_ca_option_trains_and_generates(tmp_path, captioned_data):
    res, model = _trained(tmp_path, captioned_data, steps=2, ca=True)
    assert "kl" in res.last and np.isfinite(res.last["kl"])
    x = model.generate([0, 1], prompt="red disc", output="tensor")
    assert torch.equal(x, model.generate([0, 1], prompt="red disc", output="tensor")), "generation uses CA's mean"


def test_match_term_trains_g_only_and_linear_output_is_clamped_when_sampling(tmp_path, captioned_data):
    """match_weight (AttnGAN's DAMSM term): logged, and only G learns from it: the image encoder trained with the
    text encoder keeps its weights through the GAN steps. output=linear: samples still lie in [-1, 1]."""
    steps = 4
    res, _ = _trained(tmp_path, captioned_data, steps=steps, match_weight=1.0, output="linear", text_steps=2, lr=5e-3)
    assert "loss_G_match" in res.last and np.isfinite(res.last["loss_G_match"])
    after_text = _trained(tmp_path, captioned_data, steps=2, run="u", match_weight=1.0, output="linear", text_steps=2)[0]
    enc = lambda d: ckpt.load_tensors(ckpt.resolve_checkpoint(d), prefixes=("net/I/",))  # noqa: E731
    a, b = enc(after_text.run_dir), enc(res.run_dir)
    assert all(torch.equal(a[k], b[k]) for k in a), "the image encoder moved during the GAN steps"
    model = Model.load(res.run_dir, ema=False)
    x = model.generate(list(range(8)), prompt="red disc", output="tensor")
    assert x.min() >= -1 and x.max() <= 1
    with pytest.raises(ConfigError, match="output is tanh or linear"):
        _trained(tmp_path, captioned_data, run="bad", output="relu")


# ---- captions from a Hugging Face dataset's text column ------------------------------------------------
def _hf_folder(tmp_path, monkeypatch, text_columns=("caption",)):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")  # never the user's cache
    from PIL import Image

    imgs, caps = [], []
    for i in range(6):
        im = Image.new("RGB", (16, 16), [(255, 0, 0), (0, 0, 255)][i % 2])
        imgs.append(im)
        caps.append(["red square", "blue square"][i % 2] + f" {i}")
    cols = {"image": imgs, "label": [i % 2 for i in range(6)]}
    for k, name in enumerate(text_columns):
        cols[name] = caps if k == 0 else [c.upper() for c in caps]
    feats = {"image": datasets.Image(), "label": datasets.ClassLabel(names=["red", "blue"])}
    feats.update({name: datasets.Value("string") for name in text_columns})
    ds = datasets.Dataset.from_dict(cols, features=datasets.Features(feats))
    path = tmp_path / "hfdata"
    ds.save_to_disk(str(path))
    return path, caps


def test_hf_text_column_gives_captions(tmp_path, monkeypatch):
    from ganforge.data.downloads import hf

    path, caps = _hf_folder(tmp_path, monkeypatch, ("caption", "other"))
    ds = hf.load(str(path), resolution=16)
    assert decode_text(ds.texts) == caps  # the first string column
    named = hf.load(f"{path}?caption=other", resolution=16)
    assert decode_text(named.texts) == [c.upper() for c in caps]
    plain = hf.load(f"{path}?caption=none", resolution=16)
    assert plain.texts is None
    from ganforge.errors import DataError

    with pytest.raises(DataError, match="no column 'nope'"):
        hf.load(f"{path}?caption=nope", resolution=16)
    with pytest.raises(DataError, match="column 'label' is ClassLabel, not text"):
        hf.load(f"{path}?caption=label", resolution=16)


def test_hf_captions_reach_the_batch_and_a_dfgan_run(tmp_path, monkeypatch):
    from ganforge.data.dataset import load_dataset

    path, caps = _hf_folder(tmp_path, monkeypatch)
    ds = load_dataset(f"hf:{path}", resolution=16)
    assert ds.spec().captioned and ds.spec().captions == caps
    assert decode_text(ds.batch(torch.tensor([1, 2]))["text"]) == caps[1:3]
    res = train(tiny_config(tmp_path, f"hf:{path}", model="dfgan", family=dict(TINY), steps=2), progress=False)
    assert Model.load(res.run_dir).example_prompts == caps


def test_onnx_export_takes_the_sentence_vector(tmp_path, captioned_data):
    ort = pytest.importorskip("onnxruntime", reason="pip install 'ganforge[onnx]'")
    pytest.importorskip("onnxscript", reason="pip install 'ganforge[onnx]'")
    import onnx

    from ganforge.sample.latents import latents_for_seeds
    from ganforge.share.onnx_export import export_onnx

    _, model = _trained(tmp_path, captioned_data)
    res = export_onnx(model, tmp_path / "g.onnx")
    assert list(res.inputs) == ["z", "sentence"] and res.max_abs_diff < 1e-4
    # Independently of the exporter's check: a batch size it never saw, a prompt, against generate().
    seeds, prompt = [100, 101, 102], "green square"
    sent = model.family.sentence(model.nets, encode_text([prompt] * 3)).numpy()
    z = latents_for_seeds(seeds, model.latent_shape).numpy()
    out = ort.InferenceSession(str(res.path), providers=["CPUExecutionProvider"]).run(None, {"z": z, "sentence": sent})[
        0
    ]
    ref = model.generate(seeds, prompt=prompt, output="tensor").numpy()
    assert np.abs(out - ref).max() < 1e-4
    meta = {p.key: p.value for p in onnx.load(str(res.path), load_external_data=False).metadata_props}
    vectors = json.loads(meta["sentence_vectors"])
    assert set(vectors) == set(model.spec.captions)
    assert np.allclose(
        vectors["red disc"], model.family.sentence(model.nets, encode_text(["red disc"]))[0].numpy(), atol=1e-5
    )


def test_hf_default_text_column_with_an_unusable_row_gives_no_captions(tmp_path, monkeypatch):
    """The first string column may be an id or a file name: an unusable row there means no captions and a warning
    naming the fix; the same column named by the user is an error."""
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    from ganforge.data.downloads import hf
    from ganforge.errors import DataError

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    feats = datasets.Features({"image": datasets.Image(), "note": datasets.Value("string")})
    cols = {"image": [Image.new("RGB", (8, 8))] * 3, "note": ["a", "", "c"]}
    datasets.Dataset.from_dict(cols, features=feats).save_to_disk(str(tmp_path / "d"))
    with pytest.warns(UserWarning, match=r"no captions read .*row 1.*\?caption=COLUMN"):
        ds = hf.load(str(tmp_path / "d"), resolution=8)
    assert ds.texts is None and len(ds) == 3
    with pytest.raises(DataError, match="row 1 .*empty"):
        hf.load(f"{tmp_path / 'd'}?caption=note", resolution=8)
