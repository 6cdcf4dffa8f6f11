"""Adversarial examples (`ganforge.attack`, `ganforge attack`): the attacks raise the loss, keep every perturbation
inside ε and every image in [0, 1], and FGSM / PGD give torchattacks' images on the same model and inputs."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner
from PIL import Image

from ganforge.attack import (
    DiscriminatorClassifier,
    PixelClassifier,
    attack_images,
    cw,
    fgsm,
    latent_attack,
    load_classifier_file,
    load_model,
    loss_fn,
    pgd,
    quantize_toward,
    save_robust,
)
from ganforge.cli import main
from ganforge.errors import ConfigError, DataError
from ganforge.metrics.classifier import CLASSIFIER_VERSION, SmallClassifier, TrainedClassifier
from ganforge.sample.model import Model
from ganforge.training.loop import train
from helpers import make_archive, tiny_config

TOL = 1e-6  # float rounding of a perturbation's norm


@pytest.fixture(autouse=True)
def _one_thread(_small_threads):
    """These networks are tiny: a second thread only waits on the first (35x slower on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_net(seed: int = 0, classes: int = 4) -> nn.Module:
    """A small CNN on 3x8x8 pixels in [0, 1], no BatchNorm (the same numbers in every mode)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, classes),
    ).eval()


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(16, 3, 8, 8, generator=g)
    x[:4] = (x[:4] > 0.5).float()  # pixels at 0 and 1: the clamp to [0, 1] is exercised
    y = torch.randint(0, 4, (16,), generator=g)
    return x, y


def _check_budget(x: torch.Tensor, adv: torch.Tensor, eps: float, norm: str) -> None:
    assert adv.min() >= 0 and adv.max() <= 1, "images stay in [0, 1]"
    d = (adv - x).flatten(1)
    if norm == "linf":
        assert d.abs().max() <= eps + TOL
    else:
        assert d.norm(dim=1).max() <= eps * (1 + TOL) + TOL


@pytest.mark.parametrize("norm,eps", [("linf", 8 / 255), ("linf", 1 / 255), ("l2", 0.5), ("l2", 0.05)])
def test_attacks_raise_the_loss_and_stay_inside_the_ball(batch, norm, eps):
    x, y = batch
    net = tiny_net()
    base = loss_fn(net, x, y).item()
    for adv in (
        fgsm(net, x, y, eps=eps, norm=norm),
        pgd(net, x, y, eps=eps, norm=norm, steps=10, generator=torch.Generator().manual_seed(0)),
        pgd(net, x, y, eps=eps, norm=norm, steps=10, random_start=False),
    ):
        _check_budget(x, adv, eps, norm)
        assert loss_fn(net, adv, y).item() > base, "an attack raises the loss"
    if norm == "l2":
        adv = cw(net, x, y, eps=eps, steps=30, c=10.0)
        _check_budget(x, adv, eps, norm)
        assert loss_fn(net, adv, y).item() > base


def test_pgd_is_stronger_than_fgsm_and_zero_eps_changes_nothing(batch):
    x, y = batch
    net = tiny_net()
    lf = loss_fn(net, fgsm(net, x, y, eps=4 / 255), y).item()
    lp = loss_fn(net, pgd(net, x, y, eps=4 / 255, steps=20, random_start=False), y).item()
    assert lp >= lf - 1e-6
    assert torch.equal(fgsm(net, x, y, eps=0.0), x)
    assert torch.equal(pgd(net, x, y, eps=0.0, steps=3), x)


def test_cw_without_eps_finds_small_adversarial_examples(batch):
    x, y = batch
    net = tiny_net()
    adv = cw(net, x, y, steps=100, c=10.0, lr=0.05)
    flipped = net(adv).argmax(1) != y
    assert flipped.float().mean() > 0.5, "CW misclassifies most of a random net's inputs"
    assert (adv - x).flatten(1).norm(dim=1)[flipped].max() < 3.0


def test_out_of_range_eps_and_wrong_norm_raise_one_line(batch):
    x, y = batch
    net = tiny_net()
    with pytest.raises(ConfigError, match="out of range"):
        fgsm(net, x, y, eps=2.0)
    with pytest.raises(ConfigError, match="out of range"):
        pgd(net, x, y, eps=-0.1)
    with pytest.raises(ConfigError, match="L2 attack"):
        attack_images(net, x, y, method="cw", norm="linf")
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        attack_images(net, x * 255, y)


def test_quantized_images_are_on_the_8bit_grid_and_inside_the_ball(batch):
    x, y = batch
    x = (x * 255).round() / 255  # images read from PNGs
    net = tiny_net()
    for norm, eps in (("linf", 8 / 255), ("linf", 2.5 / 255), ("l2", 0.3)):
        adv = pgd(net, x, y, eps=eps, norm=norm, steps=5, generator=torch.Generator().manual_seed(0))
        q = quantize_toward(x, adv, eps, norm)
        assert torch.allclose(q * 255, (q * 255).round(), atol=1e-4), "whole 255ths"
        _check_budget(x, q, eps, norm)


# ---- the same images as torchattacks ---------------------------------------------------------------------------


def test_fgsm_and_pgd_equal_torchattacks(batch):
    torchattacks = pytest.importorskip("torchattacks")
    x, y = batch
    net = tiny_net()
    ref = torchattacks.FGSM(net, eps=8 / 255)(x, y)
    assert torch.allclose(fgsm(net, x, y, eps=8 / 255), ref, atol=1e-6)
    ref = torchattacks.PGD(net, eps=8 / 255, alpha=2 / 255, steps=10, random_start=False)(x, y)
    assert torch.allclose(pgd(net, x, y, eps=8 / 255, steps=10, step_size=2 / 255, random_start=False), ref, atol=1e-6)
    ref = torchattacks.PGDL2(net, eps=0.5, alpha=0.1, steps=10, random_start=False)(x, y)
    assert torch.allclose(
        pgd(net, x, y, eps=0.5, norm="l2", steps=10, step_size=0.1, random_start=False), ref, atol=1e-5
    )


def test_a_wrong_attack_would_not_match_torchattacks(batch):
    """The comparison can fail: a PGD with another step size is not torchattacks' PGD."""
    torchattacks = pytest.importorskip("torchattacks")
    x, y = batch
    net = tiny_net()
    ref = torchattacks.PGD(net, eps=8 / 255, alpha=2 / 255, steps=10, random_start=False)(x, y)
    assert not torch.allclose(
        pgd(net, x, y, eps=8 / 255, steps=10, step_size=1 / 255, random_start=False), ref, atol=1e-6
    )


# ---- the built-in classifiers and the CLI ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory):
    """Six held-out digits as PNG files in class sub-folders (so the CLI knows their true labels)."""
    from ganforge.attack import heldout_split
    from ganforge.data import load_dataset

    root = tmp_path_factory.mktemp("digits")
    ds = load_dataset("digits")
    _, held = heldout_split(len(ds))
    for i in held[:6].tolist():
        folder = root / str(int(ds.labels[i]))
        folder.mkdir(exist_ok=True)
        Image.fromarray(ds.images[i, 0].numpy()).save(folder / f"d{i}.png")
    return root


def test_shipped_digits_classifier_falls_under_pgd():
    from ganforge.attack import heldout_split
    from ganforge.data import load_dataset

    model = load_model("digits")
    assert isinstance(model, PixelClassifier) and model.class_names == [str(k) for k in range(10)]
    ds = load_dataset("digits")
    _, held = heldout_split(len(ds))
    assert len(held) == model.meta["heldout_images"], "the same held-out split as the shipped classifier's"
    idx = held[:32]
    x, y = ds.images[idx].float() / 255, ds.labels[idx]
    res = attack_images(model, x, y, method="pgd", eps=8 / 255)
    assert res.clean_accuracy > 0.9
    assert res.adv_accuracy < res.clean_accuracy - 0.3
    assert float(res.linf.max()) <= 8 / 255 + TOL and res.adv.min() >= 0 and res.adv.max() <= 1
    assert res.rows()[0].keys() >= {
        "label",
        "clean_pred",
        "clean_conf",
        "adv_pred",
        "adv_conf",
        "success",
        "linf",
        "l2",
    }


def test_cli_attacks_files_and_writes_pngs_csv_and_grid(digit_files, tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(
        main, ["attack", "--model", "digits", "--method", "pgd", "--eps", "8/255", str(digit_files), "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    pngs = sorted(out.glob("0*.png"))
    assert len(pngs) == 6
    rows = list(csv.DictReader(open(out / "attack.csv")))
    assert len(rows) == 6
    assert set(rows[0]) >= {
        "file",
        "label",
        "clean_pred",
        "clean_conf",
        "adv_pred",
        "adv_conf",
        "success",
        "linf",
        "l2",
    }
    assert all(r_["label_source"] == "true" for r_ in rows), "labels from the class sub-folders"
    assert max(float(r_["linf"]) for r_ in rows) <= 8 / 255 + TOL
    # The PNGs are the images the table describes: within 8 levels of their source, and classified as the table says.
    model = load_model("digits")
    for row in rows:
        adv = np.asarray(Image.open(out / row["file"]), dtype=np.int16)
        src = np.asarray(Image.open(row["source"]), dtype=np.int16)
        assert np.abs(adv - src).max() <= 8
        pred = model(torch.from_numpy(adv).float()[None, None] / 255).argmax(1).item()
        assert str(pred) == row["adv_pred"]
    grid = Image.open(out / "grid.png")
    assert grid.height > 3 * 32 and grid.width > 6 * 32, "rows clean | perturbation | adversarial, a column per image"
    assert "success" in r.output


def test_cli_attacks_heldout_data_without_files(tmp_path):
    out = tmp_path / "o"
    r = CliRunner().invoke(
        main, ["attack", "--data", "digits", "--num", "5", "--method", "fgsm", "--eps", "0.02", "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(out / "attack.csv")))
    assert len(rows) == 5 and all(float(r_["linf"]) <= 0.02 + TOL for r_ in rows)
    r = CliRunner().invoke(
        main,
        ["attack", "--data", "digits", "--num", "3", "--method", "cw", "--steps", "10", "--out", str(tmp_path / "cw")],
    )
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(tmp_path / "cw" / "attack.csv")))
    assert all(float(r_["l2"]) <= 0.5 + 1e-5 for r_ in rows), "cw's default L2 budget 0.5"


@pytest.mark.parametrize(
    "args,message",
    [
        (["--model", "nosuchmodel", "--data", "digits"], "unknown model 'nosuchmodel'"),
        (["--data", "digits", "--eps", "2"], "out of range"),
        (["--data", "digits", "--eps", "8/0"], "not a number"),
        (["--data", "digits", "--eps", "abc"], "not a number"),
        (["--model", "digits"], "no images"),
        (["--data", "digits", "--method", "cw", "--norm", "linf"], "L2 attack"),
        (["--method", "latent", "--eps", "0.1", "--generator", "x"], "do not apply"),
        (["--method", "latent"], "--generator"),
        (["--model", "digits", "/no/such/folder"], "no such file"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, args, message):
    r = CliRunner().invoke(main, ["attack", *args, "--out", str(tmp_path / "o")])
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1


def test_cli_needs_out_and_refuses_an_empty_folder(tmp_path):
    r = CliRunner().invoke(main, ["attack", "--data", "digits"])
    assert r.exit_code == 2 and "--out" in r.output
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(main, ["attack", "--model", "digits", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "no images" in r.output


def test_train_robust_on_a_tiny_budget_gives_a_loadable_model(tmp_path):
    path = tmp_path / "robust.safetensors"
    r = CliRunner().invoke(
        main, ["attack", "--train-robust", "digits16", "--train-steps", "3", "--attack-steps", "1", "--out", str(path)]
    )
    assert r.exit_code == 0, r.output
    assert path.is_file() and path.with_suffix(".json").is_file()
    assert not any(p.suffix in (".pt", ".pth", ".pkl") for p in tmp_path.iterdir()), "never pickle"
    model = load_classifier_file(path)
    assert model.meta["kind"] == "robust-classifier" and model.meta["robust"]["eps"] == pytest.approx(8 / 255)
    r = CliRunner().invoke(
        main, ["attack", "--model", str(path), "--data", "digits16", "--num", "4", "--out", str(tmp_path / "o")]
    )
    assert r.exit_code == 0, r.output
    assert len(list(csv.DictReader(open(tmp_path / "o" / "attack.csv")))) == 4
    r = CliRunner().invoke(
        main,
        [
            "attack",
            "--model",
            str(tmp_path / "missing.safetensors"),
            "--data",
            "digits16",
            "--out",
            str(tmp_path / "p"),
        ],
    )
    assert r.exit_code == 2 and "no classifier at" in r.output


# ---- a run's discriminator, and the latent attack on a conditional generator ---------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("attack-runs")
    data = str(make_archive(root / "blobs.zip", n=24, classes=2))
    return {
        "uncond": train(tiny_config(root, data, run="u", steps=2), progress=False).run_dir,
        "cond": train(tiny_config(root, data, run="c", steps=2, cond=True), progress=False).run_dir,
        "data": data,
    }


def test_a_runs_discriminator_is_a_fake_vs_real_classifier(runs):
    model = load_model(runs["uncond"])
    assert isinstance(model, DiscriminatorClassifier) and model.class_names == ["fake", "real"]
    x = torch.rand(6, 3, 16, 16)
    logits = model(x)
    assert logits.shape == (6, 2) and torch.all(logits[:, 0] == 0)
    res = attack_images(model, x, method="pgd", eps=4 / 255, steps=5)
    assert float(res.linf.max()) <= 4 / 255 + TOL
    with pytest.raises(ConfigError, match="class-conditional"):
        load_model(runs["cond"])


def _classifier_file(tmp_path, names: list[str]) -> str:
    """A randomly initialised classifier of the generator's classes, saved as ganforge saves classifiers."""
    torch.manual_seed(0)
    net = SmallClassifier(3, len(names))
    meta = {"version": CLASSIFIER_VERSION, "channels": 3, "num_classes": len(names), "class_names": names}
    return str(save_robust(tmp_path / "clf.safetensors", TrainedClassifier(net.eval(), meta)))


def test_latent_attack_changes_the_prediction_or_says_it_failed(runs, tmp_path):
    gen = Model.load(runs["cond"])
    clf = load_classifier_file(_classifier_file(tmp_path, gen.class_names))
    res = latent_attack(gen, clf, seeds=list(range(8)), steps=20, radius=0.5)
    assert res.clean.shape == res.adv.shape == (8, 3, 16, 16)
    assert torch.equal(res.labels, torch.arange(8) % 2), "the requested classes (seed % classes)"
    # Success is what the classifier says of the returned images, checked here independently.
    with torch.no_grad():
        pred = clf(res.adv).argmax(1)
    assert torch.equal(res.success, pred != res.labels)
    assert torch.isfinite(res.extra["z_dist"]).all()
    # The adversarial images are the generator's own images for the returned latents (on its manifold).
    from ganforge.spec import NoiseRequest

    with torch.no_grad():
        again = (gen.family.generate(gen.nets, NoiseRequest(res.extra["z"], res.labels)) + 1) / 2
    assert torch.allclose(again.clamp(0, 1), res.adv, atol=1e-5)
    # Where the search succeeded it moved z; where nothing was found z moved too, and the row says so.
    rows = res.rows()
    assert all(r["success"] == (r["adv_pred"] != r["label"]) for r in rows)


def test_cli_latent_writes_its_table(runs, tmp_path):
    clf = _classifier_file(tmp_path, ["c0", "c1"])
    out = tmp_path / "lat"
    r = CliRunner().invoke(
        main,
        [
            "attack",
            "--method",
            "latent",
            "--generator",
            str(runs["cond"]),
            "--model",
            clf,
            "--num",
            "4",
            "--steps",
            "10",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(out / "attack.csv")))
    assert len(rows) == 4 and "z_dist" in rows[0]
    assert (out / "grid.png").is_file()
    r = CliRunner().invoke(
        main, ["attack", "--method", "latent", "--generator", str(runs["uncond"]), "--model", clf, "--out", str(out)]
    )
    assert r.exit_code == 2 and "class-conditional" in r.output


def test_to_input_matches_the_extractors_preprocessing():
    """The attack's differentiable preprocessing is the classifier extractor's, on [0, 1] pixels."""
    from ganforge.attack.models import to_input
    from ganforge.metrics.classifier import preprocess

    g = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, (4, 3, 24, 24), generator=g, dtype=torch.uint8)
    for channels in (1, 3):
        assert torch.allclose(to_input(u8.float() / 255, channels), preprocess(u8, channels), atol=1e-5)


def test_a_damaged_classifier_file_is_one_line(tmp_path):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(b"not safetensors")
    p.with_suffix(".json").write_text('{"version": 2, "channels": 1, "num_classes": 10}')
    with pytest.raises(DataError, match="cannot load the classifier"):
        load_classifier_file(p)
